"""Optuna >= 4 through aelab's sweeper: two workers on one shared study (journal file), pruning from the per-epoch
val metric, a SIGKILLed search resumed (its running trial re-run in its folder from last.ckpt), the best trial in
the report, and SLURM jobs as workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from test_slurm import cluster  # noqa: F401  (the one-node SLURM cluster fixture)

from helpers import BIN, FAST, ROOT, run_cli
from hydra_plugins.aelab_plugins.optuna_sweeper import distribution

GOOD, BAD = 0.01, 1e-6  # learning rates: a bad trial learns next to nothing (slow, finite): worse than the median
SEARCH = ["hparams_search=optuna_fmnist", *FAST, "model/arch=mlp", "model.latent_dim=4", "logger=none", "eval=none",
          "callbacks.embeddings=null", "callbacks.samples=null", "threads=1", "+trainer.limit_train_batches=20",
          "hydra.sweeper.heartbeat_s=1", "hydra.sweeper.grace_s=4", "hydra.sweeper.pruner.n_startup_trials=1",
          "hydra.sweeper.pruner.n_warmup_steps=0", "hydra.sweeper.params={model.optimizer.lr: 'choice(0.01, 1e-6)'}"]


def test_hydra_sweep_syntax_becomes_optuna_distributions() -> None:
    parse = OverridesParser.create().parse_override
    assert distribution(parse("a=tag(log, interval(1e-4, 1e-2))").value()) == FloatDistribution(1e-4, 1e-2, log=True)
    assert distribution(parse("a=interval(0.1, 0.5)").value()) == FloatDistribution(0.1, 0.5)
    assert distribution(parse("a=tag(int, interval(2, 9))").value()) == IntDistribution(2, 9)
    assert distribution(parse("a=range(8, 33, 8)").value()) == IntDistribution(8, 32, step=8)
    assert distribution(parse("a=choice(8, 16, 32)").value()) == CategoricalDistribution([8, 16, 32])


def study_of(sweep: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep / "optuna.journal")))
    return optuna.create_study(study_name="ae_digits", storage=storage, load_if_exists=True)


def records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/result.json")}


@pytest.mark.slow
def test_two_workers_share_one_study_and_prune_a_bad_trial(tmp_path: Path) -> None:
    """Trials 0, 1 (good) run at once on the two workers; 2, 3 (bad) are pruned at their first epoch's report."""
    study = study_of(tmp_path)
    for lr in (GOOD, GOOD, BAD, BAD):
        study.enqueue_trial({"model.optimizer.lr": lr})
    out = run_cli("aelab-train", [*SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_workers=2", "trainer.max_epochs=3",
                                  "trainer.limit_train_batches=100", f"hydra.sweep.dir={tmp_path}"])  # good trials: long
    # enough that the second worker (a new process importing torch) gets to ask before the first has run all four
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = study_of(tmp_path).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    found = records(tmp_path)
    for t in trials[:2]:
        assert t.value == pytest.approx(found[str(t.number)]["metrics"]["val/mse"], rel=1e-12)
    for t in trials[2:]:  # stopped by the pruner, recorded as such (not failed), at its first report
        assert found[str(t.number)]["state"] == "pruned" and "pruned by Optuna at epoch 0" in found[str(t.number)]["error"]
        assert list(t.intermediate_values) == [0] and t.intermediate_values[0] > max(u.value for u in trials[:2])
    (log,) = (tmp_path / ".workers").glob("local-*.out")  # the second worker: a process of its own, which asked
    assert re.search(r"trial \d in ", log.read_text())  # the shared study for a trial and trained it
    best = min(trials[:2], key=lambda t: t.value).number
    assert json.loads((tmp_path / "optuna.json").read_text())["best_trial"] == best
    report = run_cli("aelab-report", [str(tmp_path)])
    assert report.returncode == 0 and f"| **best** {best} | `{best}` | COMPLETE |" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_a_killed_search_resumes_its_study_and_reruns_the_running_trial(tmp_path: Path) -> None:
    """SIGKILL while trial 0 trains: the same command again finds it stale, tells it FAIL and trains it again in
    folder 0 from its last.ckpt; the study then completes."""
    study_of(tmp_path).enqueue_trial({"model.optimizer.lr": GOOD})
    args = [*SEARCH, "hydra.sweeper.n_trials=2", "trainer.max_epochs=4", f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.Popen([str(BIN / "aelab-train"), *args], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "WANDB_MODE": "offline"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "0" / "checkpoints" / "last.ckpt").is_file() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [t.state.name for t in study_of(tmp_path).get_trials()] == ["RUNNING"]

    out = run_cli("aelab-train", args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = study_of(tmp_path).get_trials()
    assert trials[0].state.name == "FAIL" and len(trials) == 3  # the killed trial is told FAIL, not counted
    (rerun,) = [t for t in trials[1:] if t.user_attrs["aelab:folder"] == 0]  # its rerun, in its folder
    assert rerun.state.name == "COMPLETE" and rerun.params == trials[0].params
    record = records(tmp_path)["0"]
    assert record["state"] == "completed" and record["attempts"] == 2
    assert record["resumed_from"] == str(tmp_path / "0" / "checkpoints" / "last.ckpt")
    assert rerun.value == pytest.approx(record["metrics"]["val/mse"], rel=1e-12)
    assert len(records(tmp_path)) == 2  # one folder per counted trial


@pytest.mark.slow
def test_slurm_jobs_as_workers(cluster: None, tmp_path: Path) -> None:  # noqa: F811
    """hydra.sweeper.workers=slurm: the second worker is a SLURM job running the same command on the study."""
    out = run_cli("aelab-train", [*SEARCH, "hydra.sweeper.n_trials=3", "hydra.sweeper.n_workers=2",
                                  "hydra.sweeper.workers=slurm", "trainer.max_epochs=2", f"hydra.sweep.dir={tmp_path}"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = study_of(tmp_path).get_trials()
    assert len(trials) >= 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    (log,) = (tmp_path / ".workers").glob("*.out")  # the SLURM worker's output (sbatch --output=%j.out)
    assert "trial " in log.read_text() and log.stem.isdigit()
