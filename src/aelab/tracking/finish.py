"""Close every logger, W&B included, with the run's outcome (called even when the run crashed)."""

from __future__ import annotations

from pytorch_lightning.loggers import Logger, WandbLogger


def close_loggers(loggers: list[Logger], ok: bool) -> None:
    for logger in loggers:
        logger.finalize("success" if ok else "failed")
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=0 if ok else 1)
