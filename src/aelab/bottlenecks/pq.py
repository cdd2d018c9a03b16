"""Product quantisation (Jegou, Douze & Schmid 2011, "Product quantization for nearest neighbor search") and
optimised PQ (Ge, He, Ke & Sun 2013, "Optimized Product Quantization").

PQ splits the code z_e (B, d) into G = d / c sub-vectors and quantises sub-space g with its own codebook C_g of K
codes, so G codebooks of K codes express K^G vectors: q(z) = [q_1(z^1), ..., q_G(z^G)], with distortion
sum_g ||z^g - q_g(z^g)||^2 (vq_vae instead shares one codebook across the positions). Codebooks learn by EMA (vq.py).
OPQ (`rotate: true`) quantises y = R z_e for an orthogonal R (torch.nn.utils.parametrizations.orthogonal, started
at the identity) and decodes in the original coordinates, z_q = R^T q(y). Deviation: the paper alternates k-means
with the Procrustes solution for R; here R is learned by gradient, from the commitment ||R z_e - sg(q(R z_e))||^2
(the paper's distortion with the codes held fixed) and from the decoder through the straight-through estimator taken
in rotated coordinates, z = R^T (y + sg(q(y) - y)), whose value is z_q and whose Jacobian dz/dz_e is R^T R = I.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.vq import Codebook, check_sizes
from aelab.core.errors import ConfigError


class ProductQuantizer(Bottleneck):
    """Emits `commit`; logs the mean `perplexity` and `dead_codes` over the G sub-space codebooks."""

    terms = ("commit",)

    def __init__(self, in_features: int, latent_dim: int, num_codes: int = 256, code_dim: int = 2,
                 decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1e-3, rotate: bool = False) -> None:
        super().__init__(in_features, latent_dim)
        check_sizes("pq", in_features=in_features, latent_dim=latent_dim, num_codes=num_codes, code_dim=code_dim)
        if latent_dim % code_dim:
            raise ConfigError(f"pq: code_dim={code_dim} must divide model.latent_dim={latent_dim}")
        self.code_dim, self.groups = code_dim, latent_dim // code_dim
        self.proj = nn.Linear(in_features, latent_dim)
        self.books = nn.ModuleList(Codebook(num_codes, code_dim, decay, eps, dead_threshold) for _ in range(self.groups))
        self.rotation = None
        if rotate:
            rotation = nn.Linear(latent_dim, latent_dim, bias=False)
            nn.init.eye_(rotation.weight)
            self.rotation = orthogonal(rotation)  # y = z_e R^T with R = rotation.weight orthogonal

    def quantize(self, y: torch.Tensor, learn: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """q(y) (B, d), indices (B, G) and mean stats of rotated codes y (B, d); `learn` takes EMA steps."""
        parts = y.detach().view(len(y), self.groups, self.code_dim)  # (B, d) -> (B, G, c)
        results = [book.quantize_rows(parts[:, g], learn) for g, book in enumerate(self.books)]
        q = torch.stack([vectors for _, vectors, _ in results], dim=1).flatten(1)  # G x (B, c) -> (B, d)
        idx = torch.stack([i for i, _, _ in results], dim=1)  # G x (B,) -> (B, G)
        stats = {name: torch.stack([s[name] for _, _, s in results]).mean() for name in ("perplexity", "dead_codes")}
        return q, idx, stats

    def rotate(self, z: torch.Tensor) -> torch.Tensor:
        """y = R z (identity for plain PQ)."""
        return z if self.rotation is None else self.rotation(z)  # (B, d) -> (B, d)

    def unrotate(self, y: torch.Tensor) -> torch.Tensor:
        """z = R^T y, the inverse of `rotate`."""
        return y if self.rotation is None else y @ self.rotation.weight  # (B, d) @ (d, d) -> (B, d)

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Code indices (B, G) of features h (B, F)."""
        return self.quantize(self.rotate(self.proj(h)))[1]

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """The code z_q (B, d) of indices (B, G), in the coordinates of z_e."""
        parts = [book.codebook[codes[:, g]] for g, book in enumerate(self.books)]  # G x (B, c)
        return self.unrotate(torch.cat(parts, dim=1))  # (B, G * c) = (B, d)

    def _code(self, h: torch.Tensor, learn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Straight-through code z (B, d), rotated y and q(y) (B, d), and stats."""
        y = self.rotate(self.proj(h))  # (B, F) -> (B, d)
        q, _, stats = self.quantize(y, learn)
        return self.unrotate(y + (q - y).detach()), y, q, stats

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z, y, q, stats = self._code(h, learn=self.training)
        commit = (y - q).pow(2).sum(dim=1)  # (B, d) -> (B,); = ||z_e - z_q||^2 as R is orthogonal
        return BottleneckOutput(z=z, terms={"commit": commit}, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self._code(h, learn=False)[0]
