"""CIWAE, MIWAE and PIWAE (Rainforth et al. 2018, "Tighter Variational Bounds are Not Necessarily Better").

With log weights log w = log p(x|z) + log p(z) - log q(z|x) of codes z ~ q(z|x) (as `ImportanceWeighted`),
IWAE_K = log (1/K) sum_k w_k and ELBO_K = (1/K) sum_k log w_k:
    CIWAE_beta    = beta ELBO_K + (1 - beta) IWAE_K                     (K codes)
    MIWAE_{M,K}   = (1/M) sum_m IWAE_K(group m)                         (M groups of K codes)
    PIWAE_{M,K}:  the generative network (decoder, likelihood) follows IWAE_{MK} of all M*K codes, the inference
                  network (encoder, posterior projection) MIWAE_{M,K} of the same codes (Rainforth et al.'s
                  section 4 and pythae's PIWAE; its value, the loss logged, is -IWAE_{MK}).
PIWAE's two gradients come from one decoder pass: d(-IWAE_MK)/d log w_s = -a_s (softmax over all codes) reaches
the decoder; MIWAE's weights are b_s = softmax over s's group / M, so the gradient flowing back into code z_s is
scaled by b_s / a_s = exp(LSE_all - LSE_group - log M) (`ScaleGrad`, set in `objective` before backward) and
the kl term joins with weights b_s. Exact when the decoder treats codes independently (no batch statistics), up
to float underflow: a code whose a_s underflows (its group's share of the total weight below ~e^-100 in float32)
passes no gradient to the encoder. On skip-connected nets (unet) the encoder's gradient through the skip maps keeps
the decoder's weights a_s; a penalty or adversary on the codes has its gradient to the encoder scaled too.
"""

from __future__ import annotations

import math

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.importance import ImportanceWeighted
from aelab.core.errors import ConfigError, positive_int


class CombinationIW(ImportanceWeighted):
    """CIWAE: beta * ELBO_K + (1 - beta) * IWAE_K on K = `samples` codes; beta = 0 is IWAE, 1 the K-sample VAE."""

    def __init__(self, in_features: int, latent_dim: int, samples: int = 5, beta: float = 0.5) -> None:
        super().__init__(in_features, latent_dim, samples)
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"model.bottleneck.beta must be in [0, 1] (CIWAE's mix of ELBO and IWAE), got {beta}")
        self.beta = float(beta)

    def objective(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        log_w = self.log_weights(recon, terms, weights)  # (K, B)
        iwae = torch.logsumexp(log_w, dim=0) - math.log(self.samples)
        return -(self.beta * log_w.mean(dim=0) + (1.0 - self.beta) * iwae)  # (B,)


class MultiplyIW(ImportanceWeighted):
    """MIWAE: the mean of M = `groups` IWAE_K bounds, K = `samples` codes each (M * K codes drawn per input)."""

    def __init__(self, in_features: int, latent_dim: int, samples: int = 4, groups: int = 4) -> None:
        self.group_size = positive_int("model.bottleneck.samples", samples)
        self.groups = positive_int("model.bottleneck.groups", groups)
        super().__init__(in_features, latent_dim, samples * groups)  # self.samples: the M * K codes drawn

    def grouped(self, log_w: torch.Tensor) -> torch.Tensor:
        return log_w.view(self.groups, self.group_size, -1)  # (M*K, B) -> (M, K, B): code s = m * K + k

    def objective(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        log_w = self.grouped(self.log_weights(recon, terms, weights))
        return -(torch.logsumexp(log_w, dim=1) - math.log(self.group_size)).mean(dim=0)  # (M, B) -> (B,)


MAX_LOG_SCALE = 80.0  # e^80 is finite in float32; a code whose IWAE weight underflowed passes 0, not 0 * inf = NaN


class ScaleGrad(torch.autograd.Function):
    """Identity on codes (N, d); backward multiplies row n's gradient by scale[n], filled in before backward."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.scale = scale  # not saved_for_backward: `objective` writes it in place after this forward
        return z.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        if torch.isnan(ctx.scale).any():
            raise RuntimeError("PIWAE: backward through codes whose objective was never computed "
                               "(call bottleneck.objective on this forward's reconstruction first)")
        return grad * ctx.scale.unsqueeze(-1), None  # (N, d) * (N, 1)


class PartiallyIW(MultiplyIW):
    """PIWAE: decoder on IWAE_{MK}, encoder on MIWAE_{M,K}, from the same M * K codes and one decoder pass."""

    def __init__(self, in_features: int, latent_dim: int, samples: int = 4, groups: int = 4) -> None:
        super().__init__(in_features, latent_dim, samples, groups)
        self.pending: torch.Tensor | None = None  # the gradient scales of the last forward's codes, until objective

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        out = super().forward(h)
        self.pending = None
        if torch.is_grad_enabled() and out.z.requires_grad:  # kl keeps the unscaled codes: only the decoder's path
            self.pending = torch.full((len(out.z),), math.nan, dtype=out.z.dtype, device=out.z.device)
            out.z = ScaleGrad.apply(out.z, self.pending)
        return out

    def objective(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        kl = weights.get("kl", 1.0) * terms["kl"]
        log_w = self.grouped(-(recon + kl).detach().view(self.samples, -1))  # (M, K, B)
        total = torch.logsumexp(log_w.flatten(0, 1), dim=0)  # (B,)
        group = torch.logsumexp(log_w, dim=1, keepdim=True)  # (M, 1, B)
        if self.pending is not None and len(self.pending) == len(recon):  # MIWAE's / IWAE_MK's weight of each code
            log_scale = (total - group - math.log(self.groups)).clamp(max=MAX_LOG_SCALE)  # finite: 0 * scale stays 0
            self.pending.copy_(log_scale.exp().expand_as(log_w).flatten())
            self.pending = None
        miwae_weights = (log_w - group).exp().div(self.groups).flatten()  # (M, K, B) -> (M*K*B,), sample-major
        log_w_decoder = -(recon + kl.detach()).view(self.samples, -1)  # (M*K, B): only recon carries gradient
        iwae = torch.logsumexp(log_w_decoder, dim=0) - math.log(self.samples)
        kl_encoder = (miwae_weights * kl).view(self.samples, -1).sum(dim=0)  # (B,): gradient b_s d kl_s, value 0 below
        return -iwae + kl_encoder - kl_encoder.detach()
