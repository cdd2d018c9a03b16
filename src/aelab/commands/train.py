"""`aelab-train`: compose with Hydra, fit with Lightning, test the best checkpoint, record the run folder.

`train(cfg)` is a pure function of the composed config; `main` is the thin Hydra wrapper. Config composition
(`--help`, `--cfg job`) imports neither torch, Lightning nor W&B: those are imported inside `train`.
A run folder that already holds a completed record of the same job is skipped, an interrupted one resumes
from `checkpoints/last.ckpt` (`resume=false` turns both off): re-running a sweep completes only what is left.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from aelab import CONF_DIR
from aelab.commands.job import guarded, run_job, stage_metrics
from aelab.core.errors import ConfigError, positive_int
from aelab.tracking.console import quiet_libraries
from aelab.tracking.run import RunRecord
from aelab.tracking.runtime import is_global_zero, is_multirun, job_overrides, limit_threads, started_by_slurm

log = logging.getLogger(__name__)


def check_launch(trainer: Any) -> None:
    """Refuse DDP processes that Lightning would start itself inside a multirun: it re-runs the whole command line."""
    if is_multirun() and trainer.world_size > 1 and not trainer.strategy.cluster_environment.creates_processes_externally:
        raise ConfigError("trainer=ddp/ddp_cpu runs as a single run, not in a multirun (-m): Lightning starts ranks > 0 "
                          "by re-running the command line, which would start the sweep again")


def prepare(cfg: DictConfig, ckpt_path: str | None) -> tuple[Any, Any]:
    """Everything that can refuse the config, before anything is written or started (record, lock, W&B): the
    checkpoint to resume, the seed, the data (read, shape inferred) and the model. Returns (datamodule, model)."""
    check_settings(cfg)  # before the heavy imports: a mistyped number costs a second, not Lightning's import
    check_corruption(cfg)
    import pytorch_lightning as pl

    from aelab.core.build import build

    check_resume(cfg, ckpt_path)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, task=build(cfg.task), seed=cfg.seed)
    infer_data_shape(cfg, datamodule)
    model = build(cfg.model)
    datamodule.setup()
    return datamodule, model


def fit_and_test(cfg: DictConfig, loggers: list, ckpt_path: str | None, datamodule: Any,
                 model: Any) -> tuple[dict[str, float], str, Any]:
    """Fit the prepared model, test the best checkpoint, run the eval suite.

    Returns the metrics, the best checkpoint and the suite's Evaluation (notes, metric directions)."""
    from aelab.baselines.base import Baseline
    from aelab.callbacks.config import StoreConfig
    from aelab.callbacks.rng import RngState
    from aelab.core.build import build
    from aelab.evals.base import Evaluation, run_suite
    from aelab.tracking.slurm import lightning_plugins

    if is_global_zero():
        log.info("data preview: %s", datamodule.preview(Path(cfg.paths.output_dir)))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)
    if isinstance(model, Baseline):
        return fit_baseline(cfg, model, datamodule, loggers)
    callbacks = [build(c) for c in cfg.callbacks.values() if c is not None] + [StoreConfig(resolved), RngState()]
    cluster = lightning_plugins(cfg.trainer.get("plugins"))  # under SLURM: Lightning's auto-requeue off
    trainer = build(cfg.trainer, logger=loggers or False, callbacks=callbacks, **cluster)
    check_launch(trainer)
    notes = warn_few_steps(trainer, datamodule, getattr(model, "steps_per_call", 1))
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = stage_metrics(trainer.callback_metrics, "train", "val")
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    suite = Evaluation()
    if cfg.test:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True)
        metrics.update(stage_metrics(trainer.callback_metrics, "test"))
        if trainer.is_global_zero:  # the suite works on whole splits in one process: ranks > 0 would only repeat it
            suite = run_suite(cfg.get("eval"), model, datamodule, Path(cfg.paths.output_dir), trainer)
            metrics.update(suite.metrics)
        if trainer.is_global_zero and best:
            notes += store_apply_state(cfg, model, datamodule, best)
    suite.notes += notes + getattr(datamodule, "notes", [])  # few steps, a loose threshold, the input's oddities
    suite.higher_is_better = {**model.metric_directions(), **suite.higher_is_better}
    return metrics, best, suite


def warn_few_steps(trainer: Any, datamodule: Any, steps_per_call: int = 1, enough: int = 500) -> list[str]:
    """A warning (logged, and returned for the run's notes) when fitting will make fewer than `enough` optimizer
    steps: ceil(train rows / (batch size * processes)) per epoch (train-batch limits and accumulation applied)
    times max_epochs, capped by max_steps."""
    batches = math.ceil(len(datamodule.split("train")) / (datamodule.batch_size * trainer.world_size))
    limit = trainer.limit_train_batches
    batches = min(batches, int(limit) * steps_per_call) if isinstance(limit, int) else math.ceil(limit * batches)
    per_epoch = max(1, batches // trainer.accumulate_grad_batches)
    epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
    steps = min(per_epoch * epochs, trainer.max_steps if trainer.max_steps > 0 else math.inf)
    if steps >= enough:
        return []
    message = (f"this run makes only {steps} optimizer steps ({per_epoch} per epoch from {len(datamodule.split('train'))} "
               f"train rows at batch size {datamodule.batch_size}, max_epochs={trainer.max_epochs}, max_steps="
               f"{trainer.max_steps}): fewer than {enough}, the model may be far from trained (raise trainer.max_epochs)")
    log.warning(message)
    return [message]


def store_apply_state(cfg: DictConfig, model: Any, datamodule: Any, best: str) -> list[str]:
    """What `aelab-apply` needs beyond the weights, fitted on the best weights (the model holds them after
    testing) and added to best.ckpt: the data's preprocessing, the code density, and for anomaly runs the
    decision threshold calibrated on the (normal) validation split at `threshold_fpr`. Returns notes for the
    run record (a threshold whose false-positive rate is loosely known)."""
    from aelab.evals.anomaly import calibrate_threshold, threshold_warning
    from aelab.evals.base import fit_code_density
    from aelab.tracking.checkpoint import write_apply_state

    model.eval()
    state: dict[str, Any] = {"preprocessing": datamodule.preprocessing(), "task": cfg.task.name}
    notes = []
    anomaly = datamodule.normal_classes is not None
    if model.density is not None and (model.samples_from_density or anomaly):
        fit_code_density(model, datamodule)
        state["density"] = model.density_state()
    if anomaly:
        state["threshold"] = calibrate_threshold(model, datamodule, cfg.threshold_fpr)
        log.info("decision threshold %.4g on the %s score (flags %.0f%% of normal validation data)",
                 state["threshold"]["threshold"], state["threshold"]["score"], 100 * cfg.threshold_fpr)
        notes = [w for w in [threshold_warning(state["threshold"])] if w is not None]
        for warning in notes:
            log.warning(warning)
    write_apply_state(best, state)
    return notes


def infer_data_shape(cfg: DictConfig, datamodule: Any) -> None:
    """A user's files set what the config leaves null (`data.shape`, `data.num_classes`): read them, then write
    the values into the config, so the model is sized from them and the checkpoint records them."""
    if cfg.data.get("shape") is None or cfg.data.get("num_classes") is None:
        inferred = cfg.data.get("shape") is None
        datamodule.setup()
        cfg.data.shape, cfg.data.num_classes = list(datamodule.shape), datamodule.num_classes
        log.info("%s: shape %s, %s classes (read from the files)", cfg.data.name, cfg.data.shape, cfg.data.num_classes)
        if inferred:
            fit_code_size(cfg)


def fit_code_size(cfg: DictConfig) -> None:
    """A table's code narrower than its F columns: model.latent_dim >= F, not set on the command line, becomes
    max(1, F // 2) (an autoencoder whose code is as wide as its input can copy it and learns nothing), unless the
    model cannot be built with it (e.g. vq_vae's code_dim must divide it): then it stays, with a warning."""
    import torch

    from aelab.core.build import build

    latent = cfg.model.get("latent_dim")
    given = any(o.lstrip("+~").split("=")[0] == "model.latent_dim" for o in job_overrides())
    if len(cfg.data.shape) != 1 or latent is None or given or latent < cfg.data.shape[0]:
        return
    cfg.model.latent_dim = max(1, cfg.data.shape[0] // 2)
    try:
        with torch.random.fork_rng():  # a trial build: the real model's initialisation stays as without it
            build(cfg.model)
    except ConfigError as err:
        log.warning("%s: model.latent_dim %d >= its %d feature columns, but %d does not fit model=%s (%s): kept %d",
                    cfg.data.name, latent, cfg.data.shape[0], cfg.model.latent_dim, cfg.model.name, err, latent)
        cfg.model.latent_dim = latent
        return
    log.warning("%s: model.latent_dim %d >= its %d feature columns: set to %d (model.latent_dim=... on the command "
                "line keeps yours)", cfg.data.name, latent, cfg.data.shape[0], cfg.model.latent_dim)


def fit_baseline(cfg: DictConfig, model: Any, datamodule: Any, loggers: list) -> tuple[dict[str, float], str, Any]:
    """A scikit-learn baseline (`model=baseline/...`): fit on the train split, test, run the same eval suite."""
    from aelab.evals.base import Evaluation, run_suite

    train = datamodule.whole("train")
    log.info("fitting %s on %d train examples", cfg.model.name, len(train["x"]))
    model.fit(train["x"].flatten(1).double().numpy(), train["target"].flatten(1).double().numpy())  # (N, *shape) -> (N, D)
    test = datamodule.whole("test")
    metrics, directions = model.test_metrics(test["x"], test["target"]) if cfg.test else ({}, {})
    suite = run_suite(cfg.get("eval"), model, datamodule, Path(cfg.paths.output_dir)) if cfg.test else Evaluation()
    metrics |= suite.metrics
    suite.higher_is_better = {**directions, **suite.higher_is_better}
    for logger in loggers:
        logger.log_metrics(metrics, step=0)
    return metrics, "", suite


POSITIVE_SETTINGS = ("model.latent_dim", "data.batch_size", "data.eval_batch_size")


def check_settings(cfg: DictConfig) -> None:
    """The plain numbers that must be positive integers, checked on the config alone (the parts check them again
    when built from Python)."""
    for key in POSITIVE_SETTINGS:
        value = OmegaConf.select(cfg, key)
        if value is not None:
            positive_int(key, value)


def check_corruption(cfg: DictConfig) -> None:
    """One rule for corrupted inputs: the task defines the problem (task=denoise corrupts every split's inputs);
    model.corruption is train-time augmentation of a clean-input task (the DAE). Both at once corrupt twice."""
    if cfg.task.get("corruption") is not None and cfg.model.get("corruption") is not None:
        raise ConfigError(f"task={cfg.task.name} already corrupts the inputs (task.corruption) and model={cfg.model.name} "
                          f"corrupts them again in training (model.corruption): use model.corruption=null (e.g. model=ae) "
                          f"with task=denoise, or model=dae with task=reconstruct")


def resume_path(cfg: DictConfig, record: RunRecord) -> str | None:
    """`ckpt_path`, else this folder's last.ckpt when the job ran before and `resume`. A follower Lightning started
    takes rank 0's; one SLURM started (at the same time as rank 0) decides the same way from the same files."""
    if not record.leader and not started_by_slurm():
        return (record.previous or {}).get("resumed_from")
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return cfg.ckpt_path or (str(last) if cfg.resume and record.previous is not None and last.is_file() else None)


def check_resume(cfg: DictConfig, path: str | None) -> None:
    """Refuse a checkpoint that does not fit the configured model, before fitting starts."""
    from aelab.tracking.checkpoint import check_compatible, load_checkpoint

    if path:
        check_compatible(load_checkpoint(path), cfg.model, path)
        log.info("resuming from %s", path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, optionally test, and return the record written to `<run>/result.json`."""
    from aelab.tracking.lock import RunLock
    from aelab.tracking.wandb import run_dir

    quiet_libraries()
    run = {"model": cfg.model.name, "arch": cfg.model.arch, "latent_dim": cfg.model.latent_dim,
           "data": cfg.data.name, "task": cfg.task.name, "seed": cfg.seed}
    if cfg.data.get("normal_classes") is not None:
        run["normal_classes"] = ",".join(map(str, cfg.data.normal_classes))
    leader = is_global_zero()
    lock = RunLock(cfg.paths.output_dir, wait=cfg.get("wait_for_running", False))
    record = RunRecord(cfg.paths.output_dir, cfg.seed, job_overrides(), run=run, leader=leader)
    if record.completed_before and cfg.resume:
        log.info("%s: this job completed before; skipped (resume=false runs it again)", cfg.paths.output_dir)
        return record.previous
    if leader:
        lock.check()  # a second launch refuses (or waits) before it reads any data
    limit_threads(cfg.threads)
    try:
        datamodule, model = prepare(cfg, resume_path(cfg, record))
    except Exception as err:
        if is_multirun() and leader:  # the sweep's summary lists the job as failed
            record.fail(err)
        raise
    run["latent_dim"] = cfg.model.latent_dim  # as built (a table's code size may follow its columns)
    if leader:
        lock.claim()
        record = RunRecord(cfg.paths.output_dir, cfg.seed, job_overrides(), run=run)  # as it is now that we own it
        if record.completed_before and cfg.resume:  # it completed while we waited
            lock.release()
            return record.previous
    ckpt_path = resume_path(cfg, record)

    def body(loggers: list) -> tuple[dict[str, float], dict[str, Any]]:
        metrics, best, suite = fit_and_test(cfg, loggers, ckpt_path, datamodule, model)
        wandb_dirs = [d for d in map(run_dir, loggers) if d is not None]
        files = {"files": datamodule.file_report} if getattr(datamodule, "file_report", None) else {}
        return metrics, {**files, "notes": suite.notes, "best_checkpoint": best or None,
                         "higher_is_better": {k: suite.higher_is_better.get(k) for k in metrics},  # None: not ranked
                         "wandb_dir": str(wandb_dirs[0]) if wandb_dirs else None}

    try:  # begun before DDP starts ranks > 0: they resume from the same checkpoint
        return run_job(record, cfg.logger, body, resumed_from=ckpt_path)
    finally:
        if leader:
            lock.release()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Single run: one error line and exit 1 on aelab errors. Sweep: a failed job is recorded, the rest go on."""
    result = guarded(train, cfg)
    if result is None:
        return math.nan
    from aelab.tracking.console import print_result

    wandb_dir = Path(result["wandb_dir"]) if result.get("wandb_dir") else None
    if is_global_zero():  # ranks > 0 of a DDP run print nothing: rank 0 prints the synced metrics
        print_result(f"{cfg.model.name} on {cfg.data.name}", result, Path(cfg.paths.output_dir), wandb_dir)
    return result["metrics"].get(cfg.optimized_metric, math.nan) if cfg.optimized_metric else None
