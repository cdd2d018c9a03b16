"""Binary codes by noisy sigmoid units (Salakhutdinov & Hinton 2009, "Semantic hashing").

The code layer is d logistic units on a = W h + b. While training, Gaussian noise is added to their total input,
    z = sigmoid(a + sigma * eps),   eps ~ N(0, I),
which the decoder can only resist when |a| is large: the activities become bimodal (near 0 or 1). At evaluation
(and in `embed`) the units are rounded: z = 1[a > 0], a code in {0, 1}^d. Deviation from the paper: it fixes each
training case's noise vector in advance (a deterministic gradient); a bottleneck does not know which example it
codes, so here the noise is drawn afresh every step (same distribution, noise_std 4 by default).
Stats: `bit_balance` = 1 - mean_j |2 p_j - 1| (p_j the share of the batch with bit j on: 1 when every bit splits
the batch in half, 0 when every bit is constant), `perplexity` of the batch's binary codes, and in training
`saturation`, the share of activities within 0.05 of 0 or 1.
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


def code_stats(bits: torch.Tensor) -> dict[str, torch.Tensor]:
    """`bit_balance` and `perplexity` of binary codes bits (B, d)."""
    balance = 1 - (2 * bits.mean(0) - 1).abs().mean()
    _, counts = torch.unique(bits, dim=0, return_counts=True)  # distinct codes of the batch
    p = counts.float() / len(bits)
    return {"bit_balance": balance, "perplexity": torch.exp(-(p * p.log()).sum())}


class SemanticHashing(Bottleneck):
    """No loss terms; codes in {0, 1}^d at evaluation."""

    def __init__(self, in_features: int, latent_dim: int, noise_std: float = 4.0) -> None:
        super().__init__(in_features, latent_dim)
        if noise_std < 0:
            raise ConfigError(f"semantic hashing: model.bottleneck.noise_std must be >= 0, got {noise_std}")
        self.noise_std = noise_std
        self.proj = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        a = self.proj(h)  # (B, F) -> (B, d)
        bits = (a.detach() > 0).to(a.dtype)
        stats = code_stats(bits)
        if not self.training:
            return BottleneckOutput(z=bits, stats=stats)
        z = torch.sigmoid(a + self.noise_std * torch.randn_like(a))
        stats["saturation"] = ((z.detach() < 0.05) | (z.detach() > 0.95)).float().mean()
        return BottleneckOutput(z=z, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return (self.proj(h) > 0).to(h.dtype)
