"""Residual vector quantisation (Zeghidour et al. 2021, "SoundStream: An End-to-End Neural Audio Codec";
Lee et al. 2022, "Autoregressive Image Generation using Residual Quantization").

L levels, each with its own EMA codebook (vq.py), quantise what the previous levels left over:
    r_0 = z_e,    q_l = Q_l(r_{l-1}),    r_l = r_{l-1} - q_l,    z_q = sum_l q_l,
each level splitting its residual into G = d / c positions that share the level's codebook (as vq_vae does).
The decoder gets z = z_e + sg(z_q - z_e) (straight-through); the loss term is vq_vae's commitment
||z_e - sg(z_q)||^2. Deviation: RQ-VAE sums the commitment of every partial sum, sum_l ||z_e - sg(sum_{<=l} q)||^2,
and shares one codebook across levels; SoundStream's quantiser dropout (a random number of levels per example)
and k-means initialisation are not implemented. `zero_code` holds a zero vector in each codebook, so a level can
always pass its residual on unchanged and ||r_l|| never exceeds ||r_{l-1}||.
Logged per level l = 1..L: perplexity_l, dead_codes_l and residual_l = batch mean of ||r_l||^2; perplexity and
dead_codes are the levels' means.
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.vq import Codebook, check_sizes
from aelab.core.errors import ConfigError


class ResidualQuantizer(Bottleneck):
    """Emits `commit`; logs perplexity, dead codes and the remaining error after each level."""

    terms = ("commit",)

    def __init__(self, in_features: int, latent_dim: int, levels: int = 4, num_codes: int = 256, code_dim: int = 4,
                 decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1e-3, zero_code: bool = False) -> None:
        super().__init__(in_features, latent_dim)
        check_sizes("rvq", in_features=in_features, latent_dim=latent_dim, levels=levels, num_codes=num_codes,
                    code_dim=code_dim)
        if latent_dim % code_dim:
            raise ConfigError(f"rvq: code_dim={code_dim} must divide model.latent_dim={latent_dim}")
        self.code_dim, self.groups = code_dim, latent_dim // code_dim
        self.proj = nn.Linear(in_features, latent_dim)
        self.levels = nn.ModuleList(Codebook(num_codes, code_dim, decay, eps, dead_threshold, zero_code)
                                    for _ in range(levels))

    def quantize(self, z_e: torch.Tensor, learn: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z_q (B, d), code indices (B, L, G) and per-level stats of codes z_e (B, d); `learn` takes EMA steps."""
        residual = z_e.detach().reshape(-1, self.code_dim)  # (B, d) -> (B * G, c)
        total = torch.zeros_like(residual)
        indices, stats = [], {}
        for level, book in enumerate(self.levels, start=1):
            idx, q, level_stats = book.quantize_rows(residual, learn)
            residual = residual - q
            total = total + q
            indices.append(idx.view(len(z_e), self.groups))  # (B * G,) -> (B, G)
            stats |= {f"{name}_{level}": value for name, value in level_stats.items()}
            stats[f"residual_{level}"] = residual.pow(2).sum(1).view(len(z_e), -1).sum(1).mean()  # (B * G,) -> (B,)
        for name in ("perplexity", "dead_codes"):  # the levels' mean, comparable with the other quantizers' stat
            stats[name] = torch.stack([stats[f"{name}_{level}"] for level in range(1, len(self.levels) + 1)]).mean()
        return total.view_as(z_e), torch.stack(indices, dim=1), stats  # (B * G, c) -> (B, d); L x (B, G) -> (B, L, G)

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Code indices (B, L, G) of features h (B, F)."""
        return self.quantize(self.proj(h))[1]

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """The code z_q (B, d) of indices (B, L, G): the sum of the levels' code vectors."""
        vectors = [book.codebook[codes[:, level]] for level, book in enumerate(self.levels)]  # L x (B, G, c)
        return torch.stack(vectors).sum(0).flatten(1)  # (L, B, G, c) -> (B, d)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z_e = self.proj(h)  # (B, F) -> (B, d)
        z_q, _, stats = self.quantize(z_e, learn=self.training)
        commit = (z_e - z_q).pow(2).sum(dim=1)  # (B, d) -> (B,); z_q carries no gradient
        return BottleneckOutput(z=z_e + (z_q - z_e).detach(), terms={"commit": commit}, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        z_e = self.proj(h)  # (B, F) -> (B, d)
        return z_e + (self.quantize(z_e)[0] - z_e).detach()
