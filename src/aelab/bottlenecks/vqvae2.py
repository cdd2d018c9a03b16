"""Two-level hierarchical VQ (Razavi, van den Oord & Vinyals 2019, "Generating Diverse High-Fidelity Images with
VQ-VAE-2").

A coarse top code is quantised first and the bottom code is quantised conditioned on it:
    t_e = W_t h,    t_q = Q_top(t_e),    b_e = W_b [h, t],    b_q = Q_bottom(b_e),    z = [t, b]  (B, d_t + d_b),
with t = t_e + sg(t_q - t_e) and b likewise (straight-through), each level splitting into positions of code_dim
dims that share that level's EMA codebook (vq.py). The loss term is the commitment of both levels,
||t_e - sg(t_q)||^2 + ||b_e - sg(b_q)||^2 (the paper's beta = 0.25 on each); the decoder gets the concatenation.
Deviation: the paper's codes are spatial maps (top 32x32 and bottom 64x64 for 256x256 images), the top map decoded
and upsampled to condition the bottom encoder; aelab's bottleneck contract carries a vector code (B, d) to any
architecture, so here both levels are vectors and the conditioning is the linear map W_b of [h, t].
Logged per level: perplexity_top/bottom and dead_codes_top/bottom.
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.vq import Codebook, check_sizes
from aelab.core.errors import ConfigError


class HierarchicalQuantizer(Bottleneck):
    """Emits `commit` (both levels); the code is [top, bottom] with latent_dim = top_dim + bottom dims."""

    terms = ("commit",)

    def __init__(self, in_features: int, latent_dim: int, top_dim: int = 4, num_codes: int = 512, code_dim: int = 4,
                 decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1e-3) -> None:
        super().__init__(in_features, latent_dim)
        check_sizes("vqvae2", in_features=in_features, latent_dim=latent_dim, top_dim=top_dim, num_codes=num_codes,
                    code_dim=code_dim)
        if top_dim >= latent_dim or top_dim % code_dim or latent_dim % code_dim:
            raise ConfigError(f"vqvae2: need top_dim < model.latent_dim and code_dim dividing both; got top_dim={top_dim}, "
                              f"model.latent_dim={latent_dim}, code_dim={code_dim}")
        self.top_dim, self.code_dim = top_dim, code_dim
        self.top_proj = nn.Linear(in_features, top_dim)
        self.bottom_proj = nn.Linear(in_features + top_dim, latent_dim - top_dim)
        self.top = Codebook(num_codes, code_dim, decay, eps, dead_threshold)
        self.bottom = Codebook(num_codes, code_dim, decay, eps, dead_threshold)

    def _level(self, book: Codebook, z_e: torch.Tensor, learn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                                 dict[str, torch.Tensor]]:
        """Straight-through code (B, k), commitment (B,), indices (B, k / c) and stats of one level's z_e (B, k)."""
        idx, q, stats = book.quantize_rows(z_e.reshape(-1, self.code_dim), learn)  # (B, k) -> (B * k / c, c)
        z_q = q.view_as(z_e)  # (B * k / c, c) -> (B, k)
        commit = (z_e - z_q).pow(2).sum(dim=1)  # (B, k) -> (B,)
        return z_e + (z_q - z_e).detach(), commit, idx.view(len(z_e), -1), stats  # (B * k / c,) -> (B, k / c)

    def bottom_level(self, h: torch.Tensor, top: torch.Tensor, learn: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                                            torch.Tensor, dict]:
        """The bottom level of features h (B, F) given the top code (B, top_dim): code, commitment, indices, stats."""
        return self._level(self.bottom, self.bottom_proj(torch.cat([h, top], dim=1)), learn)  # (B, F + d_t) -> (B, d_b)

    def _code(self, h: torch.Tensor, learn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Code z (B, d), commitment (B,), indices (B, d / c) (top then bottom) and stats."""
        top, top_commit, top_idx, top_stats = self._level(self.top, self.top_proj(h), learn)  # (B, F) -> (B, d_t)
        bottom, bottom_commit, bottom_idx, bottom_stats = self.bottom_level(h, top, learn)
        stats = {f"{name}_top": value for name, value in top_stats.items()}
        stats |= {f"{name}_bottom": value for name, value in bottom_stats.items()}
        z = torch.cat([top, bottom], dim=1)  # (B, d_t) + (B, d_b) -> (B, d)
        return z, top_commit + bottom_commit, torch.cat([top_idx, bottom_idx], dim=1), stats

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Code indices (B, d / c) of features h (B, F): the top level's positions, then the bottom's."""
        return self._code(h, learn=False)[2]

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """The code z_q (B, d) of indices (B, d / c): top code vectors, then bottom ones."""
        split = self.top_dim // self.code_dim
        top = self.top.codebook[codes[:, :split]]  # (B, G_t) -> (B, G_t, c)
        bottom = self.bottom.codebook[codes[:, split:]]  # (B, G_b) -> (B, G_b, c)
        return torch.cat([top, bottom], dim=1).flatten(1)  # (B, G, c) -> (B, d)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z, commit, _, stats = self._code(h, learn=self.training)
        return BottleneckOutput(z=z, terms={"commit": commit}, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self._code(h, learn=False)[0]
