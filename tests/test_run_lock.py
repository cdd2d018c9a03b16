"""One job, one owner: the run folder's claim (run.lock), its heartbeat, stale and requeued claims, and one job
launched twice through the real CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aelab.core.files import atomic_write
from aelab.tracking.lock import STALE_S, RunBusyError, RunLock
from aelab.tracking.run import read_record, write_json
from helpers import BIN, FAST, ROOT, read_result

SLOW = [*FAST, "model/arch=mlp", "logger=none", "eval=none", "callbacks.embeddings=null", "callbacks.samples=null",
        "callbacks.reconstructions=null"]


def claim_of(folder: Path, host: str, pid: int, age_s: float, slurm_job_id: str | None = None) -> Path:
    """A lock file as another process would have left it, its heartbeat `age_s` seconds old."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.lock"
    path.write_text(json.dumps({"host": host, "pid": pid, "slurm_job_id": slurm_job_id, "started_at": time.time() - age_s}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_a_fresh_claim_of_another_host_is_refused_with_its_owner_named(tmp_path: Path) -> None:
    claim_of(tmp_path, "node17", 4242, age_s=20)
    with pytest.raises(RunBusyError, match=r"being trained by another process \(pid 4242 on node17"):
        RunLock(tmp_path).claim()
    assert json.loads((tmp_path / "run.lock").read_text())["host"] == "node17"  # left as it was


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json(path, {"state": "running"})

    def half_then_full_disk(tmp: Path) -> None:
        assert tmp.parent == tmp_path and str(os.getpid()) in tmp.name  # beside the file, this process's own
        tmp.write_text('{"state": "compl')
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_full_disk)
    assert read_record(path)["state"] == "running" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_stale_claim_of_another_host_is_taken_over_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    claim_of(tmp_path, "node17", 4242, age_s=STALE_S + 60)
    lock = RunLock(tmp_path)
    lock.claim()
    try:
        info = json.loads((tmp_path / "run.lock").read_text())
        assert (info["host"], info["pid"]) == (socket.gethostname(), os.getpid())
        assert "taking over the stale claim of pid 4242 on node17" in caplog.text
    finally:
        lock.release()
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.slow
def test_a_claim_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    claim_of(tmp_path, socket.gethostname(), dead.pid, age_s=1)
    assert RunLock(tmp_path).busy_with() is None
    claim_of(tmp_path, socket.gethostname(), os.getppid(), age_s=1)  # a live process here: busy
    assert "pid" in RunLock(tmp_path).busy_with()


def test_a_requeued_slurm_job_is_the_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claim_of(tmp_path, "node17", 4242, age_s=5, slurm_job_id="981")
    monkeypatch.setenv("SLURM_JOB_ID", "981")
    lock = RunLock(tmp_path)
    lock.claim()  # no refusal: the same SLURM job, started again on another node
    lock.release()
    monkeypatch.setenv("SLURM_JOB_ID", "982")
    claim_of(tmp_path, "node17", 4242, age_s=5, slurm_job_id="981")
    with pytest.raises(RunBusyError):
        RunLock(tmp_path).claim()


def claim_at_once(folder: str, start: float, results: Any) -> None:
    """One of two processes that claim the same folder at the same moment: 'owner' or 'refused'."""
    lock = RunLock(folder)
    time.sleep(max(0.0, start - time.time()))
    try:
        lock.claim()
    except RunBusyError:
        results.put("refused")
        return
    results.put("owner")
    time.sleep(1.0)  # still holding it while the other one looks
    lock.release()


def test_two_launches_at_the_same_moment_give_one_owner(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = time.time() + 0.5
    procs = [context.Process(target=claim_at_once, args=(str(tmp_path), start, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    assert sorted(results.get(timeout=5) for _ in procs) == ["owner", "refused"]


@pytest.mark.slow
def test_one_job_launched_twice_trains_once(tmp_path: Path) -> None:
    """The second launch into the running job's folder refuses in one line; the first trains once, one attempt."""
    run = tmp_path / "run"
    args = [*SLOW, "trainer.max_epochs=40", f"hydra.run.dir={run}"]
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": ""}
    first = subprocess.Popen([str(BIN / "aelab-train"), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (run / "checkpoints").is_dir() and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)  # training has begun (the claim came before the first checkpoint)
    assert first.poll() is None, "the first launch ended before it could be launched again"
    second = subprocess.run([str(BIN / "aelab-train"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert second.returncode == 1 and lines[-1].startswith("error:") and "is being trained by another process" in lines[-1]
    assert f"pid {first.pid} " in lines[-1] and "Traceback" not in second.stderr
    assert first.wait(timeout=600) == 0, first.stdout.read()[-3000:]
    record = read_result(run)
    assert record["state"] == "completed" and record["attempts"] == 1
    assert not (run / "run.lock").exists()  # released at the end
