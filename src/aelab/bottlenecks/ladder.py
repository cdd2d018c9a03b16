"""Ladder VAE (Sonderby, Raiko, Maaloe, Sonderby & Winther 2016, "Ladder Variational Autoencoders").

L stochastic layers z_1 (latent_dim, what the decoder sees) ... z_L (sizes `dims`). A bottom-up deterministic
path d_1 = f_1(h), d_i = f_i(d_{i-1}) gives Gaussians N(mu^_i, s^2_i); the top-down generative path is
p(z_L) = N(0, I), p(z_i|z_{i+1}) = N(mu_p,i, s^2_p,i). The posterior is top-down too: q(z_L|x) = N(mu^_L, s^2_L),
and q(z_i|x, z_{i+1}) merges the two Gaussians by precision weighting (the normalised product of the densities):
  s^2_q = 1 / (s^-2_i + s^-2_p,i),   mu_q = (mu^_i s^-2_i + mu_p,i s^-2_p,i) s^2_q.
KL(q(z|x) || p(z)) = sum_i E_q(z_{>i}) KL(q(z_i|x, z_{i+1}) || p(z_i|z_{i+1})): each layer's Gaussian KL in closed
form given the sampled parent, Monte Carlo over the parents; emitted as `kl`, per layer logged as `kl_<i>`.

The whole ladder lives in this bottleneck, as small MLPs on the encoder's features h: the paper's encoder
convolutions or MLP are the architecture's, its ladder is this part, so it runs on every `model/arch`. Deviations:
no batch normalisation and no KL warm-up in the part (a schedule on `kl` gives the warm-up), variances by softplus.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


def merge(mu_hat: torch.Tensor, var_hat: torch.Tensor, mu_p: torch.Tensor,
          var_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The precision-weighted merge of N(mu_hat, var_hat) and N(mu_p, var_p): mean and variance of their product."""
    var = 1.0 / (1.0 / var_hat + 1.0 / var_p)
    return (mu_hat / var_hat + mu_p / var_p) * var, var


def gaussian(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance from a linear output (N, 2k) -> 2 x (N, k)."""
    mu, raw = params.chunk(2, dim=-1)
    return mu, nn.functional.softplus(raw) + 1e-4


class Ladder(Bottleneck):
    """Emits `kl` (the sum over layers); `embed` is the top-down path of posterior means."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int, dims: tuple[int, ...] | list[int] = (8,), hidden: int = 64) -> None:
        super().__init__(in_features, latent_dim)
        if any(int(k) < 1 for k in dims) or hidden < 1:
            raise ConfigError(f"model.bottleneck.dims must be positive layer sizes and hidden >= 1, got {dims}, {hidden}")
        self.dims = [latent_dim, *map(int, dims)]  # z_1 ... z_L
        widths = [in_features, *[hidden] * len(self.dims)]
        self.up = nn.ModuleList(nn.Sequential(nn.Linear(widths[i], hidden), nn.LeakyReLU()) for i in range(len(self.dims)))
        self.up_heads = nn.ModuleList(nn.Linear(hidden, 2 * k) for k in self.dims)
        self.down = nn.ModuleList(nn.Sequential(nn.Linear(self.dims[i + 1], hidden), nn.LeakyReLU(),
                                                nn.Linear(hidden, 2 * self.dims[i])) for i in range(len(self.dims) - 1))

    def bottom_up(self, h: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mu^_i, s^2_i) of every layer, bottom first: (B, F) -> L x 2 x (B, d_i)."""
        out = []
        for layer, head in zip(self.up, self.up_heads):
            h = layer(h)
            out.append(gaussian(head(h)))
        return out

    def top_down(self, h: torch.Tensor, k: int = 1, mean: bool = False) -> tuple[torch.Tensor, list, list, list]:
        """z_1 (k*B, d) drawn top-down (posterior means when `mean`), and per layer, top first, the code, the
        posterior (mu, var) and the prior (mu, var)."""
        up = [(mu.repeat(k, 1), var.repeat(k, 1)) for mu, var in self.bottom_up(h)]  # (B, d_i) -> (k*B, d_i)
        codes, posts, priors = [], [], []
        z = None
        for i in reversed(range(len(self.dims))):
            prior = (torch.zeros_like(up[i][0]), torch.ones_like(up[i][1])) if z is None else gaussian(self.down[i](z))
            post = up[i] if z is None else merge(*up[i], *prior)
            z = post[0] if mean else post[0] + post[1].sqrt() * torch.randn_like(post[0])
            codes.append(z)
            posts.append(post)
            priors.append(prior)
        return z, codes, posts, priors

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z, _, posts, priors = self.top_down(h)
        kls = [kl_divergence(Normal(q[0], q[1].sqrt()), Normal(p[0], p[1].sqrt())).sum(-1)  # (B, d_i) -> (B,)
               for q, p in zip(posts, priors)]
        stats = {f"kl_{len(kls) - i}": kl.mean().detach() for i, kl in enumerate(kls)}  # kl_1: the bottom layer
        return BottleneckOutput(z=z, terms={"kl": sum(kls)}, stats=stats)

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z_1 (k, B, d) and log p(z_1..z_L) - log q(z_1..z_L|x) (k, B): joint importance weights for log p(x)."""
        z, codes, posts, priors = self.top_down(h, k)
        log_ratio = sum((Normal(p[0], p[1].sqrt()).log_prob(c) - Normal(q[0], q[1].sqrt()).log_prob(c)).sum(-1)
                        for c, q, p in zip(codes, posts, priors))  # (k*B,)
        return z.view(k, len(h), -1), log_ratio.view(k, len(h))  # (k*B, d) -> (k, B, d)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.top_down(h, mean=True)[0]

    def sample_prior(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.dims[-1], device=self.up_heads[0].weight.device)
        for i in reversed(range(len(self.dims) - 1)):
            mu, var = gaussian(self.down[i](z))
            z = mu + var.sqrt() * torch.randn_like(mu)
        return z
