"""The run folder's result.json: state, metrics, overrides, seed, wall time, versions and git commit."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from aelab.core.errors import ConfigError
from aelab.core.files import write_text_atomic

log = logging.getLogger(__name__)

PACKAGES = ("aelab", "torch", "torchvision", "pytorch-lightning", "hydra-core", "wandb", "torchmetrics", "scikit-learn")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    """HEAD of the source checkout (with '-dirty' when it has uncommitted changes), or None outside git."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_record(path: Path) -> dict[str, Any]:
    """A result.json; a damaged one (truncated by a crash or a full disk, not JSON) reads as state "damaged"."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return {"state": "damaged", "error": f"{path} is not a readable record ({err})", "metrics": {}, "overrides": []}
    return record if isinstance(record, dict) else {"state": "damaged", "error": f"{path} holds no record", "metrics": {}}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


class RunRecord:
    """result.json of one run: 'running' from the start, then 'completed' or 'failed' with the error.

    A folder that already holds a record of the same job (same overrides) is that job's earlier attempt:
    `previous` keeps it so the caller can skip a completed job or resume an interrupted one.
    A follower (rank > 0 of a distributed run) never writes, and its `previous` is the record rank 0 began.
    """

    def __init__(self, output_dir: str | Path, seed: int | None, overrides: list[str],
                 run: dict[str, Any] | None = None, leader: bool = True) -> None:
        self.leader = leader
        self.path = Path(output_dir) / "result.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.previous: dict[str, Any] | None = read_record(self.path) if self.path.is_file() else None
        if self.previous is not None and self.previous["state"] == "damaged":  # keep it aside; the job runs again
            kept = self.path.with_name(f"result.damaged-{int(time.time())}.json")
            if leader:
                os.replace(self.path, kept)
            log.warning("%s; kept as %s, the job runs again", self.previous["error"], kept)
            self.previous = None
        if self.previous is not None and sorted(self.previous.get("overrides", [])) != sorted(overrides):
            raise ConfigError(f"{self.path.parent} holds the job {self.previous.get('overrides')}, not {overrides}: "
                              f"re-run a sweep with the same arguments, or use a new hydra.sweep.dir")
        self.start = time.time()
        attempts = (self.previous or {}).get("attempts", 0) + 1
        self.data: dict[str, Any] = {"state": "running", "metrics": {}, "overrides": overrides, "seed": seed,
                                     "run": run or {}, "wall_time_s": None, "attempts": attempts, "versions": versions(),
                                     "git_commit": git_commit()}

    @property
    def completed_before(self) -> bool:
        """A follower sees it too: SLURM starts every rank of a finished job again, and all of them skip it."""
        return self.previous is not None and self.previous.get("state") == "completed"

    def begin(self, **extra: Any) -> None:
        """Mark the run as running (on disk at once, so a killed run is never taken for a finished one)."""
        self.start = time.time()
        self.data.update(extra, started_at=round(self.start, 3))
        self.write()

    def finish(self, state: str, metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
        now = time.time()
        self.data.update(state=state, metrics=metrics, wall_time_s=round(now - self.start, 3), finished_at=round(now, 3), **extra)
        self.write()
        return self.data

    def fail(self, err: BaseException) -> dict[str, Any]:
        """Record a job that stopped before it began (its config or data refused): the sweep summary lists it."""
        self.begin()
        return self.finish("failed", {}, error=f"{type(err).__name__}: {err}")

    def write(self) -> None:
        if self.leader:
            write_json(self.path, self.data)
