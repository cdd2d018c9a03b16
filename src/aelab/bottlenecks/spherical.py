"""Hyperspherical VAE (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical Variational Auto-Encoders").

Codes on the unit sphere S^{d-1} of R^d (d = latent_dim). Posterior von Mises-Fisher, density on the sphere
q(z|x) = C_d(k) exp(k mu^T z), C_d(k) = k^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(k)); prior uniform, 1 / area(S^{d-1})
with area = 2 pi^{d/2} / Gamma(d/2). In closed form
    KL(q || p) = k A_d(k) + log C_d(k) + log area,   A_d(k) = I_{d/2}(k) / I_{d/2-1}(k) = E_q[mu^T z].
Sampling: w = mu^T z by Wood's (1994) rejection sampler (proposal eps ~ Beta((d-1)/2, (d-1)/2),
w = (1 - (1+b) eps) / (1 - (1-b) eps)), a uniform direction v orthogonal to e1, z' = (w, sqrt(1-w^2) v), and the
Householder reflection taking e1 to mu. Gradients: through mu (reflection) and through k via w(eps, k) with the
accepted eps held fixed: the paper's g_rep. Its correction term g_cor (the score of the acceptance) is dropped, as the
authors' code (nicola-decao/s-vae-pytorch) does. The maths runs in float64; log I_v uses scipy on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import gammaln, ive
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


class LogBesselI(torch.autograd.Function):
    """log I_v(k) of a fixed order v >= 0 for k > 0; backward by d/dk log I_v(k) = I_{v+1}(k) / I_v(k) + v / k."""

    @staticmethod
    def forward(ctx, kappa: torch.Tensor, v: float) -> torch.Tensor:
        ctx.save_for_backward(kappa)
        ctx.v = v
        k = kappa.detach().double().cpu().numpy()
        scaled = ive(v, k)  # I_v(k) exp(-k): no overflow for large k
        series = v * np.log(k / 2) - gammaln(v + 1)  # leading term, where I_v(k) exp(-k) underflows (k << v)
        out = np.where(scaled > 0, np.log(np.where(scaled > 0, scaled, 1.0)) + k, series)
        return torch.from_numpy(out).to(kappa)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (kappa,) = ctx.saved_tensors
        k = kappa.detach().double().cpu().numpy()
        low, high = ive(ctx.v, k), ive(ctx.v + 1, k)
        ratio = np.where(low > 0, high / np.where(low > 0, low, 1.0), k / (2 * ctx.v + 2))  # I_{v+1} / I_v
        return grad * (torch.from_numpy(ratio).to(kappa) + ctx.v / kappa), None


def log_bessel_i(v: float, kappa: torch.Tensor) -> torch.Tensor:
    """log I_v(kappa), differentiable in kappa."""
    return LogBesselI.apply(kappa, v)


def log_sphere_area(d: int) -> float:
    """log area(S^{d-1}) = log(2 pi^{d/2} / Gamma(d/2))."""
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def vmf_log_norm(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """log C_d(kappa) = (d/2 - 1) log kappa - (d/2) log 2 pi - log I_{d/2-1}(kappa)."""
    v = 0.5 * d - 1.0
    return v * kappa.log() - 0.5 * d * math.log(2 * math.pi) - log_bessel_i(v, kappa)


def vmf_log_prob(z: torch.Tensor, mu: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """log q(z) on S^{d-1} (w.r.t. its area) for z (..., d), mu (..., d), kappa (..., 1) -> (...)."""
    return (vmf_log_norm(kappa, mu.shape[-1]) + kappa * (mu * z).sum(-1, keepdim=True)).squeeze(-1)


def kl_vmf_uniform(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """KL(vMF(., kappa) || U(S^{d-1})) = kappa A_d(kappa) + log C_d(kappa) + log area(S^{d-1})."""
    mean_length = torch.exp(log_bessel_i(0.5 * d, kappa) - log_bessel_i(0.5 * d - 1.0, kappa))  # A_d(kappa)
    return kappa * mean_length + vmf_log_norm(kappa, d) + log_sphere_area(d)


def wood_w(kappa: torch.Tensor, d: int, max_rounds: int = 1000) -> torch.Tensor:
    """w = mu^T z (N, 1) for kappa (N, 1) by Wood's (1994) sampler; differentiable in kappa at the accepted eps."""
    b = (d - 1) / (2 * kappa + torch.sqrt(4 * kappa**2 + (d - 1) ** 2))  # = (-2k + sqrt(4k^2 + (d-1)^2)) / (d-1)
    k, bd = kappa.detach(), b.detach()
    x0 = (1 - bd) / (1 + bd)
    c = k * x0 + (d - 1) * torch.log(1 - x0**2)
    proposal = torch.distributions.Beta(torch.tensor(0.5 * (d - 1), dtype=k.dtype, device=k.device),
                                        torch.tensor(0.5 * (d - 1), dtype=k.dtype, device=k.device))
    eps, todo = torch.zeros_like(k), torch.ones_like(k, dtype=torch.bool)
    for _ in range(max_rounds):
        e = proposal.sample(k.shape)  # (N, 1), one proposal per code still waiting
        w = (1 - (1 + bd) * e) / (1 - (1 - bd) * e)
        accept = todo & (k * w + (d - 1) * torch.log(1 - x0 * w) - c >= torch.log(torch.rand_like(k)))
        eps = torch.where(accept, e, eps)
        todo = todo & ~accept
        if not todo.any():
            return (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
    raise RuntimeError(f"Wood's vMF sampler accepted no proposal in {max_rounds} rounds for some kappa")


def sample_vmf(mu: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """Reparameterised samples z (N, d) of vMF(mu (N, d), kappa (N, 1)) on S^{d-1}."""
    d = mu.shape[-1]
    w = wood_w(kappa, d)
    v = F.normalize(torch.randn(len(mu), d - 1, dtype=mu.dtype, device=mu.device), dim=-1)
    x = torch.cat([w, torch.sqrt((1 - w**2).clamp_min(1e-12)) * v], dim=-1)  # (N, d) around e1
    e1 = F.one_hot(torch.zeros(len(mu), dtype=torch.long, device=mu.device), d).to(mu)
    u = e1 - mu
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # mu = e1 exactly: u = 0, z = x
    return x - 2 * (x * u).sum(-1, keepdim=True) * u  # Householder reflection e1 -> mu


class VonMisesFisher(Bottleneck):
    """Emits the closed-form `kl` to the uniform prior; logs the mean concentration `kappa`."""

    terms = ("kl",)
    elbo_terms = ("kl",)
    has_prior = True

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        if latent_dim < 2:
            raise ConfigError(f"model.latent_dim must be >= 2 for the sphere S^(d-1) in R^d, got {latent_dim}")
        self.proj = nn.Linear(in_features, latent_dim + 1)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.proj(h).double()  # (B, F) -> (B, d + 1)
        mu = F.normalize(out[:, :-1], dim=-1)  # (B, d) on the sphere
        return mu, F.softplus(out[:, -1:]) + 1.0  # kappa (B, 1) >= 1, as in the authors' code

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mu, kappa = self.posterior(h)
        z = sample_vmf(mu, kappa)
        kl = kl_vmf_uniform(kappa, self.latent_dim).squeeze(-1)  # (B, 1) -> (B,)
        return BottleneckOutput(z=z.to(h.dtype), terms={"kl": kl.to(h.dtype)}, stats={"kappa": kappa.mean().detach()})

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        mu, kappa = self.posterior(h)
        mu_k, kappa_k = mu.repeat(k, 1), kappa.repeat(k, 1)  # (B, .) -> (k*B, .)
        z = sample_vmf(mu_k, kappa_k)
        log_ratio = -log_sphere_area(self.latent_dim) - vmf_log_prob(z, mu_k, kappa_k)
        return z.view(k, len(h), -1).to(h.dtype), log_ratio.view(k, len(h)).to(h.dtype)  # (k*B, d) -> (k, B, d)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.posterior(h)[0].to(h.dtype)

    def sample_prior(self, n: int) -> torch.Tensor:
        return F.normalize(torch.randn(n, self.latent_dim, dtype=self.proj.weight.dtype, device=self.proj.weight.device), dim=-1)
