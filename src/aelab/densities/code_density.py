"""Ex-post densities of the training codes (`model/density=`), fitted after training: deterministic autoencoders
sample through them (Ghosh et al. 2020, RAE + GMM), and any model can (`model.sample_from: density`, e.g. the
two-stage VAE of Dai & Wipf 2019). Each has `fit(z)`, `sample(n)`, `log_prob(z)` and `fitted`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn

from aelab.core.errors import ConfigError, positive_int


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


class TwoStageVAE:
    """Dai & Wipf (2019): a second VAE fitted on the (standardised) training codes of the first stage. Sampling
    draws u ~ N(0, I), a code from the second stage's p(code|u), and leaves the image to the first stage's decoder.

    The second stage is an aelab VAE itself (MLP encoder/decoder, diagonal Gaussian bottleneck, Gaussian p(code|u)
    with a learned variance, the gamma of Dai & Wipf), trained here with Adam for `steps` batches on the CPU.
    """

    def __init__(self, hidden: list[int] = (256, 256), latent_dim: int | None = None, steps: int = 4000,
                 batch_size: int = 256, lr: float = 1e-3, max_passes: int = 200, seed: int = 0) -> None:
        self.hidden, self.latent_dim = [int(h) for h in hidden], latent_dim
        self.steps, self.batch_size = positive_int("model.density.steps", steps), positive_int("model.density.batch_size", batch_size)
        self.lr, self.seed, self.max_passes = lr, seed, positive_int("model.density.max_passes", max_passes)
        self.vae: nn.Module | None = None
        self.fitted = False

    def build(self, d: int) -> nn.Module:
        from aelab.bottlenecks.gaussian import DiagonalGaussian
        from aelab.losses.likelihood import Gaussian
        from aelab.models.autoencoder import AutoencoderModule  # here: aelab.models.autoencoder imports this file
        from aelab.nets.mlp import MLPDecoder, MLPEncoder

        latent = positive_int("model.density.latent_dim", self.latent_dim or d)
        return AutoencoderModule(name="two_stage", arch="mlp", latent_dim=latent, in_shape=[d],
                                 encoder=MLPEncoder([d], self.hidden, nn.ReLU),
                                 decoder=MLPDecoder([d], latent, self.hidden, nn.ReLU),
                                 bottleneck=DiagonalGaussian, likelihood=Gaussian(learn_sigma=True),
                                 optimizer=partial(torch.optim.Adam, lr=self.lr), loss_weights={"kl": 1.0})

    def fit(self, z: torch.Tensor) -> "TwoStageVAE":
        """Train the second stage on codes z (N, d); deterministic given `seed` (the global RNG is left alone)."""
        with torch.inference_mode(False), torch.enable_grad():  # callers run under no_grad or inference mode
            return self._fit(z.detach().float().cpu().clone())  # clone: a normal tensor, even from an inference one

    def _fit(self, z: torch.Tensor) -> "TwoStageVAE":
        if len(z) < 2:
            raise ConfigError(f"the two-stage density needs at least 2 training codes, got {len(z)}")
        self.mean, self.std = z.mean(0), z.std(0).clamp_min(1e-6)
        u = (z - self.mean) / self.std  # (N, d)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.vae = self.build(z.shape[1])
            optimizer = self.vae.configure_optimizers()
            self.vae.train()
            batch = min(self.batch_size, len(u))
            for _ in range(min(self.steps, -(-self.max_passes * len(u) // batch))):  # few codes: at most max_passes
                codes = u[torch.randint(len(u), (batch,))]
                loss, _ = self.vae.compute_loss({"x": codes, "target": codes}, "train")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.vae.eval()
        self.fitted = True
        return self

    def _check(self) -> nn.Module:
        if not self.fitted:
            raise RuntimeError("the latent density is not fitted yet: call module.fit_density(train codes) first")
        return self.vae

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n codes (n, d) drawn from the second stage's model: u ~ N(0, I), code ~ N(decoder(u), sigma^2 I) with its
        learned sigma (the mean alone would under-disperse while sigma is not yet near 0), at the codes' scale."""
        vae = self._check()
        mean = vae.decode(vae.bottleneck.sample_prior(n))
        return (mean + vae.likelihood.sigma * torch.randn_like(mean)) * self.std + self.mean

    @torch.no_grad()
    def log_prob(self, z: torch.Tensor, k: int = 16) -> torch.Tensor:
        """Importance-weighted estimate (B,) of log p(z) with k samples (a lower bound in expectation)."""
        vae = self._check()
        u = (z.detach().float().cpu() - self.mean) / self.std
        return vae.iw_log_likelihood(u, u, k) - self.std.log().sum()


# ---- what a checkpoint carries (aelab-apply samples and scores with the density fitted after training) ----------
def density_state(density: LatentGMM | TwoStageVAE | None) -> dict | None:
    """A fitted density as tensors and plain values (loadable with weights_only=True); None when unfitted."""
    if density is None or not density.fitted:
        return None
    if isinstance(density, LatentGMM):
        g = density.gmm
        arrays = {k: torch.from_numpy(np.asarray(getattr(g, k))) for k in ("weights_", "means_", "covariances_",
                                                                           "precisions_cholesky_")}
        return {"kind": "gmm", "covariance_type": g.covariance_type, "n_components": int(g.n_components), **arrays}
    return {"kind": "two_stage", "hidden": density.hidden, "latent_dim": density.latent_dim, "mean": density.mean,
            "std": density.std, "state_dict": density.vae.state_dict(), "d": int(density.mean.numel())}


def restore_density(density: LatentGMM | TwoStageVAE | None, state: dict | None) -> None:
    """Load `state` (from density_state) into the model's configured density, which must be of the same kind."""
    if density is None or state is None:
        return
    if state["kind"] == "gmm" and isinstance(density, LatentGMM):
        g = density.gmm
        g.set_params(n_components=state["n_components"], covariance_type=state["covariance_type"])
        for k in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(g, k, state[k].numpy())
        density.fitted = True
    elif state["kind"] == "two_stage" and isinstance(density, TwoStageVAE):
        density.hidden, density.latent_dim = list(state["hidden"]), state["latent_dim"]
        density.mean, density.std = state["mean"], state["std"]
        density.vae = density.build(state["d"])
        density.vae.load_state_dict(state["state_dict"])
        density.vae.eval()
        density.fitted = True
    else:
        raise ConfigError(f"the stored code density is a {state['kind']}, the model's is {type(density).__name__}")
