"""Input corruptions for denoising (Vincent et al. 2008, 2010): x -> x_tilde, the target stays clean.

`at_level(l)` is the same corruption at another level (std for Gaussian noise, p for the others).
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.core.errors import ConfigError


class GaussianNoise(nn.Module):
    """x + N(0, std^2), clipped to [lo, hi] when `clip` is set. `std` may be a range [lo, hi]: each example's std is
    then drawn uniformly from it (one model for a range of noise levels, "blind" denoising)."""

    def __init__(self, std: float | list[float] = 0.3, clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__()
        if not isinstance(std, (int, float)) and not (len(std) == 2 and 0 <= std[0] <= std[1]):
            raise ConfigError(f"task.corruption.std must be a number or a range [lo, hi] with 0 <= lo <= hi, got {std}")
        self.std, self.clip = std if isinstance(std, (int, float)) else tuple(std), clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = self.std
        if isinstance(std, tuple):  # (B, 1, ...) per-example levels
            std = torch.empty(len(x), *[1] * (x.ndim - 1), dtype=x.dtype, device=x.device).uniform_(*std)
        noisy = x + std * torch.randn_like(x)
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


def per_example(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ...) broadcastable against x."""
    return values.view(len(x), *[1] * (x.ndim - 1))


class AdditiveNoise(nn.Module):
    """Audio: white Gaussian noise scaled per example to a signal-to-noise ratio of `snr_db` (a number, or a range
    [lo, hi] drawn uniformly per example); SNR = 10 log10(sum x^2 / sum n^2)."""

    def __init__(self, snr_db: float | list[float] = 5.0) -> None:
        super().__init__()
        self.snr_db = snr_db if isinstance(snr_db, (int, float)) else tuple(snr_db)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.snr_db, tuple):
            snr = torch.empty(len(x), dtype=x.dtype, device=x.device).uniform_(*self.snr_db)
        else:
            snr = torch.full((len(x),), float(self.snr_db), dtype=x.dtype, device=x.device)
        noise = torch.randn_like(x)
        power = x.flatten(1).pow(2).sum(1) / noise.flatten(1).pow(2).sum(1)  # (B,) signal / unit-noise energy
        return x + noise * per_example(x, torch.sqrt(power * 10 ** (-snr / 10)))

    def at_level(self, level: float) -> "AdditiveNoise":
        return AdditiveNoise(level)


class Clipping(nn.Module):
    """Audio: every sample clamped to +-`level` times the example's peak (level in (0, 1]; smaller is harsher)."""

    def __init__(self, level: float = 0.3) -> None:
        super().__init__()
        if not 0 < level <= 1:
            raise ConfigError(f"task.corruption.level must be in (0, 1], got {level}")
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = per_example(x, self.level * x.flatten(1).abs().amax(1))
        return torch.minimum(torch.maximum(x, -limit), limit)

    def at_level(self, level: float) -> "Clipping":
        return Clipping(level)


class DroppedSegments(nn.Module):
    """Audio: each segment of `segment` samples along the last axis set to 0 with probability p (lost packets)."""

    def __init__(self, p: float = 0.2, segment: int = 256) -> None:
        super().__init__()
        self.p, self.segment = p, segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = -(-x.shape[-1] // self.segment)  # segments per example, the last one may be short
        keep = (torch.rand(*x.shape[:-1], n, device=x.device) >= self.p).to(x.dtype)  # (B, C, n)
        return x * keep.repeat_interleave(self.segment, dim=-1)[..., : x.shape[-1]]

    def at_level(self, level: float) -> "DroppedSegments":
        return DroppedSegments(level, self.segment)
