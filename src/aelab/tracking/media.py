"""Send a PNG or WAV from the run folder to every logger that takes media (W&B); the file stays in the run folder."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger


def log_image(trainer: pl.Trainer, key: str, path: Path, caption: str = "") -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], caption=[caption], step=trainer.global_step)


def log_audio(trainer: pl.Trainer, key: str, path: Path, caption: str = "") -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_audio(key=key, audios=[str(path)], caption=[caption], step=trainer.global_step)
