"""Store the resolved run config inside every checkpoint, so `aelab-eval` can rebuild the model from it alone."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from aelab.tracking.checkpoint import CONFIG_KEY


class StoreConfig(pl.Callback):
    """Adds `checkpoint["aelab_config"]`: plain dicts/lists/scalars, loadable with `weights_only=True`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config
