"""Fully connected encoder/decoder; with no hidden layers and an identity activation it is linear (PCA-like)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from aelab.core.errors import ConfigError, positive_int


def _stack(sizes: list[int], activation: Callable[[], nn.Module], last_activation: bool) -> list[nn.Module]:
    """Linear layers between consecutive sizes, an activation after each (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation())
    return layers


def _check(shape: list[int], hidden: list[int]) -> None:
    if any(int(s) < 1 for s in shape) or any(int(h) < 1 for h in hidden):
        raise ConfigError(f"mlp sizes must be positive: shape={list(shape)}, hidden={list(hidden)}")


class MLPEncoder(nn.Module):
    """Flatten, then Linear+activation per hidden size; `out_dim` is the last hidden size (or the input size)."""

    def __init__(self, in_shape: list[int], hidden: list[int], activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        _check(in_shape, hidden)
        sizes = [math.prod(in_shape), *hidden]
        self.out_dim = sizes[-1]
        self.net = nn.Sequential(nn.Flatten(), *_stack(sizes, activation, last_activation=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, out_dim)


class MLPDecoder(nn.Module):
    """Mirror of the encoder: latent -> reversed hidden sizes -> flat output, reshaped to `out_shape`."""

    def __init__(self, out_shape: list[int], latent_dim: int, hidden: list[int], activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        _check(out_shape, hidden)
        self.out_shape = list(out_shape)
        sizes = [positive_int("model.latent_dim", latent_dim), *reversed(hidden), math.prod(out_shape)]
        self.net = nn.Sequential(*_stack(sizes, activation, last_activation=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)  # (B, d) -> (B, C, H, W)
