"""Diagonal Gaussian posterior with a standard normal prior (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

q(z|x) = N(mu, diag(sigma^2)), z = mu + sigma * eps (reparameterised), and the closed form
KL(q || N(0, I)) = 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).
With another `prior` (aelab.bottlenecks.priors, e.g. the VampPrior) `kl` is the one-sample Monte Carlo estimate
log q(z|x) - log p(z) at the drawn z, and the prior is what `sample_prior` and `importance_samples` use.
`CapacityGaussian` adds `kl_capacity` = |KL - C|, the capacity-controlled term of Burgess et al. 2018 (C set by
the CapacityIncrease schedule).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.distributions import Normal

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.priors import Prior


class DiagonalGaussian(Bottleneck):
    """Emits the per-sample `kl` term; logs the mean posterior variance and the active units."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int, prior: Callable[..., Prior] | None = None) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, 2 * latent_dim)
        # None: N(0, I) with the closed-form KL; a partial (model/prior=...) is built here around this posterior
        self.prior = None if prior is None else prior(in_features=in_features, latent_dim=latent_dim,
                                                      posterior=self.posterior)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.proj(h).chunk(2, dim=-1)  # (B, F) -> 2 x (B, d)
        return mu, logvar

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn_like(mu) * std
        if self.prior is None:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)  # (B, d) -> (B,)
        else:
            kl = Normal(mu, std).log_prob(z).sum(-1) - self.prior.log_prob(z)  # (B, d) -> (B,)
        return BottleneckOutput(z=z, terms={"kl": kl}, stats={"posterior_var": logvar.exp().mean().detach()})

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.draw(*self.posterior(h), k)

    def draw(self, mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k reparameterised samples z (k, B, d) of N(mu, exp(logvar)) and their log p(z) - log q(z) (k, B)."""
        q = Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample((k,))
        return z, self.prior_log_prob(z) - q.log_prob(z).sum(-1)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.posterior(h)[0]

    def sample_prior(self, n: int) -> torch.Tensor:
        if self.prior is not None:
            return self.prior.sample(n)
        return torch.randn(n, self.latent_dim, device=self.proj.weight.device)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z): (..., d) -> (...), under the configured prior (N(0, I) without one)."""
        return Normal(0.0, 1.0).log_prob(z).sum(-1) if self.prior is None else self.prior.log_prob(z)


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
