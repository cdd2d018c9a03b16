"""The two-stage VAE's second stage (Dai & Wipf 2019): a VAE over the first stage's codes."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from aelab.core.errors import ConfigError, positive_int
from aelab.models.density import check_kind


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
        from aelab.models.autoencoder import AutoencoderModule
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

    def state(self) -> dict:
        return {"kind": "TwoStageVAE", "hidden": self.hidden, "latent_dim": self.latent_dim, "mean": self.mean,
                "std": self.std, "state_dict": self.vae.state_dict(), "d": int(self.mean.numel())}

    def load_state(self, state: dict) -> None:
        check_kind(self, state)
        self.hidden, self.latent_dim = list(state["hidden"]), state["latent_dim"]
        self.mean, self.std = state["mean"], state["std"]
        self.vae = self.build(state["d"])
        self.vae.load_state_dict(state["state_dict"])
        self.vae.eval()
        self.fitted = True

