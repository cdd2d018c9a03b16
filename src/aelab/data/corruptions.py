"""Input corruptions for denoising (Vincent et al. 2008, 2010): x -> x_tilde, the target stays clean.

`at_level(l)` is the same corruption at another level (std for Gaussian noise, p for the others).
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """x + N(0, std^2), clipped to [lo, hi] when `clip` is set."""

    def __init__(self, std: float = 0.3, clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__()
        self.std, self.clip = std, clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = x + self.std * torch.randn_like(x)
        return noisy.clamp(*self.clip) if self.clip is not None else noisy

    def at_level(self, level: float) -> "GaussianNoise":
        return GaussianNoise(level, self.clip)


class Masking(nn.Module):
    """Each value set to 0 with probability p (masking noise)."""

    def __init__(self, p: float = 0.3) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.rand_like(x) >= self.p)

    def at_level(self, level: float) -> "Masking":
        return Masking(level)


class SaltAndPepper(nn.Module):
    """Each value set to lo or hi (equally likely) with probability p."""

    def __init__(self, p: float = 0.2, lo: float = 0.0, hi: float = 1.0) -> None:
        super().__init__()
        self.p, self.lo, self.hi = p, lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.rand_like(x)
        salt = torch.where(torch.rand_like(x) < 0.5, self.lo, self.hi).to(x.dtype)
        return torch.where(u < self.p, salt, x)

    def at_level(self, level: float) -> "SaltAndPepper":
        return SaltAndPepper(level, self.lo, self.hi)
