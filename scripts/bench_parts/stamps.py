"""A callback that `make bench` adds to a real `aelab-train` run by a config override, to time it from inside.

`+callbacks.bench_stamps._target_=bench_parts.stamps.Stamps` (with scripts/ on PYTHONPATH) writes wall-clock
stamps to the file named by $AELAB_BENCH_STAMPS: the first train batch, every train epoch's start and the end of
its last batch. It uses only Lightning's hooks, so the same override times the code of any commit.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytorch_lightning as pl


class Stamps(pl.Callback):
    """Writes {"first_step": t, "epoch_starts": [t, ...], "step_ends": [t, ...]} (time.time()) when fitting ends."""

    def __init__(self) -> None:
        self.stamps: dict[str, Any] = {"first_step": None, "epoch_starts": [], "step_ends": []}

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.stamps["epoch_starts"].append(time.time())
        self.stamps["step_ends"].append(None)

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.stamps["first_step"] is None:
            self.stamps["first_step"] = time.time()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.stamps["step_ends"][-1] = time.time()

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.stamps["fit_end"] = time.time()
        with open(os.environ["AELAB_BENCH_STAMPS"], "w") as f:
            json.dump(self.stamps, f)
