"""DIP-VAE: the VAE plus a penalty pulling a covariance of the aggregate posterior to the identity (Kumar et al.
2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled Observations", Eqs. 6 and 7).

With the batch covariance Cov[mu] = E[mu mu^T] - E[mu] E[mu]^T (1/B, as disentanglement_lib computes it),
  type i:  C = Cov_p(x)[mu(x)]
  type ii: C = Cov_p(x)[mu(x)] + E_p(x)[diag(sigma^2(x))]   (the covariance of q(z))
  dip_offdiag = sum_{k != l} C_kl^2,   dip_diag = sum_k (C_kk - 1)^2,
weighted by lambda_od and lambda_d in YAML. Both are batch values, the same for every example.
"""

from __future__ import annotations

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.core.errors import ConfigError

DIP_TYPES = ("i", "ii")


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """The covariance C (d, d) that DIP-VAE type `dip_type` regularises, from a batch mu, logvar (B, d)."""
    centred = mu - mu.mean(0)  # (B, d)
    cov = centred.T @ centred / len(mu)  # (d, B) @ (B, d) -> (d, d)
    return cov + torch.diag(logvar.exp().mean(0)) if dip_type == "ii" else cov


def dip_penalties(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squared off-diagonal entries, sum of squared deviations of the diagonal from 1) of C (d, d)."""
    diag = cov.diagonal()
    return (cov - torch.diag(diag)).pow(2).sum(), (diag - 1.0).pow(2).sum()


class DIPGaussian(DiagonalGaussian):
    """DiagonalGaussian that also emits `dip_offdiag` and `dip_diag` (batch values expanded to (B,))."""

    terms = ("kl", "dip_offdiag", "dip_diag")

    def __init__(self, in_features: int, latent_dim: int, dip_type: str = "i") -> None:
        super().__init__(in_features, latent_dim)
        if dip_type not in DIP_TYPES:
            raise ConfigError(f"model.bottleneck.dip_type must be 'i' or 'ii', got {dip_type!r}")
        self.dip_type = dip_type

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        out = super().forward(h)
        offdiag, diag = dip_penalties(dip_covariance(*self.posterior(h), self.dip_type))
        out.terms["dip_offdiag"] = offdiag.expand(len(h))
        out.terms["dip_diag"] = diag.expand(len(h))
        return out
