"""New samples at the end of fitting: from the prior, or from a latent density fitted on the training codes (an image
grid; signals: four clips drawn as waveforms)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid, save_image

from aelab.callbacks.images import waveforms
from aelab.evals.base import DENSITY_FIT_ON, fit_code_density
from aelab.tracking.media import log_image


class SampleGrid(pl.Callback):
    """Fits the ex-post density (when sampling goes through it), writes `samples.png`, logs `val/samples`."""

    def __init__(self, dirpath: str, n: int = 64, fit_on: int = DENSITY_FIT_ON) -> None:
        self.dirpath, self.n, self.fit_on = Path(dirpath), n, fit_on

    @torch.no_grad()
    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        module.eval()
        if module.samples_from_density:
            if module.density is None:
                return
            fit_code_density(module, trainer.datamodule, self.fit_on)
        samples = module.sample(self.n).cpu()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / "samples.png"
        if samples.ndim == 3:  # signals (n, C, L): four clips, the first channel
            waveforms({"sample": samples[:4, 0]}, path)
        else:
            save_image(make_grid(samples.clamp(0, 1), nrow=int(self.n ** 0.5), padding=1, pad_value=1.0), path)
        log_image(trainer, "val/samples", path, caption=f"{self.n} samples")
