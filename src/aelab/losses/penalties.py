"""Loss terms that need the networks, not just the code: each returns a per-sample (B,) tensor.

- ActivityL1: sparse autoencoder's L1 activity penalty ||z||_1 (Ng 2011, "Sparse autoencoder" notes).
- KLSparsity: the same notes' sparsity penalty sum_j KL(rho || rho_hat_j) = sum_j [rho log(rho / rho_hat_j) +
  (1 - rho) log((1 - rho) / (1 - rho_hat_j))], rho_hat_j the batch-mean activation of sigmoid code unit j.
- CodeL2: RAE's 0.5 ||z||^2 on the code (Ghosh et al. 2020, "From Variational to Deterministic Autoencoders").
- DecoderL2: RAE-L2's weight decay on the decoder, sum of squared decoder weights (same for every sample).
- EncoderJacobian: CAE's ||dz/dx||_F^2 (Rifai et al. 2011, "Contractive Auto-Encoders").
- DecoderJacobian: RAE-GP's gradient penalty ||dx_hat/dz||_F^2, estimated with random projections.
"""

from __future__ import annotations

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.core.errors import ConfigError


class Penalty:
    """`penalty(module, x, b) -> (B,)` from the module, its input batch and the bottleneck output."""

    def __call__(self, module: torch.nn.Module, x: torch.Tensor, b: BottleneckOutput) -> torch.Tensor:
        raise NotImplementedError


class ActivityL1(Penalty):
    def __call__(self, module, x, b):
        return b.z.abs().sum(dim=1)


class KLSparsity(Penalty):
    """A batch statistic: every example gets the batch's penalty, so the batch mean of the term is the penalty."""

    def __init__(self, rho: float = 0.05, eps: float = 1e-6) -> None:
        if not 0.0 < rho < 1.0:
            raise ConfigError(f"model.penalties.kl_sparsity.rho must be in (0, 1), got {rho!r}")
        self.rho, self.eps = rho, eps

    def __call__(self, module, x, b):
        if b.z.min() < 0.0 or b.z.max() > 1.0:  # rho_hat is a firing rate: sigmoid units only
            raise ConfigError("kl_sparsity needs codes in [0, 1]: set model.bottleneck.activation to torch.nn.Sigmoid")
        rho_hat = b.z.mean(dim=0).clamp(self.eps, 1.0 - self.eps)  # (B, d) -> (d,)
        rho = self.rho
        kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
        return kl.sum().expand(len(b.z))  # () -> (B,)


class CodeL2(Penalty):
    def __call__(self, module, x, b):
        return 0.5 * b.z.pow(2).sum(dim=1)


class DecoderL2(Penalty):
    def __call__(self, module, x, b):
        total = sum(p.pow(2).sum() for name, p in module.decoder.named_parameters() if name.endswith("weight"))
        return total.expand(len(x))


def _squared_jacobian_norm(outputs: torch.Tensor, inputs: torch.Tensor, projections: int) -> torch.Tensor:
    """||d outputs / d inputs||_F^2 per sample: exact (one pass per output dim) or E_v ||v^T J||^2, v ~ N(0, I)."""
    flat = outputs.flatten(1)  # (B, ...) -> (B, M)
    rows = range(flat.shape[1]) if projections == 0 else range(projections)
    total = torch.zeros(len(flat), device=flat.device)
    for j in rows:
        v = torch.zeros_like(flat).index_fill_(1, torch.tensor([j], device=flat.device), 1.0) if projections == 0 \
            else torch.randn_like(flat)
        (g,) = torch.autograd.grad(flat, inputs, grad_outputs=v, create_graph=True)
        total = total + g.flatten(1).pow(2).sum(dim=1)
    return total if projections == 0 else total / projections


class EncoderJacobian(Penalty):
    """Exact Frobenius norm of the encoder Jacobian when `projections=0` (d backward passes), else estimated."""

    def __init__(self, projections: int = 0) -> None:
        self.projections = projections

    def __call__(self, module, x, b):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            z = module.encode(x)
            return _squared_jacobian_norm(z, x, self.projections)


class DecoderJacobian(Penalty):
    """Gradient penalty on the decoder around the codes of the batch."""

    def __init__(self, projections: int = 1) -> None:
        self.projections = projections

    def __call__(self, module, x, b):
        with torch.enable_grad():
            z = b.z.detach().requires_grad_(True)
            return _squared_jacobian_norm(module.decoder(z), z, self.projections)
