"""Hamiltonian VAE (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian Variational Auto-Encoder").

z_0 ~ q(z|x) = N(mu, diag(sigma^2)), gamma ~ N(0, I), rho_0 = gamma / sqrt(beta_0) (hot momentum, 0 < beta_0 < 1).
K tempered leapfrog steps on U(z) = -log p(x, z) (the module's `log_joint`, through the decoder), step sizes
eps (d,) learned per dimension:
  rho' = rho + eps/2 * grad log p(x, z);  z <- z + eps * rho';  rho'' = rho' + eps/2 * grad log p(x, z)
  rho <- sqrt(beta_{k-1} / beta_k) * rho''  with the paper's quadratic schedule
  1/sqrt(beta_k) = (1 - 1/sqrt(beta_0)) k^2/K^2 + 1/sqrt(beta_0),  beta_K = 1.
Leapfrog preserves volume; the tempering scales rho by sqrt(beta_0) overall, Jacobian beta_0^{d/2}, so
q_K(z_K, rho_K) = q(z_0|x) N(rho_0; 0, I/beta_0) beta_0^{-d/2} and the bound on log p(x) is
  L = log p(x, z_K) + log N(rho_K; 0, I) - log q(z_0|x) - log N(rho_0; 0, I/beta_0) + d/2 log beta_0
    = log p(x|z_K) - [log q(z_0|x) - log p(z_K) + |rho_K|^2/2 - |gamma|^2/2]      (the log beta_0 terms cancel).
The bracket is emitted as `kl`: a one-sample estimate of KL(q_K(z, rho|x) || p(z) N(rho; 0, I)), so recon + kl
= -L. The paper writes E|gamma|^2/2 = d/2; the per-sample |gamma|^2/2 is kept (it cancels |rho_K|^2/2 as eps -> 0).
With eps = 0 or K = 0, L is the VAE's one-sample ELBO log p(x, z_0) - log q(z_0|x).

Deviations: K = 3 by default (the paper: up to K = 5; each step is a decoder forward and double backward);
eps = exp(log_eps) and beta_0 = sigmoid(a), learned by default (`learn_beta0: false` fixes beta_0). `forward`
alone (no target: `embed`, penalties) gives the VAE's z_0 and closed-form KL; the module calls `refine`.
Cost: K + 1 gradients of log p(x, z) (a decoder forward and backward each, double backward in training), one per
step thanks to caching; log p(x, z) is summed over the batch before differentiating, exact per example for
decoders that treat examples independently (aelab's nets: no batch normalisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Normal

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.core.errors import ConfigError

LogJoint = Callable[[torch.Tensor], torch.Tensor]


def grad_log_joint(log_joint: LogJoint, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """d log p(x, z) / dz (N, d), with autograd on even under no_grad (detached then)."""
    with torch.enable_grad():
        z = z if create_graph and z.requires_grad else z.detach().requires_grad_()
        (grad,) = torch.autograd.grad(log_joint(z).sum(), z, create_graph=create_graph)
    return grad if create_graph else grad.detach()


def leapfrog(z: torch.Tensor, rho: torch.Tensor, eps: torch.Tensor, grad: Callable[[torch.Tensor], torch.Tensor],
             grad_z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One leapfrog step of H = -log p(x, z) + |rho|^2/2; returns z, rho and the gradient at the new z."""
    rho = rho + 0.5 * eps * (grad(z) if grad_z is None else grad_z)
    z = z + eps * rho
    grad_z = grad(z)
    return z, rho + 0.5 * eps * grad_z, grad_z


def inverse_sqrt_betas(beta0: torch.Tensor, steps: int) -> torch.Tensor:
    """1/sqrt(beta_k), k = 0..K, of the quadratic tempering schedule (K+1,)."""
    k = torch.arange(steps + 1, dtype=beta0.dtype, device=beta0.device)
    return (1 - beta0.rsqrt()) * (k / max(steps, 1)) ** 2 + beta0.rsqrt()


class Hamiltonian(DiagonalGaussian):
    """Emits `kl` (the bound's remainder, see above); logs beta_0, the mean step size and q(z_0|x)'s closed-form KL."""

    def __init__(self, in_features: int, latent_dim: int, steps: int = 3, step_size: float = 0.05,
                 beta0: float = 0.5, learn_beta0: bool = True) -> None:
        super().__init__(in_features, latent_dim)
        if steps < 0 or step_size <= 0 or not 0 < beta0 < 1:
            raise ConfigError(f"model.bottleneck needs steps >= 0, step_size > 0 and 0 < beta0 < 1, "
                              f"got {steps}, {step_size}, {beta0}")
        self.steps = steps
        self.log_eps = nn.Parameter(torch.full((latent_dim,), math.log(step_size)))
        self.beta0_logit = nn.Parameter(torch.tensor(math.log(beta0 / (1 - beta0))), requires_grad=learn_beta0)

    def flow(self, z: torch.Tensor, rho: torch.Tensor, log_joint: LogJoint) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_0, rho_0) -> (z_K, rho_K), (N, d) each: K tempered leapfrog steps (Jacobian beta_0^{d/2})."""
        create = torch.is_grad_enabled()
        eps, inv_sqrt = self.log_eps.exp(), inverse_sqrt_betas(torch.sigmoid(self.beta0_logit), self.steps)
        grad_z = None
        for k in range(1, self.steps + 1):
            z, rho, grad_z = leapfrog(z, rho, eps, lambda c: grad_log_joint(log_joint, c, create), grad_z)
            rho = rho * (inv_sqrt[k] / inv_sqrt[k - 1])  # sqrt(beta_{k-1} / beta_k)
        return z, rho

    def transport(self, z0: torch.Tensor, log_ratio: torch.Tensor,
                  log_joint: LogJoint) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K (N, d) and log p(z_K) + log N(rho_K) - log q_K(z_K, rho_K) from z_0 (N, d) and log p(z_0) - log q(z_0)."""
        if self.steps == 0:
            return z0, log_ratio
        gamma = torch.randn_like(z0)
        z, rho = self.flow(z0, gamma * torch.sigmoid(self.beta0_logit).rsqrt(), log_joint)  # rho_0 ~ N(0, I/beta_0)
        momentum = 0.5 * (gamma.pow(2) - rho.pow(2)).sum(-1)  # (N, d) -> (N,)
        return z, log_ratio - self.prior_log_prob(z0) + self.prior_log_prob(z) + momentum

    def refine(self, h: torch.Tensor, out: BottleneckOutput, log_joint: LogJoint) -> BottleneckOutput:
        mu, logvar = self.posterior(h)  # the parameters forward drew out.z from
        log_q0 = Normal(mu, torch.exp(0.5 * logvar)).log_prob(out.z).sum(-1)  # (B, d) -> (B,)
        z, log_ratio = self.transport(out.z, self.prior_log_prob(out.z) - log_q0, log_joint)
        stats = {**out.stats, "kl_q0": out.terms["kl"].mean().detach(), "step_size": self.log_eps.exp().mean().detach(),
                 "beta0": torch.sigmoid(self.beta0_logit).detach()}
        return BottleneckOutput(z=z, terms={"kl": -log_ratio}, stats=stats)

    def refine_samples(self, z: torch.Tensor, log_ratio: torch.Tensor,
                       log_joint: LogJoint) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint importance weights on (z, rho): E[p(x, z_K) N(rho_K) / q_K(z_K, rho_K)] = p(x)."""
        k, b = log_ratio.shape
        z, log_ratio = self.transport(z.flatten(0, 1), log_ratio.flatten(), log_joint)  # (k, B, d) -> (k*B, d)
        return z.view(k, b, -1), log_ratio.view(k, b)  # (k*B, d) -> (k, B, d); (k*B,) -> (k, B)
