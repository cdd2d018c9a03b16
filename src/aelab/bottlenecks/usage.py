"""Usage statistics of a finite codebook, shared by the discrete bottlenecks (FSQ, Gumbel-softmax).

On a batch of code indices with frequencies p_k: perplexity exp(-sum_k p_k log p_k) (the number of equally used
codes with the same entropy) and `codebook_usage` = |{k: p_k > 0}| / K. Dead codes need a window longer than one
batch: an exponential moving average of the per-step counts, u_k <- decay u_k + (1 - decay) n_k, starting at 0; a
code is dead while u_k < threshold. With decay 0.99 and threshold 1e-3, a code used once stays alive ~230 steps
(0.01 * 0.99^t >= 1e-3) and a code never used since the start is dead (as vq.py's EMA cluster sizes, which start at 1).
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.core.errors import ConfigError


class CodeUsage(nn.Module):
    """`stats(idx, update)`: perplexity, codebook_usage and dead_codes of K codes; the EMA is a buffer (checkpointed)."""

    def __init__(self, num_codes: int, decay: float = 0.99, dead_threshold: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0 or dead_threshold < 0:
            raise ConfigError(f"code usage: need 0 <= decay < 1 and dead_threshold >= 0, got decay={decay}, "
                              f"dead_threshold={dead_threshold}")
        self.num_codes, self.decay, self.dead_threshold = num_codes, decay, dead_threshold
        self.register_buffer("ema_counts", torch.zeros(num_codes))  # (K,) EMA of per-step use counts u_k

    def stats(self, idx: torch.Tensor, update: bool) -> dict[str, torch.Tensor]:
        """Statistics of the code indices idx (N,) of one batch; `update` (training) advances the EMA first."""
        counts = torch.bincount(idx.flatten(), minlength=self.num_codes).to(self.ema_counts.dtype)  # (N,) -> (K,)
        if update:
            self.ema_counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        p = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        return {"perplexity": perplexity, "codebook_usage": (counts > 0).float().mean(),
                "dead_codes": (self.ema_counts < self.dead_threshold).float().mean()}
