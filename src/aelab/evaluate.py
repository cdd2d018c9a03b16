"""`aelab-eval ckpt_path=...`: rebuild a checkpoint's model from the config stored in it and test it.

The data is the checkpoint's own unless `data=<name>` is given. Writes `<eval run>/result.json`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from aelab.errors import AelabError
from aelab.runtime import full_errors, job_overrides
from aelab.train import CONF_DIR, quiet_libraries, stage_metrics

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint at `cfg.ckpt_path`; return the record written to `<run>/result.json`."""
    import pytorch_lightning as pl

    from aelab.build import build
    from aelab.checkpoint import load_checkpoint, rebuild_model
    from aelab.evals.base import run_suite
    from aelab.tracking.finish import close_loggers
    from aelab.tracking.run import RunRecord

    quiet_libraries()
    record = RunRecord(cfg.paths.output_dir, cfg.seed, job_overrides())
    record.begin()
    loggers: list = []
    try:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        model, run_cfg = rebuild_model(load_checkpoint(cfg.ckpt_path))
        task = build(run_cfg.task) if run_cfg.get("task") else None  # checkpoints from before tasks: reconstruct
        datamodule = build(cfg.data if cfg.get("data") else run_cfg.data, task=task)
        loggers = [build(c) for c in cfg.logger.values() if c is not None]
        for logger in loggers:
            logger.log_hyperparams({"eval": OmegaConf.to_container(cfg, resolve=True), **OmegaConf.to_container(run_cfg)})
        trainer: pl.Trainer = build(cfg.trainer, logger=loggers or False, enable_checkpointing=False)
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = stage_metrics(trainer.callback_metrics, "test")
        suite = run_suite(cfg.get("eval"), model, datamodule, Path(cfg.paths.output_dir), trainer)
        metrics.update(suite.metrics)
    except BaseException as err:
        record.finish("failed", {}, error=f"{type(err).__name__}: {err}", checkpoint=str(cfg.ckpt_path))
        close_loggers(loggers, ok=False)
        raise
    directions = {**model.metric_directions(), **suite.higher_is_better}
    result = record.finish("completed", metrics, notes=suite.notes, checkpoint=str(cfg.ckpt_path), model=run_cfg.model.name,
                           higher_is_better={k: directions.get(k) for k in metrics},  # None: not ranked
                           data=datamodule.name)
    close_loggers(loggers, ok=True)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        result = evaluate(cfg)
    except AelabError as err:
        if full_errors():
            raise
        log.error("%s", err)
        raise SystemExit(1) from None
    from aelab.console import print_result

    print_result(f"{result['model']} on {result['data']} (test)", result, Path(cfg.paths.output_dir), None)


if __name__ == "__main__":
    from aelab.cli import evaluate as cli

    cli()
