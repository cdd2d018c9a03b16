"""Which runs a folder holds (a run folder, or a sweep folder of run folders), found without importing torch."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from aelab.core.errors import AelabError, CheckpointError
from aelab.tracking.run import read_record
from aelab.tracking.trained import BEST as CHECKPOINT


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


def run_infos(folders: list[Path]) -> tuple[list[RunInfo], list[str]]:
    """Each run named by its folder and the overrides that set it apart from the others (all, for one run),
    with its test metrics from result.json; and a line for each damaged result.json (that run keeps its folder's
    name, without overrides or metrics: its checkpoint alone is what the explorer opens)."""
    records = [read_record(f / "result.json") if (f / "result.json").is_file() else {} for f in folders]
    damaged = [r.get("state") == "damaged" for r in records]
    overrides = [[o for o in r.get("overrides", []) if not o.startswith("hydra")] for r in records]
    readable = [set(o) for o, bad in zip(overrides, damaged) if not bad]
    shared = set.intersection(*readable) if len(readable) > 1 else set()  # one readable record: all its overrides
    infos = []
    for folder, record, own in zip(folders, records, overrides):
        differing = " ".join(o for o in own if o not in shared)
        metrics = {k: v for k, v in record.get("metrics", {}).items() if k.startswith("test/") and isinstance(v, (int, float))}
        infos.append(RunInfo(folder, f"{folder.name}: {differing}" if differing else folder.name, metrics))
    notes = [f"damaged result.json: {r['error']}; the run is shown without its overrides and metrics"
             for r, bad in zip(records, damaged) if bad]
    return infos, notes


def job_order(path: Path) -> tuple[int, str]:
    """Sweep jobs 0, 1, ..., 10 in numeric order, other names after them."""
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def find_runs(folder: str | Path) -> tuple[list[RunInfo], list[str]]:
    """The runs in `folder` (itself a run, or a sweep's job folders) and a line for each job left out or damaged."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ExploreError(f"{folder} is not a folder: give a run folder (outputs/runs/<date>/<run>) or a sweep folder")
    if (folder / CHECKPOINT).is_file():
        return run_infos([folder])
    if (folder / "result.json").is_file():
        raise CheckpointError(f"run {folder} has no {CHECKPOINT} (it failed or was stopped before its first "
                              f"validation); train it again or resume it with ckpt_path=<run>/checkpoints/last.ckpt")
    jobs = sorted((p for p in folder.iterdir() if p.is_dir() and (p / "result.json").is_file()), key=job_order)
    runs, notes = run_infos([p for p in jobs if (p / CHECKPOINT).is_file()])
    left_out = [f"left out job {p.name}: no {CHECKPOINT}" for p in jobs if not (p / CHECKPOINT).is_file()]
    if not runs:
        why = f" ({len(jobs)} job folder(s), none with {CHECKPOINT})" if jobs else ""
        raise ExploreError(f"{folder} holds no run{why}: a run folder holds {CHECKPOINT}, a sweep folder holds run "
                           f"folders")
    return runs, left_out + notes


def free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (0: any free port, chosen here), else an ExploreError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ExploreError(f"cannot listen on {host}:{port} ({err.strerror}): pass --port <another> "
                               f"(--port 0 picks a free one)") from err
        return sock.getsockname()[1]
