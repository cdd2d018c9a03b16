"""`aelab-train`: compose with Hydra, fit with Lightning, test the best checkpoint, record the run folder.

`train(cfg)` is a pure function of the composed config; `main` is the thin Hydra wrapper. Config composition
(`--help`, `--cfg job`) imports neither torch, Lightning nor W&B: those are imported inside `train`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from aelab.errors import AelabError

log = logging.getLogger(__name__)
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")  # the checkout's conf/ (installed editable)
QUIET = (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*")


def hydra_overrides() -> list[str]:
    """The command-line overrides of this job ([] when the config was composed outside @hydra.main)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def stage_metrics(metrics: dict[str, Any], *stages: str) -> dict[str, float]:
    """Scalar `stage/name` metrics as floats; Lightning's `_step`/`_epoch` copies of train metrics left out."""
    return {k: float(v) for k, v in sorted(metrics.items())
            if k.split("/")[0] in stages and not k.endswith(("_step", "_epoch"))}


def quiet_libraries() -> None:
    """Silence warnings that do not apply to in-memory data on CPU, and Lightning's advertising tips."""
    for pattern in QUIET:
        warnings.filterwarnings("ignore", pattern)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, optionally test, and return the record written to `<run>/result.json`."""
    import pytorch_lightning as pl
    from aelab.build import build

    from aelab.callbacks.config import StoreConfig
    from aelab.tracking.finish import close_loggers
    from aelab.tracking.run import RunRecord

    quiet_libraries()
    record = RunRecord(cfg.paths.output_dir, cfg.seed, hydra_overrides())
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loggers: list = []
    metrics: dict[str, float] = {}
    try:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = build(cfg.data)
        model = build(cfg.model)
        loggers = [build(c) for c in cfg.logger.values() if c is not None]
        for logger in loggers:
            logger.log_hyperparams(resolved)
        callbacks = [build(c) for c in cfg.callbacks.values() if c is not None] + [StoreConfig(resolved)]
        trainer: pl.Trainer = build(cfg.trainer, logger=loggers or False, callbacks=callbacks)
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics = stage_metrics(trainer.callback_metrics, "train", "val")
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test:
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            metrics.update(stage_metrics(trainer.callback_metrics, "test"))
    except BaseException as err:
        record.finish("failed", metrics, error=f"{type(err).__name__}: {err}")
        close_loggers(loggers, ok=False)
        raise
    from aelab.tracking.wandb import run_dir

    wandb_dirs = [d for d in map(run_dir, loggers) if d is not None]
    result = record.finish("completed", metrics, best_checkpoint=best or None,
                           wandb_dir=str(wandb_dirs[0]) if wandb_dirs else None)
    close_loggers(loggers, ok=True)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        result = train(cfg)
    except AelabError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", err)
        raise SystemExit(1) from None
    from aelab.console import print_result

    wandb_dir = Path(result["wandb_dir"]) if result.get("wandb_dir") else None
    print_result(f"{cfg.model.name} on {cfg.data.name}", result, Path(cfg.paths.output_dir), wandb_dir)


if __name__ == "__main__":
    main()
