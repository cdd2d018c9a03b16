"""Gumbel-softmax quantization (Jang, Gu & Poole 2017, "Categorical Reparameterization with Gumbel-Softmax"), as
in the discrete VAE of Ramesh et al. 2021 ("Zero-Shot Text-to-Image Generation").

The latent is G = d / c positions; each has logits l (K,) over a learned codebook e (K, c). Training draws a
relaxed one-hot sample and codes with it:
    y = softmax((l + g) / tau),   g_k = -log(-log u_k), u_k ~ U(0, 1),   z = y @ e,
so y tends to the one-hot of argmax(l + g) as tau -> 0 (`hard`: that one-hot forward, y's gradient backward, the
paper's straight-through Gumbel-softmax). Evaluation uses no noise: z = e[argmax l]. The term `kl` is the KL of
the categorical posterior q = softmax(l) to the uniform prior, summed over positions:
    KL(q || U(K)) = log K - H(q) = log K + sum_k q_k log q_k.
tau is a buffer; aelab.callbacks.schedules.TemperatureDecay anneals it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aelab.bottlenecks.base import Bottleneck, BottleneckOutput
from aelab.bottlenecks.usage import CodeUsage
from aelab.core.errors import ConfigError


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise g = -log E, E ~ Exp(1) (i.e. -log(-log u)), shaped like `like`."""
    return -torch.empty_like(like).exponential_().log()


def relaxed_one_hot(logits: torch.Tensor, noise: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """softmax((logits + noise) / tau) over the last dim."""
    return torch.softmax((logits + noise) / tau, dim=-1)


class GumbelQuantizer(Bottleneck):
    """Emits `kl` (to the uniform prior over codes); logs `perplexity`, `codebook_usage`, `dead_codes` and `tau`."""

    terms = ("kl",)
    has_prior = True  # the uniform prior over codes; the YAML samples through a density fitted on the codes instead

    def __init__(self, in_features: int, latent_dim: int, num_codes: int = 512, code_dim: int = 4, tau: float = 1.0,
                 hard: bool = False, decay: float = 0.99, dead_threshold: float = 1e-3) -> None:
        super().__init__(in_features, latent_dim)
        sizes = {"num_codes": num_codes, "code_dim": code_dim}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes.values()) or num_codes < 2:
            raise ConfigError(f"gumbel: need num_codes >= 2 and code_dim >= 1 (integers), got {sizes}")
        if latent_dim % code_dim:
            raise ConfigError(f"gumbel: code_dim={code_dim} must divide model.latent_dim={latent_dim}")
        if tau <= 0:
            raise ConfigError(f"gumbel: model.bottleneck.tau must be positive, got {tau}")
        self.num_codes, self.code_dim, self.groups, self.hard = num_codes, code_dim, latent_dim // code_dim, hard
        self.proj = nn.Linear(in_features, self.groups * num_codes)
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim))  # (K, c) the learned code vectors e
        self.register_buffer("tau", torch.tensor(float(tau)))
        self.usage = CodeUsage(num_codes, decay, dead_threshold)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (B, G, K) of features h (B, F)."""
        return self.proj(h).view(len(h), self.groups, self.num_codes)  # (B, G * K) -> (B, G, K)

    def kl(self, logits: torch.Tensor) -> torch.Tensor:
        """sum over positions of log K - H(softmax(logits)): (B, G, K) -> (B,)."""
        log_q = torch.log_softmax(logits, dim=-1)
        return (math.log(self.num_codes) + (log_q.exp() * log_q).sum(-1)).sum(-1)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        logits = self.logits(h)
        if self.training:
            y = relaxed_one_hot(logits, gumbel_noise(logits), self.tau)  # (B, G, K)
            idx = y.argmax(-1)  # the sample's code: argmax(l + g)
            if self.hard:
                y = F.one_hot(idx, self.num_codes).to(y.dtype) + (y - y.detach())  # one-hot value, y's gradient
            z = (y @ self.codebook).reshape(len(h), -1)  # (B, G, K) @ (K, c) -> (B, G, c) -> (B, d)
        else:
            idx = logits.argmax(-1)  # (B, G)
            z = self.codebook[idx].reshape(len(h), -1)  # (B, G, c) -> (B, d)
        stats = self.usage.stats(idx, update=self.training)
        return BottleneckOutput(z=z, terms={"kl": self.kl(logits)}, stats={**stats, "tau": self.tau.clone()})

    def codes(self, h: torch.Tensor) -> torch.Tensor:
        """Code indices (B, G) without noise: argmax of the logits."""
        return self.logits(h).argmax(-1)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.codebook[self.codes(h)].reshape(len(h), -1)  # (B, G, c) -> (B, d)

    def sample_prior(self, n: int) -> torch.Tensor:
        """n codes (n, d) with every position's code drawn uniformly from the K codes."""
        idx = torch.randint(self.num_codes, (n, self.groups), device=self.codebook.device)
        return self.codebook[idx].reshape(n, -1)  # (n, G, c) -> (n, d)
