"""Colour spaces that colorization can predict in: channel 0 is luminance, channels 1-2 chroma, all scaled to about [0, 1].

`ycbcr`: full-range BT.601 YCbCr (JPEG), whose Y is exactly the grayscale that `task=colorize` shows the model, so a
luminance passed through from the input is the target's. `lab`: CIE L*a*b* (sRGB, D65), L/100 and a/256 + 0.5,
b/256 + 0.5; its L is computed from linearised RGB, so the BT.601 gray input's L differs slightly from the target's.
Both directions are differentiable torch ops on (B, 3, H, W); `rgb` is the identity.
"""

from __future__ import annotations

import torch

from aelab.core.errors import ConfigError

SPACES = ("rgb", "ycbcr", "lab")
_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
_YCBCR_INV, _XYZ_INV = torch.linalg.inv(_YCBCR.double()).float(), torch.linalg.inv(_XYZ.double()).float()
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])  # D65, as scikit-image's rgb2lab
_DELTA = 6 / 29


def check_space(name: str) -> str:
    if name not in SPACES:
        raise ConfigError(f"colour space must be one of {', '.join(SPACES)}, got {name!r}")
    return name


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel 3x3 matrix product: (3, 3) and (B, 3, H, W) -> (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(x), x).contiguous()


def _shift(x: torch.Tensor, sign: float) -> torch.Tensor:
    """Add sign * 0.5 to the chroma channels 1-2."""
    offset = torch.tensor([0.0, sign * 0.5, sign * 0.5], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x + offset


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA**3, t.clamp(min=_DELTA**3) ** (1 / 3), t / (3 * _DELTA**2) + 4 / 29)


def _lab_f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4 / 29))


def to_space(rgb: torch.Tensor, name: str) -> torch.Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> the named space (B, 3, H, W)."""
    if name == "rgb":
        return rgb
    if name == "ycbcr":
        return _shift(_mix(_YCBCR, rgb), 1.0)
    linear = torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    f = _lab_f(_mix(_XYZ, linear) / _WHITE.to(rgb).view(1, 3, 1, 1))  # (B, 3, H, W): f(X/Xn), f(Y/Yn), f(Z/Zn)
    lab = torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)
    return _shift(lab / torch.tensor([100.0, 256.0, 256.0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1), 1.0)


def to_rgb(x: torch.Tensor, name: str) -> torch.Tensor:
    """The named space (B, 3, H, W) -> RGB (B, 3, H, W), not clipped."""
    if name == "rgb":
        return x
    if name == "ycbcr":
        return _mix(_YCBCR_INV, _shift(x, -1.0))
    lab = _shift(x, -1.0) * torch.tensor([100.0, 256.0, 256.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    linear = _mix(_XYZ_INV, _lab_f_inv(f) * _WHITE.to(x).view(1, 3, 1, 1))
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
