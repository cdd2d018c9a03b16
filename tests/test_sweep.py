"""Multirun sweeps through the real launchers, failure isolation, resume after a kill, and the report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import BIN, ROOT, read_result, run_cli

pytestmark = pytest.mark.slow  # every test here starts a CLI process or a training run

SMALL = ["data=digits", "model/arch=mlp", "trainer.max_epochs=2", "callbacks.progress=null", "callbacks.embeddings.n=50"]


def sweep(args: list[str], sweep_dir: Path, **kw) -> subprocess.CompletedProcess:
    return run_cli("aelab-train", ["-m", *SMALL, *args, f"hydra.sweep.dir={sweep_dir}"], **kw)


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")}


def leet_summary(run: Path) -> dict:
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", read_result(run)["wandb_dir"]])
    return json.loads(out.stdout)


def sweep_runs(sweep_dir: Path) -> dict[str, dict]:
    """The runs in the sweep-level W&B folder, each read back with `wandb leet inspect`: job folder -> summary."""
    found = {}
    for link in sorted((sweep_dir / "wandb").glob("*run-*")):
        out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(link)])
        assert out.returncode == 0, out.stderr
        found[link.resolve().parent.parent.name] = json.loads(out.stdout)
    return found


def leet_screens(folder: Path, keys: list[str], wait: float = 8.0) -> tuple[str, str]:
    """`wandb leet <folder>` started in a real terminal (tmux): its screen after `wait` seconds, then after typing
    `keys` (tmux send-keys, one call each)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (make setup installs it as root)")
    session = f"leet{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "50", f"{BIN / 'wandb'} leet {folder}"],
                   check=True)
    try:
        time.sleep(wait)
        before = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
            time.sleep(0.5)
        time.sleep(1.5)
        return before, subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model=ae,vae x seed=0,1 through joblib with 2 workers, logged offline to W&B."""
    sweep_dir = tmp_path_factory.mktemp("joblib_sweep")
    out = sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=ae,vae", "seed=0,1",
                 "model.latent_dim=4"], sweep_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    return sweep_dir


def test_joblib_runs_every_job_in_its_own_folder(joblib_sweep: Path) -> None:
    found = records(joblib_sweep)
    assert sorted(found) == ["0", "1", "2", "3"]
    assert all(r["state"] == "completed" for r in found.values())
    assert sorted((r["run"]["model"], r["seed"]) for r in found.values()) == [("ae", 0), ("ae", 1), ("vae", 0), ("vae", 1)]


def test_runs_share_a_wandb_group_and_name_their_overrides(joblib_sweep: Path) -> None:
    for job in ("0", "3"):
        data = leet_summary(joblib_sweep / job)
        record = read_result(joblib_sweep / job)
        assert data["state"] == "finished" and data["config"]["model"]["name"] == record["run"]["model"]
        assert f"seed={record['seed']}" in data["name"] and f"model={record['run']['model']}" in data["name"]
        assert data["summary"]["val/mse"]["min"] > 0  # best val/mse kept as the min summary
        raw = run_cli("wandb", ["leet", "inspect", record["wandb_dir"]]).stdout
        assert f'run_group:  "{joblib_sweep.name}"' in raw
        assert f'job_type:  "{record["run"]["model"]}"' in raw


def test_the_whole_sweep_is_one_local_dashboard(joblib_sweep: Path) -> None:
    runs = sweep_runs(joblib_sweep)
    assert sorted(runs) == ["0", "1", "2", "3"]  # one readable run per job
    for job, data in runs.items():
        record = read_result(joblib_sweep / job)
        assert data["state"] == "finished" and data["name"] == ",".join(record["overrides"])
        assert Path(record["wandb_dir"]).name in {p.name for p in (joblib_sweep / "wandb").iterdir()}
    screen, filtered = leet_screens(joblib_sweep / "wandb", ["f", "model=vae", "Enter"])  # leet's filter by run name
    assert "Runs [4 items]" in screen
    assert all(Path(read_result(joblib_sweep / job)["wandb_dir"]).name[:30] in screen for job in runs)
    assert "Runs [2 filtered from 4 total]" in filtered


def test_report_matches_the_run_folders(joblib_sweep: Path) -> None:
    out = run_cli("aelab-report", [str(joblib_sweep), "--metrics", "test/mse", "test/psnr"])
    assert out.returncode == 0, out.stderr
    for ext in ("md", "csv", "tex", "html"):
        assert (joblib_sweep / f"report.{ext}").is_file()
    with open(joblib_sweep / "report.csv") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    for model in ("ae", "vae"):
        values = [r["metrics"]["test/mse"] for r in records(joblib_sweep).values() if r["run"]["model"] == model]
        assert float(rows[model]["test/mse_mean"]) == pytest.approx(np.mean(values), rel=1e-9)
        assert float(rows[model]["test/mse_std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-9)
        assert rows[model]["test/mse_n"] == "2"
    best = min(("ae", "vae"), key=lambda m: float(rows[m]["test/mse_mean"]))
    assert f"| {best} | 4 | **" in (joblib_sweep / "report.md").read_text()
    tex = (joblib_sweep / "report.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{" in tex
    page = (joblib_sweep / "report.html").read_text()
    assert (joblib_sweep / "plot_test_mse.png").is_file() and "recon_epoch" in page
    assert f"wandb leet {joblib_sweep / 'wandb'}" in page and f"wandb sync {joblib_sweep}/*/wandb/*run-*" in page
    assert "test/mse" in out.stdout


def test_submitit_local_runs_the_same_jobs(tmp_path: Path) -> None:
    out = sweep(["hydra/launcher=submitit_local", "model.latent_dim=2,3", "logger=none"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    found = records(tmp_path)
    assert sorted(r["run"]["latent_dim"] for r in found.values()) == [2, 3]
    assert all(r["state"] == "completed" for r in found.values())


def test_a_failing_job_does_not_stop_the_others(tmp_path: Path) -> None:
    out = sweep(["model.latent_dim=0,3", "logger=wandb"], tmp_path)
    assert out.returncode == 1
    found = records(tmp_path)
    assert found["0"]["state"] == "failed" and "positive integer" in found["0"]["error"]
    assert found["1"]["state"] == "completed"
    assert "1 of 2 jobs did not complete: 0" in out.stdout + out.stderr
    runs = sweep_runs(tmp_path)  # the refused job never started W&B: only the other job's run is there
    assert list(runs) == ["1"] and runs["1"]["state"] == "finished"
    assert f"wandb leet {tmp_path / 'wandb'}" in out.stdout and f"wandb sync {tmp_path}/*/wandb/*run-*" in out.stdout
    report = run_cli("aelab-report", [str(tmp_path)])
    assert "not averaged in" in report.stdout and "failed" in (tmp_path / "report.md").read_text()


def test_a_relaunched_sweep_leaves_a_job_another_process_trains_and_completes_the_rest(tmp_path: Path) -> None:
    """Job 0 is held by a live process on another node (fresh heartbeat, a running record): the relaunch refuses
    it in one line, leaves its claim and record as they were, completes job 1 and names job 0 as not completed."""
    held = tmp_path / "0"
    held.mkdir(parents=True)
    claim = {"host": "node17", "pid": 4242, "slurm_job_id": "981", "started_at": time.time()}
    (held / "run.lock").write_text(json.dumps(claim))
    (held / "result.json").write_text(json.dumps({"state": "running", "attempts": 1, "overrides": [*SMALL, "model.latent_dim=2"]}))
    before = {name: (held / name).read_bytes() for name in ("run.lock", "result.json")}
    out = sweep(["model.latent_dim=2,3"], tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "is being trained by another process (pid 4242 on node17, SLURM job 981" in text
    assert {name: (held / name).read_bytes() for name in before} == before
    assert records(tmp_path)["1"]["state"] == "completed"
    assert "1 of 2 jobs did not complete: 0" in text


def test_resume_after_a_kill_skips_finished_jobs_and_continues_the_interrupted_one(tmp_path: Path) -> None:
    args = [*SMALL, "model.latent_dim=2,3,4", "trainer.max_epochs=4", "logger=wandb", f"hydra.sweep.dir={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([str(BIN / "aelab-train"), "-m", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "1" / "checkpoints" / "last.ckpt").is_file() and time.time() < deadline:
        time.sleep(0.2)
    live = sweep_runs(tmp_path)  # the runs are in the sweep's dashboard while the sweep is still going
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {"0", "1"} <= set(live)
    before = records(tmp_path)
    assert before["0"]["state"] == "completed" and before["1"]["state"] == "running" and "2" not in before

    out = run_cli("aelab-train", ["-m", *args])
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "ERROR" in line or "error" in line.lower()]
    assert out.returncode == 0, "\n".join(problems) or out.stdout[-3000:]
    after = records(tmp_path)
    assert after["0"] == before["0"]  # skipped: the very same record
    assert after["1"]["state"] == "completed" and after["1"]["attempts"] == 2
    assert after["1"]["resumed_from"].endswith("1/checkpoints/last.ckpt")
    assert after["2"]["state"] == "completed" and after["2"]["attempts"] == 1
    assert len(list((tmp_path / "0" / "wandb").glob("offline-run-*"))) == 1  # no duplicate run for job 0
    ids = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "1" / "wandb").glob("offline-run-*")}
    assert len(ids) == 1  # the resumed job continued its own W&B run id
    runs = sweep_runs(tmp_path)
    assert sorted(runs) == ["0", "1", "2"] and len(list((tmp_path / "wandb").glob("*run-*"))) == 3  # one run per job
    assert Path(after["1"]["wandb_dir"]).name in {p.name for p in (tmp_path / "wandb").iterdir()}  # its latest part
    assert runs["1"]["state"] == "finished" and runs["1"]["summary"]["epoch"] == 4  # with its final step
