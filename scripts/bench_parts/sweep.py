"""Part 4 of `make bench`: a 4-job digits sweep serially and through joblib with 2 workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_parts.common import BIN, ENV, OUT, ROOT, SWEEP_JOBS, Part, Settings, log


def first_log_s(sweep_dir: Path, launched: float) -> float | None:
    """Seconds from launching a sweep to the earliest first line of its jobs' train.log (a job loading its data)."""
    stamps = []
    for path in sweep_dir.glob("*/train.log"):
        line = path.read_text().split("\n", 1)[0]
        if line.startswith("["):
            stamps.append(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return min(stamps) - launched if stamps else None


def run_sweep(name: str, launcher: list[str], epochs: int) -> dict[str, Any]:
    """One `aelab-train -m` of the 4 digits jobs into outputs/bench/<name>: wall time and the jobs' own times."""
    sweep_dir = OUT / name
    shutil.rmtree(sweep_dir, ignore_errors=True)  # resume=true would skip jobs completed by an earlier bench
    args = ["-m", *SWEEP_JOBS, f"trainer.max_epochs={epochs}", *launcher, f"hydra.sweep.dir={sweep_dir}"]
    start, launched = time.perf_counter(), time.time()
    proc = subprocess.run([str(BIN / "aelab-train"), *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    jobs = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    return {"wall_s": wall, "jobs": len(jobs), "completed": sum(j["state"] == "completed" for j in jobs),
            "job_wall_s": sum(j["wall_time_s"] for j in jobs), "first_log_s": first_log_s(sweep_dir, launched),
            "command": "aelab-train " + " ".join(args)}


def part_sweep(s: Settings) -> Part:
    """Part 4: the same 4 jobs through the basic launcher and through joblib with 2 workers."""
    log.info("part 4: 4-job digits sweep, serial then joblib n_jobs=2")
    serial = run_sweep("sweep_serial", [], s.sweep_epochs)
    joblib = run_sweep("sweep_joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], s.sweep_epochs)
    speedup = serial["wall_s"] / joblib["wall_s"]
    rows = [[name, r["completed"], r["wall_s"], r["job_wall_s"], r["wall_s"] - r["job_wall_s"] / workers,
             r["first_log_s"]]
            for name, r, workers in (("serial (basic launcher)", serial, 1), ("joblib n_jobs=2", joblib, 2))]
    rows.append(["speed-up serial/joblib", "", speedup, "", "", ""])
    return Part(title="4. Sweep: 4 digits jobs, serial vs joblib with 2 workers",
                columns=["launcher", "jobs completed", "wall s", "sum of jobs' wall_time_s", "wall outside jobs s",
                         "s to first job's data load"],
                rows=rows, target="speed-up >= 1.6x", met=speedup >= 1.6, data={"serial": serial, "joblib": joblib},
                notes=[f"`{serial['command']}`", f"`{joblib['command']}`",
                       "'wall outside jobs' = sweep wall time minus the jobs' own time (divided by 2 workers for "
                       "joblib): process start-up, imports, worker spawn, the sweep summary. 'first job's data load' = "
                       "launch to the earliest first line of a job's train.log."])
