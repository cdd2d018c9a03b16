"""Diagonal Gaussian posterior with a standard normal prior (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

q(z|x) = N(mu, diag(sigma^2)), z = mu + sigma * eps (reparameterised), and the closed form
KL(q || N(0, I)) = 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).
`kl_capacity` = |KL - C| is the capacity-controlled term of Burgess et al. 2018 (C set by CapacityIncrease).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput


class DiagonalGaussian(Bottleneck):
    """Emits the per-sample `kl` term; logs the mean posterior variance and the active units."""

    terms = ("kl", "kl_capacity")
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, 2 * latent_dim)
        self.register_buffer("capacity", torch.zeros(()))  # C in nats, raised by callbacks.schedules

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.proj(h).chunk(2, dim=-1)  # (B, F) -> 2 x (B, d)
        return mu, logvar

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)  # (B, d) -> (B,)
        terms = {"kl": kl, "kl_capacity": (kl - self.capacity).abs()}
        return BottleneckOutput(z=z, terms=terms, stats={"posterior_var": logvar.exp().mean().detach()})

    def importance_samples(self, mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k posterior samples z (k, B, d) and their log p(z) - log q(z|x) (k, B)."""
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample((k,))
        return z, (Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)).sum(-1)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.posterior(h)[0]

    def sample_prior(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.proj.weight.device)
