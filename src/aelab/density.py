"""Ex-post density on latent codes, so deterministic autoencoders can sample (Ghosh et al. 2020, RAE)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from aelab.errors import ConfigError


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
        if not self.fitted:
            raise RuntimeError("the latent density is not fitted yet: call module.fit_density(train codes) first")
        z, _ = self.gmm.sample(n)
        return torch.from_numpy(np.asarray(z, dtype=np.float32))
