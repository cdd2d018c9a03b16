"""Reconstruction grid of a fixed val batch: inputs in the top row, reconstructions below."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid, save_image

from aelab.tracking.media import log_image


class ReconstructionGrid(pl.Callback):
    """Every `every_n_epochs` epochs and after the last one: `recon_epochNNN.png` in the run folder and W&B."""

    def __init__(self, dirpath: str, every_n_epochs: int = 5, n: int = 16) -> None:
        self.dirpath, self.every_n_epochs, self.n = Path(dirpath), every_n_epochs, n

    @torch.no_grad()
    def write(self, trainer: pl.Trainer, module: pl.LightningModule) -> Path:
        x = trainer.datamodule.fixed_batch("val", self.n)["x"].to(module.device)
        was_training = module.training
        module.eval()
        recon = module.reconstruct(x).clamp(0, 1)
        module.train(was_training)
        grid = make_grid(torch.cat([x, recon]).cpu(), nrow=len(x), padding=1, pad_value=1.0)  # 2 rows
        path = self.dirpath / f"recon_epoch{trainer.current_epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        log_image(trainer, "val/reconstructions", path, caption=f"epoch {trainer.current_epoch}: inputs / reconstructions")
        return path

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch, last = trainer.current_epoch, trainer.max_epochs - 1
        if (epoch + 1) % self.every_n_epochs == 0 or epoch == last or trainer.fast_dev_run:
            self.write(trainer, module)
