"""k-sparse bottleneck (Makhzani & Frey 2013, "k-Sparse Autoencoders").

z = W h + b with linear activations, then only the k largest entries of each code are kept and the rest set
to zero; the gradient flows back through the kept entries only (the support is treated as a constant).
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


class TopK(Bottleneck):
    """Keeps the k largest of the d pre-activations per example; no loss terms."""

    def __init__(self, in_features: int, latent_dim: int, k: int) -> None:
        super().__init__(in_features, latent_dim)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= latent_dim:
            raise ConfigError(f"topk: need 1 <= model.bottleneck.k <= model.latent_dim={latent_dim}, got k={k!r}")
        self.k = k
        self.proj = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        pre = self.proj(h)  # (B, F) -> (B, d)
        values, idx = pre.topk(self.k, dim=-1)  # (B, d) -> 2 x (B, k)
        z = torch.zeros_like(pre).scatter(-1, idx, values)  # (B, k) -> (B, d), zeros off the support
        return BottleneckOutput(z=z)
