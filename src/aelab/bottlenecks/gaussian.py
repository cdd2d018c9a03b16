"""Diagonal Gaussian posterior with a standard normal prior (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

q(z|x) = N(mu, diag(sigma^2)), z = mu + sigma * eps (reparameterised), and the closed form
KL(q || N(0, I)) = 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).
`CapacityGaussian` adds `kl_capacity` = |KL - C|, the capacity-controlled term of Burgess et al. 2018 (C set by
the CapacityIncrease schedule).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput


class DiagonalGaussian(Bottleneck):
    """Emits the per-sample `kl` term; logs the mean posterior variance and the active units."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, 2 * latent_dim)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.proj(h).chunk(2, dim=-1)  # (B, F) -> 2 x (B, d)
        return mu, logvar

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)  # (B, d) -> (B,)
        return BottleneckOutput(z=z, terms={"kl": kl}, stats={"posterior_var": logvar.exp().mean().detach()})

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.draw(*self.posterior(h), k)

    @staticmethod
    def draw(mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k reparameterised samples z (k, B, d) of N(mu, exp(logvar)) and their log p(z) - log q(z) (k, B)."""
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample((k,))
        return z, (Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)).sum(-1)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.posterior(h)[0]

    def sample_prior(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.proj.weight.device)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return Normal(0.0, 1.0).log_prob(z).sum(-1)  # (N, d) -> (N,)


class CapacityGaussian(DiagonalGaussian):
    """DiagonalGaussian that also emits `kl_capacity` = |KL - C| (Burgess et al. 2018); C is a buffer in nats."""

    terms = ("kl", "kl_capacity")

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.register_buffer("capacity", torch.zeros(()))  # raised by callbacks.schedules.CapacityIncrease

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        out = super().forward(h)
        out.terms["kl_capacity"] = (out.terms["kl"] - self.capacity).abs()
        return out
