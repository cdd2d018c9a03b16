"""Carry the global torch RNG state through checkpoints, so a resumed run draws the same noise as an unbroken one.

The state saved with a checkpoint is put back when training restarts (after Lightning's sanity-check validation,
which would otherwise consume draws that the unbroken run never made). With the epoch-seeded shuffling of the
data module this makes a run killed and resumed from last.ckpt end with the same metrics on CPU.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

RNG_KEY = "aelab_rng_state"


class RngState(pl.Callback):
    """Adds `checkpoint["aelab_rng_state"]` (a uint8 tensor, loadable with weights_only=True)."""

    def __init__(self) -> None:
        self.pending: torch.Tensor | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = torch.get_rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.pending = checkpoint.get(RNG_KEY)

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.pending is not None:
            torch.set_rng_state(self.pending)
            self.pending = None
