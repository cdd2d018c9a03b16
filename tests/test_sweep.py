"""Multirun sweeps through the real launchers, failure isolation, resume after a kill, and the report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, ROOT, read_result, run_cli

SMALL = ["data=digits", "model/arch=mlp", "trainer.max_epochs=2", "callbacks.progress=null", "callbacks.embeddings.n=50"]


def sweep(args: list[str], sweep_dir: Path, **kw) -> subprocess.CompletedProcess:
    return run_cli("aelab-train", ["-m", *SMALL, *args, f"hydra.sweep.dir={sweep_dir}"], **kw)


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")}


def leet_summary(run: Path) -> dict:
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", read_result(run)["wandb_dir"]])
    return json.loads(out.stdout)


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
    assert (joblib_sweep / "plot_test_mse.png").is_file() and "recon_epoch" in (joblib_sweep / "report.html").read_text()
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
    failed_run = next((tmp_path / "0" / "wandb").glob("offline-run-*"))
    data = json.loads(run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(failed_run)]).stdout)
    assert data["exit_code"] == 1
    report = run_cli("aelab-report", [str(tmp_path)])
    assert "not averaged in" in report.stdout and "failed" in (tmp_path / "report.md").read_text()


def test_resume_after_a_kill_skips_finished_jobs_and_continues_the_interrupted_one(tmp_path: Path) -> None:
    args = [*SMALL, "model.latent_dim=2,3,4", "trainer.max_epochs=4", "logger=wandb", f"hydra.sweep.dir={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([str(BIN / "aelab-train"), "-m", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "1" / "checkpoints" / "last.ckpt").is_file() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = records(tmp_path)
    assert before["0"]["state"] == "completed" and before["1"]["state"] == "running" and "2" not in before

    out = run_cli("aelab-train", ["-m", *args])
    assert out.returncode == 0, out.stderr[-3000:]
    after = records(tmp_path)
    assert after["0"] == before["0"]  # skipped: the very same record
    assert after["1"]["state"] == "completed" and after["1"]["attempts"] == 2
    assert after["1"]["resumed_from"].endswith("1/checkpoints/last.ckpt")
    assert after["2"]["state"] == "completed" and after["2"]["attempts"] == 1
    assert len(list((tmp_path / "0" / "wandb").glob("offline-run-*"))) == 1  # no duplicate run for job 0
    ids = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "1" / "wandb").glob("offline-run-*")}
    assert len(ids) == 1  # the resumed job continued its own W&B run id


def test_optuna_study_lives_in_the_sweep_folder_and_continues(tmp_path: Path) -> None:
    args = ["hparams_search=optuna_fmnist", "data=digits", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
            "logger=none", "callbacks.progress=null", f"hydra.sweep.dir={tmp_path}"]
    for _ in range(2):
        out = run_cli("aelab-train", args)
        assert out.returncode == 0, out.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="ae_digits", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    values = sorted(r["metrics"]["val/mse"] for r in records(tmp_path).values())
    assert sorted(t.value for t in study.trials) == pytest.approx(values)
