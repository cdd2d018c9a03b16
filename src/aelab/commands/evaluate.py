"""`aelab-eval ckpt_path=...`: rebuild a checkpoint's model from the config stored in it and test it.

The data is the checkpoint's own unless `data=<name>` is given. Writes `<eval run>/result.json`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from aelab import CONF_DIR
from aelab.commands.job import guarded, run_job, stage_metrics
from aelab.tracking.console import quiet_libraries
from aelab.tracking.run import RunRecord
from aelab.tracking.runtime import is_multirun, job_overrides

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint at `cfg.ckpt_path`; return the record written to `<run>/result.json`."""
    from aelab.tracking.checkpoint import check_file

    check_file(cfg.ckpt_path)  # before the heavy imports: a wrong file is refused at once
    import pytorch_lightning as pl

    from aelab.core.build import build
    from aelab.evals.base import run_suite
    from aelab.tracking.trained import open_run

    quiet_libraries()
    record = RunRecord(cfg.paths.output_dir, cfg.seed, job_overrides())
    try:  # everything that can refuse the run, before anything is written or started
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        run = open_run(cfg.ckpt_path)
        model, run_cfg = run.model, run.config
        datamodule = run.datamodule(cfg.data if cfg.get("data") else None)
        datamodule.setup()
    except Exception as err:
        if is_multirun():  # the sweep's summary lists the job as failed
            record.fail(err)
        raise
    record.data["checkpoint"] = str(cfg.ckpt_path)

    def body(loggers: list) -> tuple[dict[str, float], dict[str, Any]]:
        for logger in loggers:
            logger.log_hyperparams({"eval": OmegaConf.to_container(cfg, resolve=True), **OmegaConf.to_container(run_cfg)})
        trainer: pl.Trainer = build(cfg.trainer, logger=loggers or False, enable_checkpointing=False)
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = stage_metrics(trainer.callback_metrics, "test")
        suite = run_suite(cfg.get("eval"), model, datamodule, Path(cfg.paths.output_dir), trainer)
        metrics.update(suite.metrics)
        directions = {**model.metric_directions(), **suite.higher_is_better}
        return metrics, {"notes": suite.notes, "model": run_cfg.model.name, "data": datamodule.name,
                         "higher_is_better": {k: directions.get(k) for k in metrics}}  # None: not ranked

    return run_job(record, cfg.logger, body)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    result = guarded(evaluate, cfg)
    if result is None:  # a failed job of a sweep: recorded, reported by the sweep summary
        return
    from aelab.tracking.console import print_result

    print_result(f"{result['model']} on {result['data']} (test)", result, Path(cfg.paths.output_dir), None)
