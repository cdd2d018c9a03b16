"""The run skeleton that `aelab-train` and `aelab-eval` share (cf. lightning-hydra-template's `task_wrapper`).

`run_job` marks the record running, builds the loggers, runs the job's body, and records `completed`, `failed`
(with the error), `interrupted` (stopped by a signal: SLURM's SIGTERM, a time limit's SIGUSR2, Ctrl-C; the job
resumes when run again or requeued) or the state an error declares (`pruned`: Optuna's pruner stopped it), and
closes the loggers with that outcome, whatever happens. `guarded` is the one error rule of both entry points: an
aelab error is one log line and exit code 1; inside a sweep any error is, and the sweep goes on (the job is marked
failed). Neither imports torch or Lightning at module level.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from aelab.core.errors import AelabError
from aelab.tracking.run import RunRecord
from aelab.tracking.runtime import full_errors, is_multirun

log = logging.getLogger(__name__)
Body = Callable[[list], tuple[dict[str, float], dict[str, Any]]]  # loggers -> (metrics, other record fields)


def stage_metrics(metrics: dict[str, Any], *stages: str) -> dict[str, float]:
    """Scalar `stage/name` metrics as floats; Lightning's `_step`/`_epoch` copies of train metrics left out."""
    return {k: float(v) for k, v in sorted(metrics.items())
            if k.split("/")[0] in stages and not k.endswith(("_step", "_epoch"))}


def run_job(record: RunRecord, logger_cfg: DictConfig, body: Body, **begin: Any) -> dict[str, Any]:
    """Begin the record, run `body(loggers)`, finish the record and close the loggers either way."""
    from aelab.core.build import build
    from aelab.tracking.finish import close_loggers

    record.begin(**begin)
    loggers: list = []
    try:
        loggers = [build(c) for c in logger_cfg.values() if c is not None]
        metrics, extra = body(loggers)
    except BaseException as err:
        signalled = isinstance(err, (SystemExit, KeyboardInterrupt))  # SLURM's SIGTERM, SIGUSR2's requeue, Ctrl-C
        state = "interrupted" if signalled else getattr(err, "record_state", "failed")
        record.finish(state, {}, error=f"{type(err).__name__}: {err}")
        try:  # a signal may have stopped W&B's service too: its error must not hide this one
            close_loggers(loggers, ok=False, interrupted=state == "interrupted")
        except Exception as close_err:
            log.warning("closing the loggers after %s failed: %s", type(err).__name__, close_err)
        raise
    result = record.finish("completed", metrics, **extra)
    close_loggers(loggers, ok=True)
    return result


def guarded(job: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    """job(cfg); an aelab error, or any error of a sweep's job, is logged in one line: None in a sweep, else exit 1.

    A single run that stops before it wrote anything of its own (a refused config, unreadable data) leaves no
    folder behind: Hydra's own files in it are removed, and the parent folders Hydra made for it if now empty."""
    try:
        return job(cfg)
    except Exception as err:
        if full_errors() or not (is_multirun() or isinstance(err, AelabError)):
            raise
        message = str(err) if isinstance(err, AelabError) else f"{type(err).__name__}: {err}"
        if is_multirun():
            log.error("%s", message)
            return None  # the job is marked failed in result.json; the sweep summary reports it
        to_log_files(message)
        discard_bare_folder(Path(cfg.paths.output_dir), cfg.task_name, Path(cfg.paths.get("log_dir", cfg.paths.output_dir)))
        raise SystemExit(f"error: {message}") from None


def to_log_files(message: str) -> None:
    """An error line for the run's log file only: the console gets it once, as the `error:` line of the exit."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def discard_bare_folder(folder: Path, task_name: str, top: Path) -> None:
    """Remove `folder` when it holds only what Hydra writes at a job's start (`.hydra/`, `<task_name>.log`), then
    its parents up to `top` (included) while they are empty."""
    own = {".hydra", f"{task_name}.log"}
    if not folder.is_dir() or any(p.name not in own for p in folder.iterdir()):
        return
    shutil.rmtree(folder)
    top = top.resolve()
    for parent in folder.resolve().parents:
        if not parent.is_relative_to(top) or any(parent.iterdir()):
            return
        parent.rmdir()
