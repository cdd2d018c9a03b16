"""Strided-conv encoder and transposed-conv decoder; spatial sizes follow the data's declared shape.

`down_stack` and `up_stack` build the two halves for any per-stage extra layers, so other conv families
(aelab.nets.resnet) reuse the size arithmetic instead of repeating it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from aelab.errors import ConfigError, positive_int

Stage = Callable[[int], list[nn.Module]]  # extra layers for a stage with this many channels


def downsampled_sizes(size: int, n: int) -> list[int]:
    """Spatial size after each of `n` stride-2 convs (kernel 3, padding 1): s -> floor((s - 1) / 2) + 1."""
    sizes = [size]
    for _ in range(n):
        if sizes[-1] < 2:
            raise ConfigError(f"conv: {n} stride-2 layers are too many for an input of size {size} "
                              f"(it reaches 1 after {len(sizes) - 1}); use fewer model.encoder.channels")
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


def image_sizes(shape: list[int], channels: list[int], arch: str) -> tuple[int, list[int], list[int]]:
    """Input channels and the spatial sizes after each downsampling; ConfigError on an impossible set-up."""
    if len(shape) != 3:
        raise ConfigError(f"{arch} needs image data (C, H, W), got data.shape={list(shape)}; use model/arch=mlp")
    if not channels or min(channels) < 1:
        raise ConfigError(f"{arch}: model.encoder.channels must be positive, got {list(channels)}")
    c, h, w = shape
    return c, downsampled_sizes(h, len(channels)), downsampled_sizes(w, len(channels))


def down_stack(shape: list[int], channels: list[int], activation: Callable[[], nn.Module], stage: Stage,
               arch: str) -> tuple[nn.Sequential, int]:
    """Stride-2 conv + activation + `stage(c)` per entry of channels, then flatten; returns (net, out_dim)."""
    c, hs, ws = image_sizes(shape, channels, arch)
    layers: list[nn.Module] = []
    for c_in, c_out in zip([c, *channels[:-1]], channels):
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), activation(), *stage(c_out)]
    return nn.Sequential(*layers, nn.Flatten()), channels[-1] * hs[-1] * ws[-1]


def up_stack(shape: list[int], latent_dim: int, channels: list[int], activation: Callable[[], nn.Module],
             stage: Stage, arch: str) -> nn.Sequential:
    """Linear to the last feature map, then `stage(c)` + a transposed conv per stage, restoring exact sizes."""
    c, hs, ws = image_sizes(shape, channels, arch)
    start = (channels[-1], hs[-1], ws[-1])
    layers: list[nn.Module] = [nn.Linear(positive_int("model.latent_dim", latent_dim), math.prod(start)),
                               activation(), nn.Unflatten(1, start)]  # (B, d) -> (B, C_last, h, w)
    outs = [*reversed(channels[:-1]), c]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
        j = len(channels) - 1 - i  # upsample from hs[j + 1] to hs[j]: out = 2 * in - 1 + output_padding
        pad = (hs[j] - (2 * hs[j + 1] - 1), ws[j] - (2 * ws[j + 1] - 1))
        layers += [*stage(c_in), nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad)]
        if i < len(channels) - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def no_extra(channels: int) -> list[nn.Module]:
    return []


class ConvEncoder(nn.Module):
    """One stride-2 conv + activation per entry of `channels`, then flatten: `out_dim = C_last * h * w`."""

    def __init__(self, in_shape: list[int], channels: list[int], activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.net, self.out_dim = down_stack(in_shape, channels, activation, no_extra, "conv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, C_last * h * w)


class ConvDecoder(nn.Module):
    """Linear to the encoder's last feature map, then transposed convs that restore the exact sizes."""

    def __init__(self, out_shape: list[int], latent_dim: int, channels: list[int], activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.net = up_stack(out_shape, latent_dim, channels, activation, no_extra, "conv")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, d) -> (B, C_last, h, w) -> ... -> (B, C, H, W)
