"""Residual conv encoder/decoder (He et al. 2016, "Deep Residual Learning for Image Recognition").

The interface mirrors aelab.nets.conv: per entry of `channels` one stride-2 conv halves H and W, followed by
`blocks` residual blocks x -> act(x + conv3x3(act(conv3x3(x)))); the decoder mirrors it with transposed convs
whose output_padding restores the exact declared sizes, so any (C, H, W) round-trips.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from aelab.core.errors import ConfigError
from aelab.nets.conv import CONVS, down_stack, up_stack


class ResidualBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut, then the activation; keeps (B, C, H, W) (or (B, C, L) with Conv1d)."""

    def __init__(self, channels: int, activation: Callable[[], nn.Module], conv: type[nn.Module] = nn.Conv2d) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3, padding=1), activation(),
                                  conv(channels, channels, 3, padding=1))
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _blocks(blocks: int, activation: Callable[[], nn.Module], shape: list[int]) -> Callable[[int], list[nn.Module]]:
    """The per-stage extra layers: `blocks` residual blocks at that stage's width, 1-D for signals (C, L)."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ConfigError(f"resnet: model.encoder.blocks must be an integer >= 0, got {blocks!r}")
    conv = CONVS.get(len(shape) - 1, (nn.Conv2d,))[0]
    return lambda channels: [ResidualBlock(channels, activation, conv) for _ in range(blocks)]


class ResNetEncoder(nn.Module):
    """Stride-2 conv + activation + residual blocks per stage, then flatten: `out_dim = C_last * h * w`."""

    def __init__(self, in_shape: list[int], channels: list[int], blocks: int,
                 activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.net, self.out_dim = down_stack(in_shape, channels, activation, _blocks(blocks, activation, in_shape), "resnet")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, C_last * h * w)


class ResNetDecoder(nn.Module):
    """Linear to the encoder's last feature map, then residual blocks + transposed conv per stage."""

    def __init__(self, out_shape: list[int], latent_dim: int, channels: list[int], blocks: int,
                 activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.net = up_stack(out_shape, latent_dim, channels, activation, _blocks(blocks, activation, out_shape), "resnet")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, d) -> (B, C_last, h, w) -> ... -> (B, C, H, W)
