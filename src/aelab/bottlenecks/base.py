"""The bottleneck contract shared by every variant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from aelab.core.errors import ConfigError


@dataclass
class BottleneckOutput:
    """What every bottleneck returns."""

    z: torch.Tensor  # (B, d) the code passed to the decoder (a sample for stochastic bottlenecks)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # per-sample loss terms (B,), weighted in YAML
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # scalars to log, never part of the loss


class Bottleneck(nn.Module):
    """Base class: `forward` codes features; `embed` gives the deterministic code used for embeddings."""

    terms: tuple[str, ...] = ()  # names of the loss terms this bottleneck emits
    elbo_terms: tuple[str, ...] = ()  # the terms that, with weight 1 beside -log p(x|z), make -ELBO (empty: no ELBO)
    has_prior: bool = False  # True when sample_prior works; otherwise sampling uses an ex-post latent density

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.in_features, self.latent_dim = in_features, latent_dim

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        raise NotImplementedError

    def objective(self, recon: torch.Tensor, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        """Per-sample loss (B,) from the reconstruction NLL and this bottleneck's weighted terms."""
        return recon + sum(w * terms[k] for k, w in weights.items())

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        """The code of `h` without sampling noise (the posterior mean for stochastic bottlenecks)."""
        return self.forward(h).z

    def importance_samples(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k posterior codes z (k, B, d) of features h and their log p(z) - log q(z|h) (k, B), for the IW likelihood."""
        raise ConfigError(f"{type(self).__name__} has no posterior to draw importance samples from "
                          f"(the importance-weighted likelihood needs a stochastic bottleneck: vae, iwae, ...)")

    def refine(self, h: torch.Tensor, out: BottleneckOutput,
               log_joint: Callable[[torch.Tensor], torch.Tensor]) -> BottleneckOutput:
        """`out` of `forward(h)` moved with the batch's log p(x, z) (codes (S*B, d) -> (S*B,)), when the posterior
        needs the decoder (HVAE); the default returns `out` and never calls `log_joint` (no extra decoder pass)."""
        return out

    def refine_samples(self, z: torch.Tensor, log_ratio: torch.Tensor,
                       log_joint: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`importance_samples` (k, B, d), (k, B) moved as `refine` moves codes; by default unchanged."""
        return z, log_ratio

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) (N,) of codes (N, d) under the prior; only bottlenecks with a closed-form prior density have it."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form prior density")

    def set_dataset_size(self, n: int) -> None:
        """Told the number of training examples before fitting (estimators of the aggregate posterior need it)."""

    def sample_prior(self, n: int) -> torch.Tensor:
        """`n` codes from the prior; only generative bottlenecks have one."""
        raise NotImplementedError(f"{type(self).__name__} has no prior to sample from")
