"""One Optuna study shared by many workers (processes, SLURM jobs): its storage, the running trial, stale trials.

Storage: a path is Optuna's journal file (`JournalFileBackend`: an append-only log any number of processes on a
shared file system may write, the storage Optuna recommends for NFS); a URL (`sqlite:///...`, `postgresql://...`)
is its RDB storage. Every worker asks the study for a trial, trains it and tells the result, so no worker waits for
another. A worker's heartbeat is written into its running trial (`aelab:heartbeat`, every `heartbeat_s`); a
RUNNING trial whose heartbeat is older than `grace_s` belonged to a worker that died (a SIGKILL, a lost node): it
is told FAIL and the same parameters are enqueued with its run folder, so the trial runs again there and resumes
from its `last.ckpt`. Optuna's own heartbeat exists for RDB storages only; this one works on both.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from aelab.core.extras import require

TRIAL_ENV = "AELAB_OPTUNA_TRIAL"  # what a training run needs to report to its trial (JSON of TrialRef)
HEARTBEAT = "aelab:heartbeat"
FOLDER = "aelab:folder"  # the run folder (its number in the sweep) a trial trains in
RERUN = "aelab:rerun"  # a stale trial whose parameters were enqueued again


@dataclass
class TrialRef:
    """Where a trial lives: its storage, study, id, and the pruner (a `_target_` config) that judges it."""

    storage: str
    study_name: str
    trial_id: int
    pruner: dict[str, Any] | None = None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> TrialRef | None:
        return cls(**json.loads(os.environ[TRIAL_ENV])) if os.environ.get(TRIAL_ENV) else None


def open_storage(spec: str) -> Any:
    """A journal file for a path, Optuna's RDB storage for a URL."""
    optuna = require("optuna", "hydra/sweeper=optuna")
    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    from optuna.storages.journal import JournalFileBackend

    os.makedirs(os.path.dirname(os.path.abspath(spec)), exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


class Heartbeat:
    """Writes the time into a running trial every `interval` seconds until stopped (a context manager)."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="aelab-optuna-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT, time.time())
            except (RuntimeError, ValueError):  # the trial finished (told by its worker)
                return
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rerun_stale(study: Any, storage: Any, grace_s: float) -> list[int]:
    """Tell FAIL every RUNNING trial whose heartbeat is older than `grace_s` and enqueue its parameters with its
    run folder; the numbers of those trials. Of two workers that find the same trial, only the one whose tell
    succeeds enqueues it."""
    from optuna.trial import TrialState

    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.system_attrs.get(HEARTBEAT, trial.datetime_start.timestamp())
        if time.time() - beat <= grace_s:
            continue
        try:
            storage.set_trial_system_attr(trial._trial_id, RERUN, True)
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker told it first
            continue
        study.enqueue_trial(trial.params, user_attrs={FOLDER: trial.user_attrs.get(FOLDER, trial.number)},
                            skip_if_exists=False)
        found.append(trial.number)
    return found


def counts(study: Any) -> tuple[int, int]:
    """(trials that count against n_trials: finished, running or waiting, reruns not counted twice; running ones)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.system_attrs.get(RERUN))]
    return len(counted), sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
