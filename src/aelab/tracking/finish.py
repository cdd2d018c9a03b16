"""Close every logger, W&B included, with the run's outcome (called even when the run crashed)."""

from __future__ import annotations

from pytorch_lightning.loggers import Logger, WandbLogger


def close_loggers(loggers: list[Logger], ok: bool, interrupted: bool = False) -> None:
    """An interrupted run (a signal; it resumes later under the same W&B id) is marked preempting in W&B."""
    for logger in loggers:
        logger.finalize("success" if ok else "failed")
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            if interrupted:
                logger.experiment.mark_preempting()
            logger.experiment.finish(exit_code=0 if ok else 1)
