"""Plain undercomplete bottleneck: a linear map of the features to a d-dimensional code."""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput


class Deterministic(Bottleneck):
    """z = W h + b; no loss terms."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        return BottleneckOutput(z=self.proj(h))  # (B, F) -> (B, d)
