"""Residual finite scalar quantization: FSQ (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple") applied in turn to what is left, as residual vector quantization (Zeghidour et al. 2021, "SoundStream: An
End-to-End Neural Audio Codec", Algorithm 1) and the vector-quantize-pytorch package's ResidualFSQ.

Stage s quantizes the residual r_s at scale c_s = (L - 1)^(-s) per dim, so each stage works on a grid L - 1 times
finer than the one before (the spacing of stage s's levels is 1 / floor(L/2), the residual it leaves at most half that):
    r_0 = z_e,    q_s = c_s * FSQ(r_s / c_s),    r_{s+1} = r_s - sg(q_s),    z = sum_s q_s,
each FSQ with the straight-through rounding. Stats are the mean over stages of each stage's implicit-codebook
statistics. No loss term.
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.fsq import FSQ
from aelab.bottlenecks.usage import CodeUsage
from aelab.core.errors import ConfigError


class ResidualFSQ(FSQ):
    """`stages` FSQ quantizers of the same levels on successive residuals; z is the sum of their codes."""

    def __init__(self, in_features: int, latent_dim: int, levels: list[int] = (8, 5, 5, 5), stages: int = 4,
                 eps: float = 1e-3, decay: float = 0.99, dead_threshold: float = 1e-3) -> None:
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ConfigError(f"rfsq: model.bottleneck.stages must be a positive integer, got {stages!r}")
        super().__init__(in_features, latent_dim, levels, eps, decay, dead_threshold)
        self.stages = stages
        self.usage = nn.ModuleList(CodeUsage(self.num_codes, decay, dead_threshold) for _ in range(stages))
        scales = (self.levels - 1).pow(-torch.arange(stages, dtype=torch.float32)[:, None])  # (S, 1), (n,) -> (S, n)
        self.register_buffer("scales", scales, persistent=False)

    def _codes(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residual = self.proj(h).view(len(h), self.groups, self.code_dim)  # (B, F) -> (B, d) -> (B, G, n)
        z = torch.zeros_like(residual)
        indices = []
        for scale in self.scales:  # (n,) per stage
            q = self.quantize(residual / scale)  # on the normalised grid
            indices.append(self.index(q))
            residual = residual - (q * scale).detach()
            z = z + q * scale
        return z.reshape(len(h), -1), torch.stack(indices)  # (B, G, n) -> (B, d); S x (B, G) -> (S, B, G)
