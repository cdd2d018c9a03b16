"""aelab from Python (notebooks, scripts): compose a config, train, open a run, evaluate, apply, report.

Every function runs in this process the same code as its command (`aelab-train`, `aelab-eval`, `aelab-apply`,
`aelab-report`) and returns Python objects: a config, a `Trained` run, a record dict. A run folder written here is
the CLI's: `.hydra/` (config, hydra, overrides), `<task>.log`, `result.json` with the overrides, `checkpoints/`.
Overrides are the command line's strings; W&B is offline without credentials or with WANDB_MODE=offline
(`logger=none` turns it off).

```python
import torch

from aelab import api

sweep = "outputs/api_example"
for latent_dim in (2, 8):
    trained = api.train(["data=digits", "model/arch=mlp", f"model.latent_dim={latent_dim}", "trainer.max_epochs=2",
                         "logger=none", "eval=none"], run_dir=f"{sweep}/d{latent_dim}")
    print(trained.run_dir, trained.metrics["test/loss"])

run = api.open_run(trained.run_dir)            # the last one: config, model (eval mode), apply state, record
data = run.datamodule()
batch = data.whole("test")                      # the test split as one batch: {"x", "target", "y"}
with torch.no_grad():
    codes = run.model.encode(batch["x"][:16])   # (16, 1, 8, 8) -> (16, 8)
print(codes.shape)

files = api.report(sweep)                       # report.md/.csv/.tex/.html beside the run folders
print(files["md"].read_text())
```
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from aelab import CONF_DIR
from aelab.core.errors import ConfigError
from aelab.tracking.trained import TrainedRun, checkpoint_of, open_run

__all__ = ["Trained", "TrainedRun", "apply", "compose", "evaluate", "open_run", "report", "train"]
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # conf/hydra/default.yaml's file handler
_GIVEN: set[Path] = set()  # the default run folders compose handed out in this process (none is handed out twice)


@dataclass
class Trained:
    """A finished training: the module (from best.ckpt, else last.ckpt, eval mode; None for a scikit-learn
    baseline, which stores no checkpoint), its metrics, the whole record (result.json) and the run folder."""

    module: Any
    metrics: dict[str, float]
    record: dict[str, Any]
    run_dir: Path


@contextmanager
def _hydra_initialised() -> Iterator[None]:
    """Hydra initialised on conf/ for one composition, whatever state the caller's Hydra is in, and left as it was."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()  # an app of the caller's, or a launch that failed, may have left Hydra initialised
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            yield
    finally:
        restore_gh_from_backup(backup)


def _fresh(folder: Path) -> Path:
    """`folder`, or `folder_2`, `folder_3`, ... when it exists or was handed out (two runs of the same variant in
    the same second: the folder name has the time to the second)."""
    candidate = folder.absolute()
    n = 1
    while candidate.exists() or candidate in _GIVEN:
        n += 1
        candidate = folder.absolute().with_name(f"{folder.name}_{n}")
    _GIVEN.add(candidate)
    return candidate


def compose(overrides: Sequence[str] = (), config: str = "train", run_dir: str | Path | None = None) -> DictConfig:
    """conf/<config>.yaml composed with the command line's `overrides`, as the Hydra app would: the run folder
    (`paths.output_dir`, `hydra.runtime.output_dir`) is `run_dir`, else `hydra.run.dir` (a new folder); the
    `hydra` node is kept (train/evaluate/apply set Hydra's runtime from it, then drop it, as Hydra's job does)."""
    from hydra import compose as hydra_compose

    with _hydra_initialised():
        cfg = hydra_compose(config_name=config, overrides=list(overrides), return_hydra_config=True)
    folder = Path(run_dir) if run_dir is not None else _fresh(Path(str(cfg.hydra.run.dir)))
    return _at(cfg, folder)


def _at(cfg: DictConfig, folder: str | Path) -> DictConfig:
    """A copy of `cfg` whose run folder is `folder` (absolute)."""
    cfg = copy.deepcopy(cfg)
    folder = str(Path(folder).expanduser().absolute())
    with open_dict(cfg):
        cfg.paths.output_dir = folder
        if "hydra" in cfg:
            with read_write(cfg.hydra), open_dict(cfg.hydra):
                cfg.hydra.runtime.output_dir = folder
    return cfg


@contextmanager
def _job(cfg: DictConfig) -> Iterator[DictConfig]:
    """What Hydra's run_job does around a task, in this process: the run folder with `.hydra/`, the task's log
    file, Hydra's runtime (the overrides, `${hydra:...}`) set from `cfg.hydra`; yields the task config (no
    `hydra` node). Afterwards Hydra's runtime and the log handlers are as before; a folder made here that holds
    only those files when the task fails is removed, as the CLI removes it."""
    from hydra.core.hydra_config import HydraConfig

    from aelab.commands.job import discard_bare_folder

    task = copy.deepcopy(cfg)
    with open_dict(task):
        task.pop("hydra", None)
    folder = Path(task.paths.output_dir)
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    previous = HydraConfig.instance().cfg
    if "hydra" in cfg:
        HydraConfig.instance().set_config(copy.deepcopy(cfg))
        _save_hydra_files(cfg, task, folder)
    handler, level = _log_to(folder / f"{task.task_name}.log")
    try:
        yield task
    except BaseException:
        _stop_logging(handler, level)
        if not existed:
            discard_bare_folder(folder, task.task_name, folder)
        raise
    else:
        _stop_logging(handler, level)
    finally:
        HydraConfig.instance().cfg = previous


def _save_hydra_files(cfg: DictConfig, task: DictConfig, folder: Path) -> None:
    """`.hydra/config.yaml`, `hydra.yaml` and `overrides.yaml`, as Hydra writes them (the report reads config.yaml)."""
    if cfg.hydra.output_subdir is None:
        return
    out = folder / str(cfg.hydra.output_subdir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(task, out / "config.yaml")
    OmegaConf.save(OmegaConf.masked_copy(cfg, "hydra"), out / "hydra.yaml")
    OmegaConf.save(cfg.hydra.overrides.task, out / "overrides.yaml")


def _log_to(path: Path) -> tuple[logging.Handler, int]:
    """aelab's INFO lines into the run's log file (as the CLI's), for one task; returns what to undo."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    package = logging.getLogger("aelab")
    level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    return handler, level


def _stop_logging(handler: logging.Handler, level: int) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
    logging.getLogger("aelab").setLevel(level)


def _config(given: Sequence[str] | DictConfig, config: str, run_dir: str | Path | None) -> DictConfig:
    """A composed config (its run folder moved to `run_dir` when given), or one composed from overrides."""
    if isinstance(given, DictConfig):
        if run_dir is None and "hydra" not in given and OmegaConf.is_interpolation(given.paths, "output_dir"):
            raise ConfigError("this config's run folder is Hydra's (paths.output_dir: ${hydra:runtime.output_dir}): "
                              "give run_dir=..., or compose it with aelab.api.compose")
        return _at(given, run_dir) if run_dir is not None else given
    if isinstance(given, str):
        raise TypeError(f"give a list of overrides, not one string: [{given!r}]")
    return compose(given, config, run_dir)


def train(config: Sequence[str] | DictConfig = (), run_dir: str | Path | None = None) -> Trained:
    """Train as `aelab-train <overrides>` does (or from a config `compose` made); the trained run."""
    from aelab.commands.train import train as train_command

    with _job(_config(config, "train", run_dir)) as task:
        record = train_command(task)
    folder = Path(task.paths.output_dir)
    module = open_run(folder).model if (folder / "checkpoints").is_dir() else None  # best.ckpt, else last.ckpt
    return Trained(module, dict(record["metrics"]), record, folder)


def evaluate(checkpoint: str | Path, overrides: Sequence[str] = (),
             run_dir: str | Path | None = None) -> dict[str, Any]:
    """Test a checkpoint (or a run folder's best.ckpt) as `aelab-eval ckpt_path=... <overrides>`; its record."""
    from aelab.commands.evaluate import evaluate as evaluate_command

    cfg = _with_checkpoint(compose(overrides, "eval", run_dir), checkpoint)
    with _job(cfg) as task:
        return evaluate_command(task)


def _with_checkpoint(cfg: DictConfig, checkpoint: str | Path) -> DictConfig:
    """`ckpt_path` set to the checkpoint `checkpoint` names, and written into the job's overrides as the CLI's."""
    path = str(checkpoint_of(checkpoint))
    cfg.ckpt_path = path
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.overrides.task.append(f"ckpt_path={path}")
    return cfg


def apply(checkpoint: str | Path, input: str | Path | None, output: str | Path, mode: str = "auto",
          **settings: Any) -> dict[str, Any]:
    """Apply a trained run to files as `aelab-apply` does (`settings`: n, batch_size, high_band, clean, seed);
    writes `<output>/apply.json` and returns its content."""
    from aelab.commands.apply import apply as apply_command
    from aelab.tracking.run import write_json

    cfg = _with_checkpoint(compose([f"mode={mode}"], "apply", run_dir=output), checkpoint)
    cfg.input = None if input is None else str(input)
    cfg.output = str(Path(output).expanduser().absolute())
    for key, value in settings.items():
        OmegaConf.update(cfg, key, value)  # struct mode: a key apply.yaml does not have is refused
    with _job(cfg) as task:
        record = apply_command(task)
    write_json(Path(task.output) / "apply.json", record)
    return record


def report(sweep: str | Path, metrics: list[str] | None = None) -> dict[str, Path]:
    """The report of a folder of run folders, as `aelab-report`: the files written (md, csv, tex, html, ...)."""
    from aelab.reporting.report import report as report_command

    return report_command(Path(sweep), metrics)
