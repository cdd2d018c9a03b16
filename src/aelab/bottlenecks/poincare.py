"""Poincare VAE (Mathieu, Le Lan, Maddison, Tomioka & Teh 2019, "Continuous Hierarchical Representations with
Poincare Variational Auto-Encoders"), with its wrapped normal posterior and prior.

The ball B = {z : c |z|^2 < 1} of curvature -c has the metric lambda_z^2 I, lambda_z = 2 / (1 - c |z|^2), and
d_c(x, y) = (2 / sqrt c) artanh(sqrt c |(-x) (+) y|) with Mobius addition (+) (Ganea et al. 2018).
Wrapped normal WN(mu, sigma): u ~ N(0, diag sigma^2) in orthonormal coordinates of the tangent space at 0,
z = exp_mu(PT_{0->mu}(u / lambda_0)). Its density w.r.t. the Riemannian volume (lambda_z^d dz) is
    log q(z) = log N(u; 0, sigma^2) - (d-1) log(sinh(sqrt c r) / (sqrt c r)),
    u = lambda_mu log_mu(z) (= lambda_0 PT_{mu->0}(log_mu z)),  r = |u| = d_c(mu, z)
(the exp map's volume change; the same form as the authors' code, pvae/distributions/wrapped_normal.py).
Prior WN(0, prior_scale); `kl` is the one-sample Monte Carlo log q(z) - log p(z). The posterior mean is
mu = exp_0(projection of h); the maths runs in float64, points are kept at norm <= (1 - 1e-5) / sqrt c.
The decoder gets the ball coordinates z itself (the code's "usual" DecLinear; the paper's gyroplane first layer and
the code's default log_0-then-MLP decoder are not used).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError

BALL_EPS = 1e-5  # points stay at sqrt(c) |z| <= 1 - BALL_EPS


def project(z: torch.Tensor, c: float) -> torch.Tensor:
    """z (..., d) pulled inside the ball, to norm at most (1 - BALL_EPS) / sqrt c."""
    limit = (1 - BALL_EPS) / math.sqrt(c)
    norm = z.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return torch.where(norm > limit, z / norm * limit, z)


def artanh(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh(x.clamp(-1 + 1e-12, 1 - 1e-12))


def conformal(z: torch.Tensor, c: float) -> torch.Tensor:
    """lambda_z = 2 / (1 - c |z|^2), (..., d) -> (..., 1)."""
    return 2 / (1 - c * z.pow(2).sum(-1, keepdim=True)).clamp_min(1e-15)


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """x (+) y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2 |x|^2 |y|^2)."""
    xy, x2, y2 = (x * y).sum(-1, keepdim=True), x.pow(2).sum(-1, keepdim=True), y.pow(2).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return num / (1 + 2 * c * xy + c**2 * x2 * y2).clamp_min(1e-15)


def expmap(x: torch.Tensor, v: torch.Tensor, c: float) -> torch.Tensor:
    """exp_x(v) = x (+) tanh(sqrt(c) lambda_x |v| / 2) v / (sqrt(c) |v|)."""
    sc, norm = math.sqrt(c), v.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return project(mobius_add(x, torch.tanh(sc * conformal(x, c) * norm / 2) * v / (sc * norm), c), c)


def logmap(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """log_x(y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c) |w|) w / |w|, w = (-x) (+) y."""
    sc, w = math.sqrt(c), mobius_add(-x, y, c)
    norm = w.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return 2 / (sc * conformal(x, c)) * artanh(sc * norm) * w / norm


def distance(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """d_c(x, y) = (2 / sqrt c) artanh(sqrt(c) |(-x) (+) y|), (..., d) -> (...)."""
    return 2 / math.sqrt(c) * artanh(math.sqrt(c) * mobius_add(-x, y, c).norm(dim=-1))


def log_sinhc(x: torch.Tensor) -> torch.Tensor:
    """log(sinh(x) / x) for x >= 0, with its series x^2 / 6 near 0."""
    safe = x.clamp_min(1e-3)
    return torch.where(x < 1e-3, x.pow(2) / 6, safe + torch.log1p(-torch.exp(-2 * safe)) - math.log(2) - safe.log())


def sample_wrapped_normal(mu: torch.Tensor, sigma: torch.Tensor, c: float) -> torch.Tensor:
    """Reparameterised z (N, d) of WN(mu (N, d), sigma (N, d)): exp_mu(PT_{0->mu}(u / lambda_0)), u ~ N(0, sigma^2)."""
    u = sigma * torch.randn_like(mu)
    return expmap(mu, u / conformal(mu, c), c)  # PT_{0->mu}(v) = (lambda_0 / lambda_mu) v, v = u / lambda_0


def wrapped_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, c: float) -> torch.Tensor:
    """log WN(z; mu, sigma) w.r.t. the Riemannian volume, (..., d) -> (...)."""
    u = conformal(mu, c) * logmap(mu, z, c)  # lambda_0 PT_{mu->0}(log_mu z) = lambda_mu log_mu z
    gauss = (-0.5 * (u / sigma).pow(2) - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    return gauss - (z.shape[-1] - 1) * log_sinhc(math.sqrt(c) * u.norm(dim=-1))


class WrappedNormalPoincare(Bottleneck):
    """Emits `kl` = log q(z|x) - log p(z) at the sample; logs the mean posterior scale and the mean code norm."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int, curvature: float = 1.0, prior_scale: float = 1.0) -> None:
        super().__init__(in_features, latent_dim)
        if not curvature > 0 or not prior_scale > 0:
            raise ConfigError(f"model.bottleneck.curvature and prior_scale must be > 0, got {curvature}, {prior_scale}")
        self.c, self.prior_scale = float(curvature), float(prior_scale)
        self.proj = nn.Linear(in_features, 2 * latent_dim)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale = self.proj(h).double().chunk(2, dim=-1)  # (B, F) -> 2 x (B, d)
        return expmap(torch.zeros_like(loc), loc, self.c), F.softplus(scale) + 1e-5  # mu = exp_0(loc)

    def draw(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples z (N, d) of q and log p(z) - log q(z) (N,)."""
        z = sample_wrapped_normal(mu, sigma, self.c)
        prior = wrapped_normal_log_prob(z, torch.zeros_like(z), torch.full_like(z, self.prior_scale), self.c)
        return z, prior - wrapped_normal_log_prob(z, mu, sigma, self.c)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, sigma = self.posterior(h)
        z, log_ratio = self.draw(mu, sigma)
        stats = {"posterior_scale": sigma.mean().detach(), "code_norm": mu.norm(dim=-1).mean().detach()}
        return BottleneckOutput(z=z.to(h.dtype), terms={"kl": -log_ratio.to(h.dtype)}, stats=stats)

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = self.posterior(h)
        z, log_ratio = self.draw(mu.repeat(k, 1), sigma.repeat(k, 1))  # (B, d) -> (k*B, d)
        return z.view(k, len(h), -1).to(h.dtype), log_ratio.view(k, len(h)).to(h.dtype)  # (k*B, d) -> (k, B, d)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.posterior(h)[0].to(h.dtype)

    def sample_prior(self, n: int) -> torch.Tensor:
        zero = torch.zeros(n, self.latent_dim, dtype=torch.float64, device=self.proj.weight.device)
        return sample_wrapped_normal(zero, torch.full_like(zero, self.prior_scale), self.c).to(self.proj.weight.dtype)
