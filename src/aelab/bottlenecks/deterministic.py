"""Plain undercomplete bottleneck: a linear map of the features to a d-dimensional code; `PriorCode` is the same
code with an N(0, I) prior that a term elsewhere pulls it to (WAE's MMD, the adversarial AE's discriminator)."""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput


class Deterministic(Bottleneck):
    """z = a(W h + b), a the identity unless `activation` is set (e.g. torch.nn.Sigmoid for kl_sparse_ae); no loss terms."""

    def __init__(self, in_features: int, latent_dim: int, activation: nn.Module | None = None) -> None:
        super().__init__(in_features, latent_dim)
        self.proj = nn.Linear(in_features, latent_dim)
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        return BottleneckOutput(z=self.activation(self.proj(h)))  # (B, F) -> (B, d)


class PriorCode(Deterministic):
    """A deterministic code with the N(0, I) prior to sample from; the matching is another part's term."""

    has_prior = True

    def sample_prior(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.proj.weight.device)
