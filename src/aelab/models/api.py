"""The model API that evaluators, callbacks, aelab-apply and the explorer rely on, written down once.

`Autoencoder` is what every model offers, the scikit-learn baselines (aelab.baselines) included; the
AutoencoderModule offers `GenerativeAutoencoder` too. Evaluators that need more than `Autoencoder` say so in
their `skip_reason` (e.g. a bottleneck with an ELBO), never by asking for a class."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Autoencoder(Protocol):
    """Codes, reconstructions and anomaly scores of inputs (B, *shape)."""

    @property
    def device(self) -> torch.device: ...

    def eval(self) -> Any: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic codes (B, d)."""

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions (B, *shape)."""

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example scores (B,) by name, higher = more anomalous."""


@runtime_checkable
class GenerativeAutoencoder(Autoencoder, Protocol):
    """An autoencoder with a decoder, a bottleneck and an optional code density: it samples, interpolates,
    estimates likelihoods and computes its training loss."""

    bottleneck: Any  # aelab.bottlenecks.base.Bottleneck: declares `elbo_terms`, `has_prior`
    density: Any  # aelab.models.density.CodeDensity or None
    likelihood: Any  # aelab.losses.likelihood.Likelihood: declares `normalised` (False: a loss, no ELBO under it)

    @property
    def samples_from_density(self) -> bool: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Outputs (B, *shape) of codes (B, d)."""

    def sample(self, n: int) -> torch.Tensor:
        """n new examples, from the prior or the fitted code density."""

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decoded points on the line between the codes of x0 and x1."""

    def fit_density(self, z: torch.Tensor) -> None:
        """Fit the code density on training codes (N, d)."""

    def density_state(self) -> dict | None: ...

    def load_density(self, state: dict | None) -> None: ...

    def log_joint(self, z: torch.Tensor, target: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """log p(target|z) + log p(z) (S*B,) of codes (S*B, d), S per target; posteriors that need the decoder use it."""

    def iw_log_likelihood(self, x: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
        """Importance-weighted log p(target) (B,) with k samples."""

    def compute_loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss and its logged parts."""
