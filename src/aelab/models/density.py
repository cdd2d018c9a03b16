"""What the module asks of an ex-post density of its codes (`model/density=`, fitted after training): the
protocol every density in aelab.densities implements. Densities depend on the module, never the reverse."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class CodeDensity(Protocol):
    """A density over codes (B, d): fitted on training codes, then sampled and scored; its state is tensors and
    plain values, so a checkpoint carries it and loads it with weights_only=True."""

    fitted: bool

    def fit(self, z: torch.Tensor) -> CodeDensity:
        """Fit on training codes (N, d)."""

    def sample(self, n: int) -> torch.Tensor:
        """n codes (n, d)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log density (B,) of codes (B, d)."""

    def state(self) -> dict[str, Any]:
        """The fitted density as tensors and plain values; `kind` names the class that wrote it."""

    def load_state(self, state: dict[str, Any]) -> None:
        """Become the density `state` describes (written by `state()` of the same class)."""


OLD_KINDS = {"gmm": "LatentGMM", "two_stage": "TwoStageVAE"}  # the kinds checkpoints stored before they named classes


def check_kind(density: CodeDensity, state: dict[str, Any]) -> None:
    """Refuse a stored state written by another kind of density."""
    from aelab.core.errors import ConfigError

    kind = OLD_KINDS.get(state.get("kind"), state.get("kind"))
    if kind != type(density).__name__:
        raise ConfigError(f"the stored code density is a {kind}, the model's is {type(density).__name__}")
