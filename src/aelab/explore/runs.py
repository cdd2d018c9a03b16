"""Which runs a folder holds (a run folder, or a sweep folder of run folders), found without importing torch."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from aelab.core.errors import AelabError, CheckpointError

CHECKPOINT = Path("checkpoints") / "best.ckpt"


class ExploreError(AelabError):
    """The explorer cannot start: no run in the folder, a missing checkpoint, a port in use."""


@dataclass(frozen=True)
class RunInfo:
    """A run folder that the explorer can open: its path, a name for the page, and its test metrics."""

    folder: Path
    name: str
    metrics: dict[str, float]

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT


def read_record(folder: Path) -> dict:
    path = folder / "result.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_infos(folders: list[Path]) -> list[RunInfo]:
    """Each run named by its folder and the overrides that set it apart from the others (all, for one run),
    with its test metrics from result.json."""
    records = [read_record(f) for f in folders]
    overrides = [[o for o in r.get("overrides", []) if not o.startswith("hydra")] for r in records]
    shared = set.intersection(*map(set, overrides)) if len(folders) > 1 else set()
    infos = []
    for folder, record, own in zip(folders, records, overrides):
        differing = " ".join(o for o in own if o not in shared)
        metrics = {k: v for k, v in record.get("metrics", {}).items() if k.startswith("test/") and isinstance(v, (int, float))}
        infos.append(RunInfo(folder, f"{folder.name}: {differing}" if differing else folder.name, metrics))
    return infos


def job_order(path: Path) -> tuple[int, str]:
    """Sweep jobs 0, 1, ..., 10 in numeric order, other names after them."""
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def find_runs(folder: str | Path) -> tuple[list[RunInfo], list[str]]:
    """The runs in `folder` (itself a run, or a sweep's job folders) and a line for each job left out."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ExploreError(f"{folder} is not a folder: give a run folder (outputs/runs/<date>/<run>) or a sweep folder")
    if (folder / CHECKPOINT).is_file():
        return run_infos([folder]), []
    if (folder / "result.json").is_file():
        raise CheckpointError(f"run {folder} has no {CHECKPOINT} (it failed or was stopped before its first "
                              f"validation); train it again or resume it with ckpt_path=<run>/checkpoints/last.ckpt")
    jobs = sorted((p for p in folder.iterdir() if p.is_dir() and (p / "result.json").is_file()), key=job_order)
    runs = run_infos([p for p in jobs if (p / CHECKPOINT).is_file()])
    left_out = [f"job {p.name}: no {CHECKPOINT}" for p in jobs if not (p / CHECKPOINT).is_file()]
    if not runs:
        why = f" ({len(jobs)} job folder(s), none with {CHECKPOINT})" if jobs else ""
        raise ExploreError(f"{folder} holds no run{why}: a run folder holds {CHECKPOINT}, a sweep folder holds run "
                           f"folders")
    return runs, left_out


def free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (0: any free port, chosen here), else an ExploreError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ExploreError(f"cannot listen on {host}:{port} ({err.strerror}): pass --port <another> "
                               f"(--port 0 picks a free one)") from err
        return sock.getsockname()[1]
