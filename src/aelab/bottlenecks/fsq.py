"""Finite scalar quantization (Mentzer, Minnen, Agustsson & Tschannen 2023, "Finite Scalar Quantization: VQ-VAE
Made Simple").

The latent z_e = W h + b (B, d) is split into G = d / n positions of n = len(levels) dims. Dim i of a position is
bounded to L_i values and rounded with the straight-through gradient, then normalised to [-1, 1]:
    f(z) = h_L tanh(z + s) - o,   h_L = (L - 1)(1 + eps) / 2,   o = 1/2 for even L (0 for odd),   s = atanh(o / h_L),
    z_q = round(f(z)) / floor(L / 2),   d z_q / d z := f'(z) / floor(L / 2)   (straight-through rounding).
For odd L this is the paper's floor(L/2) tanh(z) up to eps; for even L the half-level offset makes round(f) take
the L integers -L/2 .. L/2 - 1 (the paper's appendix code; eps = 1e-3 makes the extreme levels reachable). The
implicit codebook is the product grid of prod(L_i) codes; a code's index is the mixed-radix number of its digits
round(f) + floor(L_i / 2). No codebook is learned and no loss term is added.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.usage import CodeUsage
from aelab.core.errors import ConfigError


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) exactly, with gradient 1 (straight-through): round(x) + (x - sg(x))."""
    return x.round() + (x - x.detach())


class FSQ(Bottleneck):
    """No loss terms; logs the implicit codebook's `perplexity`, `codebook_usage` and `dead_codes` (bottlenecks.usage)."""

    stages = 1  # quantizers applied in turn to the residual (ResidualFSQ: more)

    def __init__(self, in_features: int, latent_dim: int, levels: list[int] = (8, 5, 5, 5), eps: float = 1e-3,
                 decay: float = 0.99, dead_threshold: float = 1e-3) -> None:
        super().__init__(in_features, latent_dim)
        levels = list(levels)
        if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in levels):
            raise ConfigError(f"fsq: model.bottleneck.levels must be integers >= 2, got {levels}")
        if latent_dim % len(levels):
            raise ConfigError(f"fsq: model.latent_dim={latent_dim} must be a multiple of len(model.bottleneck.levels)="
                              f"{len(levels)} (levels {levels})")
        if not 0 < eps < 1:
            raise ConfigError(f"fsq: model.bottleneck.eps must be in (0, 1), got {eps}")
        self.levels_list, self.eps = levels, eps
        self.code_dim, self.groups, self.num_codes = len(levels), latent_dim // len(levels), math.prod(levels)
        self.proj = nn.Linear(in_features, latent_dim)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)  # (n,) mixed-radix place values
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32), persistent=False)  # (n,)
        self.register_buffer("basis", basis, persistent=False)  # (n,)
        self.usage = nn.ModuleList(CodeUsage(self.num_codes, decay, dead_threshold) for _ in range(self.stages))

    @property
    def half_width(self) -> torch.Tensor:
        """floor(L / 2) per dim (n,): the normaliser to [-1, 1]."""
        return torch.div(self.levels, 2, rounding_mode="floor")

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) (..., n): into (-h_L - o, h_L - o), so rounding gives L integers per dim."""
        half_l = (self.levels - 1) * (1 + self.eps) / 2
        offset = (self.levels % 2 == 0).to(z.dtype) / 2
        return torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (..., n) on the normalised level grid, straight-through: round(f(z)) / floor(L / 2)."""
        return round_ste(self.bound(z)) / self.half_width

    def index(self, q: torch.Tensor) -> torch.Tensor:
        """Implicit-codebook index (...) of normalised codes q (..., n): sum_i digit_i * prod_{j<i} L_j."""
        digits = (q.detach() * self.half_width + self.half_width).round().long()  # (..., n) in 0 .. L - 1
        return (digits * self.basis).sum(-1)

    def grid(self) -> torch.Tensor:
        """All prod(L) codes (K, n) of the implicit codebook, row k having index k."""
        k = torch.arange(self.num_codes, device=self.basis.device)
        digits = torch.div(k[:, None], self.basis, rounding_mode="floor") % self.levels.long()  # (K, n)
        return (digits - self.half_width) / self.half_width

    def _codes(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized code z (B, d) and its indices (stages, B, G)."""
        z_e = self.proj(h).view(len(h), self.groups, self.code_dim)  # (B, F) -> (B, d) -> (B, G, n)
        q = self.quantize(z_e)
        return q.reshape(len(h), -1), self.index(q).unsqueeze(0)  # (B, G, n) -> (B, d); (B, G) -> (1, B, G)

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Implicit-codebook indices (stages, B, G) of features h (B, F)."""
        return self._codes(h)[1]

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z, idx = self._codes(h)
        per_stage = [usage.stats(i, update=self.training) for usage, i in zip(self.usage, idx)]
        stats = {k: torch.stack([s[k] for s in per_stage]).mean() for k in per_stage[0]}  # mean over stages
        return BottleneckOutput(z=z, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self._codes(h)[0]
