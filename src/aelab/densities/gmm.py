"""A Gaussian mixture over the training codes (Ghosh et al. 2020: RAE + GMM samples through it)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from aelab.core.errors import ConfigError
from aelab.models.density import check_kind

FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")  # what scikit-learn's fit sets


class LatentGMM:
    """A scikit-learn Gaussian mixture fitted on training codes; `sample(n)` draws new codes from it."""

    def __init__(self, n_components: int = 10, covariance_type: str = "full", seed: int = 0) -> None:
        if n_components < 1:
            raise ConfigError(f"model.density.n_components must be positive, got {n_components}")
        self.gmm = GaussianMixture(n_components, covariance_type=covariance_type, random_state=seed)
        self.fitted = False

    def fit(self, z: torch.Tensor) -> "LatentGMM":
        self.gmm.set_params(n_components=min(self.gmm.n_components, len(z)))
        self.gmm.fit(z.detach().cpu().double().numpy())
        self.fitted = True
        return self

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log density (B,) of codes (B, d) under the fitted mixture."""
        if not self.fitted:
            raise RuntimeError("the latent density is not fitted yet: call module.fit_density(train codes) first")
        return torch.from_numpy(self.gmm.score_samples(z.detach().cpu().double().numpy())).float()

    def sample(self, n: int) -> torch.Tensor:
        """n codes (n, d). The draw is seeded from torch's global RNG, like a prior's: scikit-learn would reseed
        with its fixed random_state on every call, so successive calls would repeat the same codes."""
        if not self.fitted:
            raise RuntimeError("the latent density is not fitted yet: call module.fit_density(train codes) first")
        self.gmm.random_state = int(torch.randint(2**31 - 1, ()))
        z, _ = self.gmm.sample(n)
        return torch.from_numpy(np.asarray(z, dtype=np.float32))

    def state(self) -> dict:
        g = self.gmm
        arrays = {k: torch.from_numpy(np.asarray(getattr(g, k))) for k in FITTED}
        return {"kind": "LatentGMM", "covariance_type": g.covariance_type, "n_components": int(g.n_components), **arrays}

    def load_state(self, state: dict) -> None:
        check_kind(self, state)
        self.gmm.set_params(n_components=state["n_components"], covariance_type=state["covariance_type"])
        for k in FITTED:
            setattr(self.gmm, k, state[k].numpy())
        self.fitted = True

