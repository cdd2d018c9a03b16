"""SLURM for real: a one-node cluster (scripts/slurm_cluster.sh) runs sweeps through `hydra/launcher=slurm`.

A job sent the time-limit signal (SIGUSR2, what SLURM sends `signal_delay_s` before the limit) and a job requeued
by `scontrol requeue` go back to the queue by themselves and end with the metrics of an unbroken run of the same
job (CPU, fixed seed), as one W&B run; a job killed on its node is recorded failed while the others complete; a
2-task DDP job is one run, across a requeue too. Skipped only where the cluster cannot be installed (not root, no
apt-get); as root a cluster that does not start is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aelab.tracking.slurm import lightning_plugins
from helpers import BIN, FAST, ROOT, run_cli

SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
# a VAE (the resumed run must draw the same posterior noise), small batches: each epoch is many steps
JOB = [*FAST, "model=vae", "model/arch=mlp", "model.latent_dim=4", "data.batch_size=8", "trainer.max_epochs=4",
       "+trainer.limit_train_batches=60",
       "eval=none", "callbacks.embeddings=null", "callbacks.samples=null", "threads=1", "hydra/launcher=slurm"]
SECONDS: dict[str, float] = {}  # measured here, printed at the end (docs/guides/slurm.md quotes them)
SENT: dict[Path, float] = {}  # run folder -> when its job was signalled, requeued or killed


@pytest.fixture(scope="module")
def cluster() -> None:
    """The one-node cluster, installed and started (idempotent)."""
    if os.geteuid() != 0:
        pytest.skip("the one-node SLURM cluster needs root to install and start (scripts/slurm_cluster.sh start)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and cannot be here (no apt-get): install slurm-wlm and munge")
    out = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"scripts/slurm_cluster.sh start failed:\n{out.stdout}\n{out.stderr}"


@contextlib.contextmanager
def running_sweep(args: list[str], sweep_dir: Path) -> Iterator[subprocess.Popen]:
    """`aelab-train -m` with the SLURM launcher in the background; on an error its process and SLURM jobs end."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([str(BIN / "aelab-train"), "-m", *args, f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    except BaseException:
        proc.kill()
        proc.wait()
        for array in {p.name.split("_")[0] for p in (sweep_dir / ".submitit").glob("*_*")}:
            subprocess.run(["scancel", array], capture_output=True)
        raise


def slurm_id(sweep_dir: Path, job: int) -> str:
    """The SLURM id of a sweep's job: the launcher submits one array, task i = job i (`<array>_<i>`; not the task's
    numeric id, which for the last task is the array's own and would address all of them)."""
    arrays = {p.name.split("_")[0] for p in (sweep_dir / ".submitit").glob("*_*") if p.is_dir()}
    return f"{min(arrays, key=int)}_{job}"


def when_training(sweep_dir: Path, actions: dict[int, Callable[[str], None]], proc: subprocess.Popen) -> None:
    """For each job: once its first epoch is saved (last.ckpt), act on its SLURM job (mid-training)."""
    left, deadline = dict(actions), time.time() + 400
    while left and time.time() < deadline and proc.poll() is None:
        for job in [j for j in left if (sweep_dir / str(j) / "checkpoints" / "last.ckpt").is_file()]:
            SENT[sweep_dir / str(job)] = time.time()
            left.pop(job)(slurm_id(sweep_dir, job))
        time.sleep(0.1)
    assert not left, f"jobs {sorted(left)} never saved an epoch" + ("" if proc.poll() is None else proc.stdout.read()[-3000:])


def job_state(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def signal_job(job_id: str, name: str) -> None:
    """`scancel --signal=<name>`, done when the job leaves RUNNING. SLURM 22.05's scancel on an array task delivers
    the signal at once, then says "Job can not be altered now" (the job is being requeued) and retries for about a
    minute: it is stopped once the signal took effect, so that it cannot signal the requeued job again."""
    scancel = subprocess.Popen(["scancel", f"--signal={name}", job_id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while job_state(job_id) == "RUNNING" and time.time() < deadline:
        time.sleep(0.1)
    scancel.kill()
    scancel.wait()
    assert job_state(job_id) != "RUNNING", f"SLURM job {job_id} kept running after SIG{name}"


def requeue(job_id: str) -> None:
    subprocess.run(["scontrol", "requeue", job_id], check=True)


def time_limit_signal(job_id: str) -> None:
    signal_job(job_id, "USR2")


def kill_on_node(job_id: str) -> None:
    """SIGKILL to the job's processes on its node (`scontrol listpids`), as when a node's OOM killer or a crash
    takes them: no signal handler, no record written."""
    own_id = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True).stdout.strip()
    lines = subprocess.run(["scontrol", "listpids", own_id], capture_output=True, text=True, check=True).stdout
    for pid in [int(line.split()[0]) for line in lines.splitlines()[1:] if line.split()[0].isdigit()]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")}


def final(record: dict) -> dict[str, float]:
    return {k: v for k, v in record["metrics"].items() if k.startswith(("val/", "test/"))}


def wandb_ids(run: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")}


@pytest.fixture(scope="module")
def sweep(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Four copies of one job (tags tell them apart): 0 runs unbroken, 1 gets the time-limit signal, 2 is requeued
    by `scontrol requeue`, 3 is killed on its node; each after its first epoch."""
    sweep_dir = tmp_path_factory.mktemp("slurm_sweep")
    start = time.time()
    with running_sweep([*JOB, "logger=wandb", "tags=[unbroken],[usr2],[requeue],[killed]"], sweep_dir) as proc:
        when_training(sweep_dir, {1: time_limit_signal, 2: requeue, 3: kill_on_node}, proc)
        out, _ = proc.communicate(timeout=600)
    SECONDS["4-job sweep, wall"] = time.time() - start
    assert proc.returncode == 1, out[-3000:]  # the killed job
    return sweep_dir, out


@pytest.mark.slow
def test_requeued_jobs_resume_to_the_unbroken_metrics(sweep: tuple[Path, str]) -> None:
    sweep_dir, _ = sweep
    found = records(sweep_dir)
    assert found["0"]["state"] == "completed" and found["0"]["attempts"] == 1
    for job in ("1", "2"):  # USR2 (time limit, preemption) and scontrol requeue
        assert found[job]["state"] == "completed" and found[job]["attempts"] >= 2, found[job]
        assert found[job]["resumed_from"] == str(sweep_dir / job / "checkpoints" / "last.ckpt")
        assert final(found[job]) == pytest.approx(final(found["0"]), rel=1e-6) and final(found["0"])
        SECONDS[f"signal to resumed training, job {job}"] = found[job]["started_at"] - SENT[sweep_dir / job]


@pytest.mark.slow
def test_a_requeued_job_stays_one_wandb_run(sweep: tuple[Path, str]) -> None:
    sweep_dir, _ = sweep
    for job in ("1", "2"):
        run = sweep_dir / job
        assert len(list((run / "wandb").glob("offline-run-*"))) >= 2 and len(wandb_ids(run)) == 1
        out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", json.loads((run / "result.json").read_text())["wandb_dir"]])
        data = json.loads(out.stdout)
        assert data["state"] == "finished" and data["summary"]["epoch"] == 4  # with its final step
    links = {p.name for p in (sweep_dir / "wandb").glob("*run-*")}  # the sweep's dashboard: each job once, latest part
    assert links == {Path(json.loads((sweep_dir / j / "result.json").read_text())["wandb_dir"]).name for j in "012"} | {
        p.name for p in (sweep_dir / "3" / "wandb").glob("offline-run-*")}


@pytest.mark.slow
def test_a_job_killed_on_its_node_is_failed_and_the_others_complete(sweep: tuple[Path, str]) -> None:
    sweep_dir, out = sweep
    found = records(sweep_dir)
    assert found["3"]["state"] == "failed" and "ended on its node without finishing" in found["3"]["error"]
    assert "its record said running" in found["3"]["error"]  # SIGKILL: the job itself could write nothing
    assert [found[j]["state"] for j in "012"] == ["completed"] * 3
    assert "1 of 4 jobs did not complete: 3" in out
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│ ") and line.split("│")[1].strip()]
    assert [[c.strip() for c in row] for row in rows] == [["0", "completed", "1"], ["1", "completed", str(found["1"]["attempts"])],
                                                        ["2", "completed", str(found["2"]["attempts"])], ["3", "failed", "1"]]


@pytest.mark.slow
def test_a_two_task_ddp_job_is_one_run_across_a_requeue(cluster: None, tmp_path: Path) -> None:
    """2 SLURM tasks (one per rank): one folder, one record, one W&B run, requeued mid-training; its metrics equal
    an unbroken twin's."""
    args = [*JOB, "trainer=ddp_cpu", "trainer.max_epochs=2", "hydra.launcher.tasks_per_node=2", "logger=wandb",
            "tags=[unbroken],[requeue]"]
    with running_sweep(args, tmp_path) as proc:
        when_training(tmp_path, {1: requeue}, proc)
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    found = records(tmp_path)
    assert sorted(found) == ["0", "1"] and sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1"]
    assert found["0"]["attempts"] == 1 and found["1"]["attempts"] == 2
    assert "MEMBER: 2/2" in (tmp_path / "1" / "train.log").read_text()  # both ranks ran, in the job's one folder
    assert final(found["1"]) == pytest.approx(final(found["0"]), rel=1e-6) and final(found["0"])
    assert len(wandb_ids(tmp_path / "1")) == 1


def test_lightning_auto_requeue_is_off_under_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """One requeue mechanism (submitit's): under srun Lightning's SLURM environment comes with auto_requeue off."""
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert lightning_plugins(None) == {}  # not under SLURM: Lightning picks its environment as usual
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (environment,) = lightning_plugins(None)["plugins"]
    assert type(environment).__name__ == "SLURMEnvironment" and environment.auto_requeue is False
    assert lightning_plugins(["mine"]) == {}  # a user's trainer.plugins are kept



@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AELAB_SLURM_TIME_LIMIT") != "1",
                    reason="opt-in (about 5 minutes): AELAB_SLURM_TIME_LIMIT=1 runs a job through real 3-minute limits")
def test_a_job_longer_than_its_time_limit_completes_over_several_attempts(cluster: None, tmp_path: Path) -> None:
    """A real limit: timeout_min=3 with the shipped signal_delay_s (SIGUSR2 60 s before it); the job needs several
    limits' worth of training (300 epochs: about 4 minutes on an idle CPU core, far more on a busy one, hence
    max_num_timeout=30 and AELAB_SLURM_TIME_LIMIT_EPOCHS to set the work), so it is requeued and completes."""
    epochs = int(os.environ.get("AELAB_SLURM_TIME_LIMIT_EPOCHS", "300"))
    start = time.time()
    out = run_cli("aelab-train", ["-m", *FAST, "model/arch=mlp", "model.latent_dim=4", "data.batch_size=8", "threads=1",
                                  f"trainer.max_epochs={epochs}", "logger=none", "eval=none", "callbacks.embeddings=null",
                                  "callbacks.samples=null", "hydra/launcher=slurm", "hydra.launcher.timeout_min=3",
                                  "hydra.launcher.max_num_timeout=30", f"hydra.sweep.dir={tmp_path}"])
    SECONDS["3-minute limit, job wall"] = time.time() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = records(tmp_path)["0"]
    print(f"\n3-minute limit: {record['attempts']} attempts, {SECONDS['3-minute limit, job wall']:.0f} s in all, "
          f"resumed from {record['resumed_from']}, test/mse {record['metrics']['test/mse']:.5f}")
    assert record["state"] == "completed" and record["attempts"] >= 2
    assert record["resumed_from"] == str(tmp_path / "0" / "checkpoints" / "last.ckpt")
    assert "this job is timed-out" in "".join(p.read_text() for p in (tmp_path / ".submitit").glob("*/*.err"))


def test_torch_threads_follow_a_slurm_tasks_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from aelab.tracking.runtime import torch_threads

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert torch_threads(None) == 3 and torch_threads(2) == 2  # `threads=` still wins
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert torch_threads(None) == (os.cpu_count() or 1)  # outside SLURM and a sweep: every core
