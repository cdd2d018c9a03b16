"""aelab.api: the module docstring's example runs; trainings in one process stay apart; the API's numbers are the
command line's (train, evaluate) and apply writes what aelab-apply writes."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from aelab import api
from aelab.core.errors import ConfigError
from aelab.tracking import runtime
from helpers import compose_cfg, read_result, run_cli

SHORT = ["data=digits", "model/arch=mlp", "trainer.max_epochs=1", "logger=none", "eval=none", "callbacks.progress=null"]


def test_hydra_runtime_outside_and_inside_a_job(tmp_path: Path) -> None:
    """No Hydra app: the runtime facts are a single run's; inside an API job they are the job's, and after it
    as before; a job that fails leaves no bare folder behind."""
    facts = (runtime.job_overrides(), runtime.is_multirun(), runtime.sweep_dir(), runtime.parallel_jobs())
    assert facts == ([], False, None, 1)
    with api._job(api.compose(["data=digits", "seed=3"], run_dir=tmp_path / "run")) as task:
        assert runtime.job_overrides() == ["data=digits", "seed=3"] and not runtime.is_multirun()
        assert "hydra" not in task
        assert task.paths.output_dir == str(tmp_path / "run")
    assert runtime.job_overrides() == [] and (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    with pytest.raises(RuntimeError), api._job(api.compose(["data=digits"], run_dir=tmp_path / "bare")):
        raise RuntimeError("refused")
    assert not (tmp_path / "bare").exists() and not HydraConfig.initialized()


def test_a_config_without_its_run_folder_is_refused() -> None:
    """A config composed outside aelab.api whose run folder is still Hydra's: one clear error, nothing trained."""
    with pytest.raises(ConfigError, match="give run_dir"):
        api.train(compose_cfg(["data=digits"]))


@pytest.mark.slow
def test_the_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example's relative run folders land here
    code = re.search(r"```python\n(.*?)```", api.__doc__, re.DOTALL).group(1)
    exec(compile(code, "aelab.api example", "exec"), {})
    sweep = tmp_path / "outputs" / "api_example"
    assert [read_result(sweep / f"d{d}")["state"] for d in (2, 8)] == ["completed", "completed"]
    rows = (sweep / "report.csv").read_text().splitlines()[1:]
    assert [row.split(",")[:2] for row in rows] == [["ae", "2"], ["ae", "8"]]


@pytest.mark.slow
def test_two_trainings_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default run folders (the same second, the same variant), W&B offline twice; Hydra and logging left as found."""
    monkeypatch.chdir(tmp_path)
    handlers = list(logging.getLogger().handlers)
    overrides = [[*SHORT[:3], "eval=none", "callbacks.progress=null", f"model.latent_dim={d}"] for d in (2, 5)]
    runs = [api.train(o) for o in overrides]
    assert runs[0].run_dir != runs[1].run_dir and all(r.run_dir.is_relative_to(tmp_path / "outputs") for r in runs)
    for run, given, d in zip(runs, overrides, (2, 5)):
        record = read_result(run.run_dir)
        assert record == run.record and record["state"] == "completed" and record["overrides"] == given
        assert run.metrics == record["metrics"] and record["run"]["latent_dim"] == d
        x = api.open_run(run.run_dir).datamodule().whole("test")["x"][:3]
        assert not run.module.training and run.module.encode(x).shape == (3, d)
        wandb_dir = Path(record["wandb_dir"])
        assert wandb_dir.is_relative_to(run.run_dir) and wandb_dir.name.startswith("offline-run")
        assert (run.run_dir / ".hydra" / "overrides.yaml").is_file()
        assert "digits: 1222 train" in (run.run_dir / "train.log").read_text()
    assert not HydraConfig.initialized() and not GlobalHydra.instance().is_initialized()
    assert logging.getLogger().handlers == handlers


@pytest.mark.slow
def test_the_api_gives_the_command_lines_numbers(tmp_path: Path) -> None:
    out = run_cli("aelab-train", [*SHORT, f"hydra.run.dir={tmp_path / 'cli'}"])
    assert out.returncode == 0, out.stderr[-2000:]
    cli = read_result(tmp_path / "cli")
    trained = api.train(SHORT, run_dir=tmp_path / "api")
    assert trained.metrics == cli["metrics"] and trained.record["overrides"] == cli["overrides"] == SHORT
    best = trained.run_dir / "checkpoints" / "best.ckpt"
    evaluated = api.evaluate(best, ["eval=none"], run_dir=tmp_path / "eval")
    test = {k: v for k, v in trained.metrics.items() if k.startswith("test/")}
    assert evaluated["state"] == "completed" and evaluated["metrics"] == pytest.approx(test, rel=1e-6)
    assert evaluated["overrides"] == ["eval=none", f"ckpt_path={best}"]
    applied = api.apply(trained.run_dir, None, tmp_path / "samples", mode="sample", n=4)
    assert len(applied["written"]) == 4 and json.loads((tmp_path / "samples" / "apply.json").read_text()) == applied
