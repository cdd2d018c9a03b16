"""aelab as a library: a wheel built from this checkout, installed into a fresh virtualenv, run from another folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import ROOT, make_project


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**clean, "WANDB_MODE": "offline", **(env or {})})


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the aelab wheel; the project venv's packages (torch, ...) are visible through a
    .pth line, which does not run the project venv's editable-install hook, so `aelab` can only come from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT)], cwd=tmp)
    assert built.returncode == 0, built.stderr[-2000:]
    venv = tmp / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp).returncode == 0
    site = Path(run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp).stdout.strip())
    (site / "project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "dist").glob("aelab-*.whl"))
    installed = run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
                     str(wheel)], cwd=tmp)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


def test_wheel_carries_the_configs_and_trains_from_another_folder(wheel_venv: Path, tmp_path: Path) -> None:
    where = run([str(wheel_venv / "bin" / "python"), "-c", "import aelab; print(aelab.__file__, aelab.CONF_DIR)"], tmp_path)
    module, conf = where.stdout.split()
    assert module.startswith(str(wheel_venv)) and conf.startswith(str(wheel_venv)), where.stdout + where.stderr
    assert (Path(conf) / "experiment" / "paper" / "compression.yaml").is_file()
    out = run([str(wheel_venv / "bin" / "aelab-train"), "data=digits", "model/arch=mlp", "trainer.max_epochs=1",
               "logger=none", "callbacks.progress=null", "hydra.run.dir=run"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["state"] == "completed"


def test_bundled_table_is_found_from_another_folder(wheel_venv: Path, tmp_path: Path) -> None:
    out = run([str(wheel_venv / "bin" / "aelab-train"), "experiment=breast_cancer_anomaly", "trainer.max_epochs=2",
               "logger=none", "callbacks.progress=null", "hydra.run.dir=run"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "data" / "breast_cancer.csv").is_file()
    assert "test/auroc" in json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]


def test_a_users_variants_train_and_pass_the_check_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path / "my_project")
    (project / "conf" / "model" / "broken_vae.yaml").write_text("defaults: [vae, _self_]\nname: broken_vae\n"
                                                                 "loss_weights: {klx: 1.0}\n")
    search = f"hydra.searchpath=[file://{project}/conf]"
    for variant in ("half_kl_vae", "noisy_ae"):  # YAML only; YAML + the user's own bottleneck class
        out = run([str(wheel_venv / "bin" / "aelab-train"), search, f"model={variant}", "data=digits", "model/arch=mlp",
                   "trainer.max_epochs=1", "logger=none", "eval=none", "callbacks.progress=null", f"hydra.run.dir=run_{variant}"],
                  cwd=project)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads((project / f"run_{variant}" / "result.json").read_text())["run"]["model"] == variant
        checked = run([str(wheel_venv / "bin" / "aelab-check"), search, f"model={variant}"], cwd=project)
        assert checked.returncode == 0 and checked.stdout.count("PASS") == 4, checked.stdout + checked.stderr[-2000:]
    broken = run([str(wheel_venv / "bin" / "aelab-check"), search, "model=broken_vae"], cwd=project)
    assert broken.returncode == 1 and broken.stdout.strip().count("\n") == 0 and "FAIL builds" in broken.stdout
