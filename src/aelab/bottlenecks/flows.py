"""Normalising-flow posteriors: the Gaussian posterior z_0 ~ q_0(z|x) = N(mu, diag sigma^2) pushed through K
invertible maps z_k = f_k(z_{k-1}; h), with log q_K(z_K|x) = log q_0(z_0|x) - sum_k log |det df_k/dz_{k-1}|.

- `Planar` (Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows"): f(z) = z + u_hat tanh(w^T z + b),
  log|det| = log|1 + u_hat^T psi(z)|, psi = (1 - tanh^2(w^T z + b)) w; invertible because
  u_hat = u + (m(w^T u) - w^T u) w / ||w||^2, m(x) = -1 + softplus(x), keeps w^T u_hat > -1.
- `Radial` (same paper): f(z) = z + beta h(alpha, r) (z - z0), r = ||z - z0||, h = 1 / (alpha + r),
  log|det| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r); alpha = softplus(.) > 0 and
  beta = -alpha + softplus(.) > -alpha keep it invertible.
- `IAF` (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive Flow"): [m, s] from a
  MADE-masked network of z with the context h, sigma = sigmoid(s), z = sigma * z + (1 - sigma) * m (the
  numerically stable gated update), log|det| = sum_i log sigma_i; the variable order is reversed every other step.

Choices: planar and radial are amortised as in the paper (each layer's parameters are a linear map of the encoder
features h); the IAF context is h itself (the paper has the encoder emit an extra context vector) and its network
has one masked hidden layer, with s's bias started at +1.5 so sigma starts near 0.8 (the paper starts s at about
+1 to +2). `kl` = log q_0(z_0|x) - sum_k log|det J_k| - log p(z_K), a one-sample Monte Carlo estimate; `embed`
(the deterministic code) is the flow applied to the posterior mean mu.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.bottlenecks.priors import Prior
from aelab.core.errors import positive_int


class FlowLayer(nn.Module):
    """`forward(z, h)`: codes (..., B, d), features (B, F) -> f(z) (..., B, d) and log|det df/dz| (..., B)."""

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Planar(FlowLayer):
    """f(z) = z + u_hat tanh(w^T z + b), with u, w, b a linear map of h."""

    def __init__(self, in_features: int, latent_dim: int, step: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.params = nn.Linear(in_features, 2 * latent_dim + 1)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, w, b = self.params(h).split([self.latent_dim, self.latent_dim, 1], dim=-1)  # (B, F) -> (B, d), (B, d), (B, 1)
        wu = (w * u).sum(-1, keepdim=True)  # (B, 1)
        u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w.pow(2).sum(-1, keepdim=True) + 1e-12)
        a = torch.tanh((w * z).sum(-1, keepdim=True) + b)  # (..., B, d) -> (..., B, 1)
        logdet = torch.log1p((1.0 - a.pow(2)) * (w * u_hat).sum(-1, keepdim=True))  # w^T u_hat > -1: argument > -1
        return z + u_hat * a, logdet.squeeze(-1)  # (..., B, 1) -> (..., B)


class Radial(FlowLayer):
    """f(z) = z + beta (z - z0) / (alpha + ||z - z0||), with z0, alpha, beta from a linear map of h."""

    def __init__(self, in_features: int, latent_dim: int, step: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.params = nn.Linear(in_features, latent_dim + 2)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z0, a, b = self.params(h).split([self.latent_dim, 1, 1], dim=-1)  # (B, F) -> (B, d), (B, 1), (B, 1)
        alpha = F.softplus(a)
        beta = -alpha + F.softplus(b)
        diff = z - z0
        r = diff.norm(dim=-1, keepdim=True)  # (..., B, d) -> (..., B, 1)
        bh = beta / (alpha + r)
        logdet = (self.latent_dim - 1) * torch.log1p(bh) + torch.log1p(bh - beta * r / (alpha + r).pow(2))
        return z + bh * diff, logdet.squeeze(-1)  # (..., B, 1) -> (..., B)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in) (MADE, Germain et al. 2015)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class IAF(FlowLayer):
    """One IAF step; output i depends on the z_j earlier in this step's order (reversed at odd steps) and on h."""

    def __init__(self, in_features: int, latent_dim: int, step: int = 0, hidden: int = 64) -> None:
        super().__init__()
        positive_int("model.bottleneck.layer.hidden", hidden)
        order = torch.arange(1, latent_dim + 1)
        self.register_buffer("order", order if step % 2 == 0 else order.flip(0))  # (d,) the degree of each z_i
        hidden_degrees = torch.arange(hidden) % max(latent_dim - 1, 1) + 1  # (H,) in 1..d-1
        self.inp = MaskedLinear(hidden_degrees[:, None] >= self.order[None, :])  # (H, d): hidden k sees z_i, deg <= m_k
        self.context = nn.Linear(in_features, hidden)
        out_mask = self.order[:, None] > hidden_degrees[None, :]  # (d, H): output i sees hidden k with m_k < deg_i
        self.out = MaskedLinear(torch.cat([out_mask, out_mask]))  # (2d, H): m and s
        with torch.no_grad():
            self.out.bias[latent_dim:].fill_(1.5)  # s starts positive: sigma ~ 0.8, close to the identity

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hid = F.elu(self.inp(z) + self.context(h))  # (..., B, d), (B, F) -> (..., B, H)
        m, s = self.out(hid).chunk(2, dim=-1)  # (..., B, H) -> 2 x (..., B, d)
        sigma = torch.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, F.logsigmoid(s).sum(-1)  # (..., B, d) -> (..., B)


class FlowGaussian(DiagonalGaussian):
    """q_K(z|x): the diagonal Gaussian posterior through `length` flow layers (`layer` builds one, given its step)."""

    def __init__(self, in_features: int, latent_dim: int, layer: Callable[..., FlowLayer], length: int = 4,
                 prior: Callable[..., Prior] | None = None) -> None:
        super().__init__(in_features, latent_dim, prior)
        positive_int("model.bottleneck.length", length)
        self.flows = nn.ModuleList(layer(in_features=in_features, latent_dim=latent_dim, step=k) for k in range(length))

    def flow(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K (..., B, d) and sum_k log|det J_k| (..., B) for z_0 (..., B, d) and features h (B, F)."""
        total = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for f in self.flows:
            z, logdet = f(z, h)
            total = total + logdet
        return z, total

    def log_ratio(self, q0: Normal, z0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K and log p(z_K) - log q_K(z_K|x) = log p(z_K) - log q_0(z_0|x) + sum_k log|det J_k|."""
        z, logdet = self.flow(z0, h)
        return z, self.prior_log_prob(z) - q0.log_prob(z0).sum(-1) + logdet

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, logvar = self.posterior(h)
        q0 = Normal(mu, torch.exp(0.5 * logvar))
        z, log_ratio = self.log_ratio(q0, q0.rsample(), h)  # (B, d), (B,)
        return BottleneckOutput(z=z, terms={"kl": -log_ratio}, stats={"posterior_var": logvar.exp().mean().detach()})

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.posterior(h)
        q0 = Normal(mu, torch.exp(0.5 * logvar))
        return self.log_ratio(q0, q0.rsample((k,)), h)  # (k, B, d), (k, B)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.flow(self.posterior(h)[0], h)[0]

