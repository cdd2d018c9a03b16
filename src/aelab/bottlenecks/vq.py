"""Vector-quantised bottleneck (van den Oord et al. 2017, "Neural Discrete Representation Learning").

The latent z_e (B, d) is split into G = d / c groups of c dims; each group is replaced by its nearest vector
in one shared codebook of K codes, with the straight-through gradient z = z_e + sg(z_q - z_e). The loss term is
the commitment ||z_e - sg(z_q)||^2; the codebook is not learned by gradient but by exponential moving averages
(the paper's appendix A.1; Razavi et al. 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2"):
    N_k <- decay N_k + (1 - decay) n_k,    m_k <- decay m_k + (1 - decay) sum_{j -> k} z_e_j,
    e_k = m_k / N~_k,    N~_k = (N_k + eps) / (n + K eps) * n  with n = sum_k N_k (Laplace smoothing).
Codes whose N_k falls below `dead_threshold` are restarted on random encoder outputs of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


class VectorQuantizer(Bottleneck):
    """Emits the per-sample `commit` term; logs the code `perplexity` and the fraction of `dead_codes`."""

    terms = ("commit",)

    def __init__(self, in_features: int, latent_dim: int, num_codes: int = 512, code_dim: int = 4,
                 decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1e-3) -> None:
        super().__init__(in_features, latent_dim)
        sizes = {"in_features": in_features, "latent_dim": latent_dim, "num_codes": num_codes, "code_dim": code_dim}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes.values()):
            raise ConfigError(f"vq: sizes must be positive integers, got {sizes}")
        if latent_dim % code_dim:
            raise ConfigError(f"vq: code_dim={code_dim} must divide model.latent_dim={latent_dim}")
        if not 0.0 <= decay < 1.0 or eps <= 0 or dead_threshold < 0:
            raise ConfigError(f"vq: need 0 <= decay < 1, eps > 0, dead_threshold >= 0; "
                              f"got decay={decay}, eps={eps}, dead_threshold={dead_threshold}")
        self.num_codes, self.code_dim, self.groups = num_codes, code_dim, latent_dim // code_dim
        self.decay, self.eps, self.dead_threshold = decay, eps, dead_threshold
        self.proj = nn.Linear(in_features, latent_dim)
        codebook = torch.randn(num_codes, code_dim)
        self.register_buffer("codebook", codebook)  # (K, c) the code vectors e_k
        self.register_buffer("cluster_size", torch.ones(num_codes))  # (K,) EMA of assignments N_k
        self.register_buffer("embed_sum", codebook.clone())  # (K, c) EMA of assigned sums m_k, so e_k = m_k / N_k

    def _assign(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of flat (N, c), by ||x||^2 - 2 x.e + ||e||^2."""
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)
        return dist.argmin(dim=1)  # (N, K) -> (N,)

    def _quantize(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z_e (B, d), code indices (B * G,) and z_q (B, d), with no side effects."""
        z_e = self.proj(h)  # (B, F) -> (B, d)
        flat = z_e.reshape(-1, self.code_dim)  # (B, d) -> (B * G, c)
        idx = self._assign(flat.detach())
        z_q = self.codebook[idx].view_as(z_e)  # (B * G, c) -> (B, d)
        return z_e, idx, z_q

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Code indices (B, G) of features h (B, F)."""
        return self._quantize(h)[1].view(len(h), self.groups)  # (B * G,) -> (B, G)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """EMA step of N_k and m_k, Laplace-smoothed codebook, restart of dead codes; returns the dead fraction."""
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)  # (K, N) @ (N, c) -> (K, c)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))
        dead = (self.cluster_size < self.dead_threshold).unsqueeze(1)  # (K, 1); masked, so no host sync
        fresh = flat[torch.randint(len(flat), (self.num_codes,), device=flat.device)]  # (K, c) candidate restarts
        self.codebook.copy_(torch.where(dead, fresh, self.codebook))
        self.embed_sum.copy_(torch.where(dead, fresh, self.embed_sum))  # N_k = 1, m_k = e_k: a fresh one-vector mean
        self.cluster_size.masked_fill_(dead.squeeze(1), 1.0)
        return dead.float().mean()  # measured before the restart, which would hide the dead codes

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z_e, idx, z_q = self._quantize(h)
        onehot = F.one_hot(idx, self.num_codes).to(z_e.dtype)  # (B * G,) -> (B * G, K)
        usage = onehot.mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage.clamp_min(1e-12))).sum())
        if self.training:
            dead_frac = self._update(z_e.detach().reshape(-1, self.code_dim), onehot)  # (B, d) -> (B * G, c)
        else:
            dead_frac = self._dead_fraction()
        commit = (z_e - z_q.detach()).pow(2).sum(dim=1)  # (B, d) -> (B,)
        z = z_e + (z_q - z_e).detach()
        return BottleneckOutput(z=z, terms={"commit": commit},
                                stats={"perplexity": perplexity.detach(), "dead_codes": dead_frac})

    def _dead_fraction(self) -> torch.Tensor:
        """Fraction of codes whose EMA cluster size is below the threshold."""
        return (self.cluster_size < self.dead_threshold).float().mean()

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        z_e, _, z_q = self._quantize(h)
        return z_e + (z_q - z_e).detach()
