"""Strided-conv encoder and transposed-conv decoder; spatial sizes follow the data's declared shape: images
(C, H, W) get 2-D convolutions, signals (C, L) such as audio clips 1-D ones (model/arch=conv1d).

`down_stack` and `up_stack` build the two halves for any per-stage extra layers, so other conv families
(aelab.nets.resnet) reuse the size arithmetic instead of repeating it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from aelab.core.errors import ConfigError, positive_int

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


CONVS = {1: (nn.Conv1d, nn.ConvTranspose1d), 2: (nn.Conv2d, nn.ConvTranspose2d)}  # by number of spatial axes


def feature_sizes(shape: list[int], channels: list[int], arch: str, kernel_size: int = 3) -> tuple[int, list[list[int]]]:
    """Input channels and, per spatial axis, the sizes after each downsampling; ConfigError on an impossible set-up."""
    if len(shape) not in (2, 3):
        raise ConfigError(f"{arch} needs signals (C, L) or images (C, H, W), got data.shape={list(shape)}; "
                          "use model/arch=mlp")
    if not channels or min(channels) < 1:
        raise ConfigError(f"{arch}: model.encoder.channels must be positive, got {list(channels)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"{arch}: model.encoder.kernel_size must be odd, got {kernel_size}")
    return shape[0], [downsampled_sizes(size, len(channels)) for size in shape[1:]]


def down_stack(shape: list[int], channels: list[int], activation: Callable[[], nn.Module], stage: Stage,
               arch: str, kernel_size: int = 3) -> tuple[nn.Sequential, int]:
    """Stride-2 conv + activation + `stage(c)` per entry of channels, then flatten; returns (net, out_dim)."""
    c, sizes = feature_sizes(shape, channels, arch, kernel_size)
    conv = CONVS[len(sizes)][0]
    layers: list[nn.Module] = []
    for c_in, c_out in zip([c, *channels[:-1]], channels):
        layers += [conv(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2), activation(), *stage(c_out)]
    return nn.Sequential(*layers, nn.Flatten()), channels[-1] * math.prod(axis[-1] for axis in sizes)


def up_stack(shape: list[int], latent_dim: int, channels: list[int], activation: Callable[[], nn.Module],
             stage: Stage, arch: str, kernel_size: int = 3) -> nn.Sequential:
    """Linear to the last feature map, then `stage(c)` + a transposed conv per stage, restoring exact sizes."""
    c, sizes = feature_sizes(shape, channels, arch, kernel_size)
    transposed = CONVS[len(sizes)][1]
    start = (channels[-1], *(axis[-1] for axis in sizes))
    layers: list[nn.Module] = [nn.Linear(positive_int("model.latent_dim", latent_dim), math.prod(start)),
                               activation(), nn.Unflatten(1, start)]  # (B, d) -> (B, C_last, *spatial)
    outs = [*reversed(channels[:-1]), c]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
        j = len(channels) - 1 - i  # upsample from size[j + 1] to size[j]: out = 2 * in - 1 + output_padding
        pad = tuple(axis[j] - (2 * axis[j + 1] - 1) for axis in sizes)
        layers += [*stage(c_in), transposed(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2,
                                            output_padding=pad)]
        if i < len(channels) - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def no_extra(channels: int) -> list[nn.Module]:
    return []


class ConvEncoder(nn.Module):
    """One stride-2 conv + activation per entry of `channels`, then flatten: `out_dim = C_last * h * w` (or * l)."""

    def __init__(self, in_shape: list[int], channels: list[int], activation: Callable[[], nn.Module],
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.net, self.out_dim = down_stack(in_shape, channels, activation, no_extra, "conv", kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, C_last * h * w); (B, C, L) -> (B, C_last * l)


class ConvDecoder(nn.Module):
    """Linear to the encoder's last feature map, then transposed convs that restore the exact sizes."""

    def __init__(self, out_shape: list[int], latent_dim: int, channels: list[int], activation: Callable[[], nn.Module],
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.net = up_stack(out_shape, latent_dim, channels, activation, no_extra, "conv", kernel_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, d) -> (B, C_last, h, w) -> ... -> (B, C, H, W)
