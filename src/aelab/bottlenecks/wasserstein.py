"""Wasserstein autoencoder, MMD variant (Tolstikhin et al. 2018, "Wasserstein Auto-Encoders").

A deterministic code whose aggregate distribution is pulled to the prior N(0, I) by the unbiased MMD^2
estimate between the batch of codes and a batch of prior samples, with the inverse multiquadratic kernel
k(x, y) = sum_c c / (c + ||x - y||^2), c = scale * 2 d (the paper's C = 2 d sigma^2 at several scales).
"""

from __future__ import annotations

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.deterministic import PriorCode


def imq_mmd(z: torch.Tensor, prior: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Unbiased MMD^2 between samples z (B, d) and prior (B, d) under a sum of IMQ kernels."""
    n, d = z.shape
    off_diag = 1.0 - torch.eye(n, device=z.device)
    total = z.new_zeros(())
    for scale in scales:
        c = 2.0 * d * scale
        k = lambda a, b, c=c: c / (c + torch.cdist(a, b).pow(2))  # noqa: E731  (B, d) x (B, d) -> (B, B)
        within = ((k(z, z) + k(prior, prior)) * off_diag).sum() / (n * (n - 1))
        total = total + within - 2.0 * k(z, prior).mean()
    return total


class WassersteinMMD(PriorCode):
    """Emits `mmd` (the batch's MMD^2, the same value for every example); samples from the N(0, I) prior."""

    terms = ("mmd",)

    def __init__(self, in_features: int, latent_dim: int, scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> None:
        super().__init__(in_features, latent_dim)
        self.scales = tuple(scales)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z = self.proj(h)  # (B, F) -> (B, d)
        mmd = imq_mmd(z, torch.randn_like(z), self.scales) if len(z) > 1 else z.new_zeros(())
        return BottleneckOutput(z=z, terms={"mmd": mmd.expand(len(z))})
