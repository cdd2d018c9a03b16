"""One job, one owner: the process that trains a run folder claims it in `<run>/run.lock`.

The lock file holds the owner's host, pid, SLURM job id and start time; the owner rewrites it every HEARTBEAT_S
seconds, so its modification time on the (possibly shared) file system is the heartbeat. Another launch of the
same job refuses in one line naming the owner, or waits (`wait_for_running=true`). A claim is stale, and is taken
over with a log line, when its heartbeat is older than STALE_S, or at once when its owner ran on this host and
its pid is gone. A requeued SLURM job (the same SLURM_JOB_ID) is the owner, not an intruder; ranks > 0 of a
distributed run never claim (rank 0 holds the claim for all of them).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from aelab.core.errors import AelabError
from aelab.core.files import write_text_atomic

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # how often the owner rewrites the lock
STALE_S = 300.0  # a heartbeat older than this is a dead owner's (ten missed beats: slow shared file systems)
POLL_S = 5.0  # wait_for_running: how often the lock is looked at


class RunBusyError(AelabError):
    """Another live process trains this run folder."""


def me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "started_at": round(time.time(), 3)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RunLock:
    """`claim()` the folder (refusing, waiting or taking over as the module says); `release()` it at the end."""

    def __init__(self, folder: str | Path, wait: bool = False) -> None:
        self.path = Path(folder) / "run.lock"
        self.wait = wait
        self.mine = me()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def owner(self) -> tuple[dict[str, Any], float] | None:
        """The claim on disk and its heartbeat's age in seconds, or None when there is none."""
        try:
            info = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):  # half-written by a crash: judge by its age
            info, age = {}, time.time() - self.path.stat().st_mtime
        return (info if isinstance(info, dict) else {}), age

    def is_mine(self, info: dict[str, Any]) -> bool:
        """The same process, or the same SLURM job (requeued or preempted, started again)."""
        job = self.mine["slurm_job_id"]
        same_process = (info.get("host"), info.get("pid")) == (self.mine["host"], self.mine["pid"])
        return same_process or (job is not None and info.get("slurm_job_id") == job)

    def is_live(self, info: dict[str, Any], age: float) -> bool:
        if age > STALE_S:
            return False
        return not (info.get("host") == self.mine["host"] and isinstance(info.get("pid"), int) and not pid_alive(info["pid"]))

    def busy_with(self) -> str | None:
        """A description of the live owner that is not this job, else None."""
        found = self.owner()
        if found is None or self.is_mine(found[0]) or not self.is_live(*found):
            return None
        info, age = found
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started_at", 0)))
        slurm = f", SLURM job {info['slurm_job_id']}" if info.get("slurm_job_id") else ""
        return f"pid {info.get('pid')} on {info.get('host')}{slurm}, since {since}, heartbeat {age:.0f} s ago"

    def check(self) -> None:
        """Refuse (or with `wait`, wait) while another live process holds the folder."""
        owner = self.busy_with()
        if owner is not None and not self.wait:
            raise RunBusyError(f"{self.path.parent} is being trained by another process ({owner}); "
                               f"wait_for_running=true waits for it to finish")
        if owner is not None:
            log.info("%s is being trained by another process (%s); waiting for it", self.path.parent, owner)
        while owner is not None:
            time.sleep(POLL_S)
            owner = self.busy_with()

    def claim(self) -> None:
        """Take the folder: refuse or wait for a live owner, take over a stale or requeued one (said), then beat.
        A free folder is taken by creating the lock exclusively, so of two launches at once only one wins."""
        self.check()
        found = self.owner()
        if found is None:
            try:
                self.create()
            except FileExistsError:  # another launch took it between our look and now
                return self.claim()
        else:
            if not self.is_mine(found[0]):
                info, age = found
                log.warning("%s: taking over the stale claim of pid %s on %s (heartbeat %.0f s ago)", self.path.parent,
                            info.get("pid"), info.get("host"), age)
            elif found[0].get("pid") != self.mine["pid"]:
                log.info("%s: SLURM job %s started again; it keeps its claim", self.path.parent, self.mine["slurm_job_id"])
            self.write()
        self._beat = threading.Thread(target=self._heartbeat, name="aelab-run-lock", daemon=True)
        self._beat.start()

    def create(self) -> None:
        """Write the claim where there is none; FileExistsError when there is one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as file:
            file.write(json.dumps({**self.mine, "heartbeat_at": round(time.time(), 3)}) + "\n")

    def write(self) -> None:
        write_text_atomic(self.path, json.dumps({**self.mine, "heartbeat_at": round(time.time(), 3)}) + "\n")

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            found = self.owner()
            if found is not None and not self.is_mine(found[0]):
                log.error("%s was taken over by pid %s on %s", self.path.parent, found[0].get("pid"), found[0].get("host"))
                return
            self.write()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        found = self.owner()
        if found is not None and self.is_mine(found[0]):
            self.path.unlink(missing_ok=True)
