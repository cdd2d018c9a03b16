"""aelab's Optuna sweeper (`hydra/sweeper=optuna`): N workers on one shared study, Optuna's ask-and-tell API.

Each worker (this process, the `n_workers - 1` copies of the command it starts, as local processes or SLURM jobs,
or any number started by hand with the same `hydra.sweep.dir`) repeats: ask the study for a trial, train it in its
own run folder (`<sweep>/<folder>`) through Hydra's launcher, tell the study the result; no worker waits for a
batch. A run whose per-epoch validation metric is unpromising is stopped by its pruner
(`aelab.callbacks.pruning.OptunaPruning`) and told PRUNED; a run that fails (or diverges) is told FAIL. A trial
left RUNNING by a dead worker runs again in its folder, resuming from last.ckpt (`aelab.tracking.study`). At the
end the worker writes `<sweep>/optuna.json` (every trial, the best one marked), which `aelab-report` shows.
Optuna is imported when the sweep starts, so an install without the optuna extra still finds the plugin.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
WORKER_ENV = "AELAB_OPTUNA_WORKER"  # set in the workers this sweeper starts: they start none themselves


def distribution(value: Any) -> Any:
    """Hydra's sweep syntax as an Optuna distribution (as hydra-optuna-sweeper read it): choice(...) categorical,
    interval(a, b) float, tag(int, interval(a, b)) int, tag(log, ...) on a log scale, range(a, b[, step]) int."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(value.list))
    log_scale = "log" in value.tags
    if isinstance(value, RangeSweep):
        return IntDistribution(int(value.start), int(value.stop) - 1, step=int(value.step or 1))
    if isinstance(value, IntervalSweep) and "int" in value.tags:  # Hydra reads interval ends as floats
        return IntDistribution(int(value.start), int(value.end), log=log_scale)
    return FloatDistribution(float(value.start), float(value.end), log=log_scale)


class OptunaSweeper(Sweeper):
    """See the module. Options (conf/hydra/sweeper/optuna.yaml): storage, study_name, direction, n_trials,
    n_workers, workers (local | slurm), sbatch (extra sbatch arguments), sampler, pruner, heartbeat_s, grace_s,
    params."""

    def __init__(self, storage: str, study_name: str, direction: str, n_trials: int, params: DictConfig | dict,
                 sampler: Any = None, pruner: Any = None, n_workers: int = 1, workers: str = "local",
                 sbatch: list[str] | None = None, heartbeat_s: float = 10.0, grace_s: float = 60.0) -> None:
        self.options = dict(storage=storage, study_name=study_name, direction=direction, n_trials=n_trials,
                            n_workers=n_workers, workers=workers, heartbeat_s=heartbeat_s, grace_s=grace_s)
        self.params = {k: str(v) for k, v in dict(params).items()}
        self.sampler_cfg = OmegaConf.to_container(sampler, resolve=True) if OmegaConf.is_config(sampler) else sampler
        self.pruner_cfg = OmegaConf.to_container(pruner, resolve=True) if OmegaConf.is_config(pruner) else pruner
        self.sbatch = list(sbatch or [])

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[Any]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from aelab.core.build import build
        from aelab.core.extras import require
        from aelab.tracking.study import open_storage

        optuna = require("optuna", "hydra/sweeper=optuna")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        chosen = {}  # key -> override: the command line's replaces the config's `params` of the same key
        for override in parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()] + arguments):
            chosen[override.get_key_element()] = override
        space = {k: distribution(o.value()) for k, o in chosen.items() if o.is_sweep_override()}
        fixed = [f"{k}={o.get_value_element_as_str()}" for k, o in chosen.items() if not o.is_sweep_override()]
        self.storage = open_storage(str(self.options["storage"]))
        sampler = build(self.sampler_cfg) if self.sampler_cfg else None
        study = optuna.create_study(storage=self.storage, study_name=self.options["study_name"], sampler=sampler,
                                    direction=self.options["direction"], load_if_exists=True)
        started = not os.environ.get(WORKER_ENV)  # by the user: it starts the others and writes the summary
        workers = self.start_workers(sweep_dir) if started else []
        returns = self.work(study, space, fixed, sweep_dir)
        self.wait_for(workers)
        if started:
            write_summary(study, sweep_dir, str(self.config.get("optimized_metric")))
        return returns

    def work(self, study: Any, space: dict[str, Any], fixed: list[str], sweep_dir: Path) -> list[Any]:
        """Ask, train, tell until the study holds n_trials trials and none is running anywhere."""
        from aelab.tracking.study import counts, rerun_stale

        returns = []
        while True:
            for number in rerun_stale(study, self.storage, self.options["grace_s"]):
                log.warning("trial %d was left running by a worker that stopped: it runs again in its folder", number)
            counted, active = counts(study)
            waiting = any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
            if counted >= self.options["n_trials"] and not waiting:
                if active == 0:
                    return returns
                time.sleep(self.options["heartbeat_s"])  # others' trials: one may turn out stale and run again
                continue
            returns.append(self.run_trial(study, study.ask(space), fixed, sweep_dir))

    def run_trial(self, study: Any, trial: Any, fixed: list[str], sweep_dir: Path) -> Any:
        from optuna.trial import TrialState

        from aelab.tracking.run import read_record
        from aelab.tracking.study import FOLDER, TRIAL_ENV, Heartbeat, TrialRef

        folder = int(trial.user_attrs.get(FOLDER, trial.number))
        trial.set_user_attr(FOLDER, folder)
        overrides = [*fixed, *(f"{k}={v}" for k, v in trial.params.items())]
        log.info("trial %d in %s: %s", trial.number, sweep_dir / str(folder), " ".join(overrides))
        os.environ[TRIAL_ENV] = TrialRef(str(self.options["storage"]), study.study_name, trial._trial_id,
                                         self.pruner_cfg).to_env()
        try:
            with Heartbeat(self.storage, trial._trial_id, self.options["heartbeat_s"]):
                (result,) = self.launcher.launch([overrides], initial_job_idx=folder)
        finally:
            del os.environ[TRIAL_ENV]
        record_path = sweep_dir / str(folder) / "result.json"
        record = read_record(record_path) if record_path.is_file() else {"state": "failed", "metrics": {}}
        value = record["metrics"].get(str(self.config.get("optimized_metric")), math.nan)
        if record["state"] == "completed" and math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.PRUNED if record["state"] == "pruned" else TrialState.FAIL)
        return result

    def start_workers(self, sweep_dir: Path) -> list[Any]:
        """n_workers - 1 more workers running this command: local processes, or SLURM jobs (`sbatch`)."""
        command = [sys.executable, *sys.argv]
        extra = max(0, int(self.options["n_workers"]) - 1)
        logs = sweep_dir / ".workers"
        logs.mkdir(exist_ok=True)
        env = {**os.environ, WORKER_ENV: "1"}
        if self.options["workers"] == "slurm":
            wrap = shlex.join(command)
            ids = [subprocess.run(["sbatch", "--parsable", f"--output={logs}/%j.out", *self.sbatch, "--wrap", wrap],
                                  env=env, capture_output=True, text=True, check=True).stdout.strip() for _ in range(extra)]
            log.info("started %d Optuna workers as SLURM jobs %s", extra, " ".join(ids))
            return ids
        procs = []
        for i in range(extra):
            with open(logs / f"local-{os.getpid()}-{i}.out", "w") as out:
                procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
        log.info("started %d Optuna workers as local processes %s", extra, " ".join(str(p.pid) for p in procs))
        return procs

    @staticmethod
    def wait_for(workers: list[Any]) -> None:
        for worker in workers:
            if isinstance(worker, subprocess.Popen):
                worker.wait()
                continue
            while subprocess.run(["squeue", "-h", "-j", worker, "-o", "%T"], capture_output=True, text=True).stdout.strip():
                time.sleep(2)


def write_summary(study: Any, sweep_dir: Path, metric: str) -> None:
    """`<sweep>/optuna.json`: every trial (number, state, run folder, value, parameters) and the best one."""
    from aelab.tracking.run import write_json
    from aelab.tracking.study import FOLDER

    trials = [{"number": t.number, "state": t.state.name, "folder": str(t.user_attrs.get(FOLDER, t.number)),
               "value": t.value, "params": t.params} for t in study.get_trials(deepcopy=False)]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = study.best_trial.number if done else None
    write_json(sweep_dir / "optuna.json", {"study": study.study_name, "direction": study.direction.name.lower(),
                                          "metric": metric, "best_trial": best, "trials": trials})
