"""Priors p(z) a Gaussian-posterior bottleneck may use in place of the closed-form N(0, I).

- `StandardNormal`: p(z) = N(0, I), through the Monte Carlo KL path (the bottleneck's default keeps the closed form).
- `VampPrior` (Tomczak & Welling 2018, "VAE with a VampPrior"): the variational mixture of posteriors
  p(z) = (1/K) sum_k q(z | u_k) at K learned pseudo-inputs u_k.

Deviation from the paper: its pseudo-inputs live in pixel space and go through the whole encoder; here they live in
the bottleneck's input space (the encoder's features h, F dims) and go through the bottleneck's own posterior
projection only, so the prior is a part of the bottleneck and the module needs no change. The paper initialises
pseudo-inputs near 0.05 in [0, 1] pixel space; features have no fixed range, so u_k ~ N(0, 1) here.

A prior is built by the bottleneck (Hydra gives a partial): `prior(in_features=F, latent_dim=d, posterior=fn)`, with
fn(h) -> (mu, logvar) the bottleneck's posterior parameters.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.distributions import Normal

from aelab.core.errors import positive_int

Posterior = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Prior(nn.Module):
    """`log_prob(z)`: (..., d) -> (...); `sample(n)`: (n, d)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError


class StandardNormal(Prior):
    """N(0, I); log p(z) = -0.5 * sum_j (z_j^2 + log 2 pi)."""

    def __init__(self, in_features: int, latent_dim: int, posterior: Posterior | None = None) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)  # only for its device and dtype

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return Normal(0.0, 1.0).log_prob(z).sum(-1)

    def sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, len(self.loc), device=self.loc.device, dtype=self.loc.dtype)


class VampPrior(Prior):
    """log p(z) = logsumexp_k log N(z; mu(u_k), diag sigma^2(u_k)) - log K, the u_k learned with the model."""

    def __init__(self, in_features: int, latent_dim: int, posterior: Posterior, components: int = 50) -> None:
        super().__init__()
        self.pseudo_inputs = nn.Parameter(torch.randn(positive_int("model.bottleneck.prior.components", components),
                                                      in_features))  # (K, F)
        self.posterior = posterior  # the owning bottleneck's bound method: a plain attribute, not a submodule

    def components(self) -> Normal:
        """The K mixture components q(z | u_k), batch shape (K, d)."""
        mu, logvar = self.posterior(self.pseudo_inputs)  # (K, F) -> 2 x (K, d)
        return Normal(mu, torch.exp(0.5 * logvar))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        per_component = self.components().log_prob(z.unsqueeze(-2)).sum(-1)  # (..., 1, d) vs (K, d) -> (..., K)
        return torch.logsumexp(per_component, dim=-1) - math.log(len(self.pseudo_inputs))  # (..., K) -> (...)

    def sample(self, n: int) -> torch.Tensor:
        q = self.components()
        k = torch.randint(len(self.pseudo_inputs), (n,), device=self.pseudo_inputs.device)
        return q.loc[k] + q.scale[k] * torch.randn(n, q.loc.shape[-1], device=q.loc.device, dtype=q.loc.dtype)
