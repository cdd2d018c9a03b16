"""Importance-weighted bound (Burda et al. 2016, "Importance Weighted Autoencoders").

With S posterior samples z_s ~ q(z|x) and log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x),
L_S = log (1/S) sum_s w_s, a tighter lower bound on log p(x) than the ELBO; L_1 is the single-sample ELBO.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.bottlenecks.priors import Prior
from aelab.core.errors import positive_int


class ImportanceWeighted(DiagonalGaussian):
    """Draws `samples` codes per input; `kl` is the per-sample log q(z|x) - log p(z) (a Monte Carlo KL), p(z) the
    `prior` (N(0, I) unless model/prior=... sets one, e.g. the VampPrior)."""

    terms = ("kl",)

    def __init__(self, in_features: int, latent_dim: int, samples: int = 5,
                 prior: Callable[..., Prior] | None = None) -> None:
        super().__init__(in_features, latent_dim, prior)
        self.samples = positive_int("model.bottleneck.samples", samples)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        z, log_ratio = self.draw(mu, logvar, self.samples)  # (S, B, d), (S, B)
        stats = {"posterior_var": logvar.exp().mean().detach()}
        return BottleneckOutput(z=z.flatten(0, 1), terms={"kl": -log_ratio.flatten()}, stats=stats)  # (S*B, d)

    def log_weights(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) of every drawn code (the kl term at its weight), (S, B)."""
        return -(recon + weights.get("kl", 1.0) * terms["kl"]).view(self.samples, -1)  # (S*B,) -> (S, B)

    def objective(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        return -(torch.logsumexp(self.log_weights(recon, terms, weights), dim=0) - math.log(self.samples))  # (B,)
