"""Vector-quantised bottleneck (van den Oord et al. 2017, "Neural Discrete Representation Learning").

The latent z_e (B, d) is split into G = d / c groups of c dims; each group is replaced by its nearest vector
in one shared codebook of K codes, with the straight-through gradient z = z_e + sg(z_q - z_e). The loss term is
the commitment ||z_e - sg(z_q)||^2; the codebook is not learned by gradient but by exponential moving averages
(the paper's appendix A.1; Razavi et al. 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2"):
    N_k <- decay N_k + (1 - decay) n_k,    m_k <- decay m_k + (1 - decay) sum_{j -> k} z_e_j,
    e_k = m_k / N~_k,    N~_k = (N_k + eps) / (n + K eps) * n  with n = sum_k N_k (Laplace smoothing).
Codes whose N_k falls below `dead_threshold` are restarted on random encoder outputs of the batch.

`EMACodebook` holds that codebook logic (assignment, EMA step, restarts) on the module that mixes it in, so the
vq_vae checkpoint keeps its buffer names; `Codebook` is the stand-alone module that residual, product and
hierarchical quantisers (rvq.py, pq.py, vqvae2.py) keep one of per level or sub-space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.core.errors import ConfigError


def perplexity(onehot: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the batch's code usage, from one-hot assignments (N, K)."""
    usage = onehot.mean(0)
    return torch.exp(-(usage * torch.log(usage.clamp_min(1e-12))).sum()).detach()


class EMACodebook:
    """Mixin for an nn.Module: K codes of c dims learned by EMA with dead-code restart (formulas above).

    With `zero_code` the code 0 is held at exactly the zero vector (never moved nor restarted), so a quantiser can
    always leave its input unchanged: its error ||x - e_k*||^2 <= ||x - 0||^2 = ||x||^2."""

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor

    def init_codebook(self, num_codes: int, code_dim: int, decay: float, eps: float, dead_threshold: float,
                      zero_code: bool = False) -> None:
        """Check the settings and register the buffers `codebook`, `cluster_size` and `embed_sum`."""
        if not 0.0 <= decay < 1.0 or eps <= 0 or dead_threshold < 0:
            raise ConfigError(f"vq: need 0 <= decay < 1, eps > 0, dead_threshold >= 0; "
                              f"got decay={decay}, eps={eps}, dead_threshold={dead_threshold}")
        if zero_code and num_codes < 2:
            raise ConfigError(f"vq: zero_code needs num_codes >= 2 (one is the zero vector), got {num_codes}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.decay, self.eps, self.dead_threshold, self.zero_code = decay, eps, dead_threshold, zero_code
        codebook = torch.randn(num_codes, code_dim)
        if zero_code:
            codebook[0] = 0.0
        self.register_buffer("codebook", codebook)  # (K, c) the code vectors e_k
        self.register_buffer("cluster_size", torch.ones(num_codes))  # (K,) EMA of assignments N_k
        self.register_buffer("embed_sum", codebook.clone())  # (K, c) EMA of assigned sums m_k, so e_k = m_k / N_k

    def _assign(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of flat (N, c), by ||x||^2 - 2 x.e + ||e||^2."""
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)
        return dist.argmin(dim=1)  # (N, K) -> (N,)

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
        if self.zero_code:
            dead[0] = False
        self.codebook.copy_(torch.where(dead, fresh, self.codebook))
        self.embed_sum.copy_(torch.where(dead, fresh, self.embed_sum))  # N_k = 1, m_k = e_k: a fresh one-vector mean
        self.cluster_size.masked_fill_(dead.squeeze(1), 1.0)
        if self.zero_code:
            self.codebook[0] = 0.0
            self.embed_sum[0] = 0.0
        return dead.float().mean()  # measured before the restart, which would hide the dead codes

    def _dead_fraction(self) -> torch.Tensor:
        """Fraction of codes whose EMA cluster size is below the threshold (the zero code is never dead)."""
        dead = self.cluster_size < self.dead_threshold
        if self.zero_code:
            dead[0] = False
        return dead.float().mean()

    def quantize_rows(self, flat: torch.Tensor, learn: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Nearest codes of rows (N, c): indices (N,), code vectors (N, c) and stats; `learn` takes an EMA step."""
        flat = flat.detach()
        idx = self._assign(flat)
        q = self.codebook[idx]  # (N, c), a copy: the EMA step below does not change it
        onehot = F.one_hot(idx, self.num_codes).to(flat.dtype)  # (N,) -> (N, K)
        dead = self._update(flat, onehot) if learn else self._dead_fraction()
        return idx, q, {"perplexity": perplexity(onehot), "dead_codes": dead}


class Codebook(EMACodebook, nn.Module):
    """One stand-alone EMA codebook (a level of rvq, a sub-space of pq, a level of vqvae2)."""

    def __init__(self, num_codes: int, code_dim: int, decay: float = 0.99, eps: float = 1e-5,
                 dead_threshold: float = 1e-3, zero_code: bool = False) -> None:
        nn.Module.__init__(self)
        self.init_codebook(num_codes, code_dim, decay, eps, dead_threshold, zero_code)


def check_sizes(name: str, **sizes: int) -> None:
    """Raise ConfigError unless every size is a positive integer."""
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes.values()):
        raise ConfigError(f"{name}: sizes must be positive integers, got {sizes}")


class VectorQuantizer(EMACodebook, Bottleneck):
    """Emits the per-sample `commit` term; logs the code `perplexity` and the fraction of `dead_codes`."""

    terms = ("commit",)

    def __init__(self, in_features: int, latent_dim: int, num_codes: int = 512, code_dim: int = 4,
                 decay: float = 0.99, eps: float = 1e-5, dead_threshold: float = 1e-3) -> None:
        Bottleneck.__init__(self, in_features, latent_dim)
        check_sizes("vq", in_features=in_features, latent_dim=latent_dim, num_codes=num_codes, code_dim=code_dim)
        if latent_dim % code_dim:
            raise ConfigError(f"vq: code_dim={code_dim} must divide model.latent_dim={latent_dim}")
        self.groups = latent_dim // code_dim
        self.proj = nn.Linear(in_features, latent_dim)
        self.init_codebook(num_codes, code_dim, decay, eps, dead_threshold)

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

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """The code z_q (B, d) of indices (B, G)."""
        return self.codebook[codes].flatten(1)  # (B, G, c) -> (B, d)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        z_e = self.proj(h)  # (B, F) -> (B, d)
        _, flat_q, stats = self.quantize_rows(z_e.reshape(-1, self.code_dim), self.training)  # (B, d) -> (B * G, c)
        z_q = flat_q.view_as(z_e)  # (B * G, c) -> (B, d)
        commit = (z_e - z_q.detach()).pow(2).sum(dim=1)  # (B, d) -> (B,)
        z = z_e + (z_q - z_e).detach()
        return BottleneckOutput(z=z, terms={"commit": commit}, stats=stats)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        z_e, _, z_q = self._quantize(h)
        return z_e + (z_q - z_e).detach()
