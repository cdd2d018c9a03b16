"""A light core: the core install trains, sweeps and reports with every extra's packages missing, and each extra's
feature, asked for without it, fails with one line naming the pip command (aelab.core.extras)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aelab.core.build import build
from aelab.core.extras import EXTRA_OF, MissingExtraError
from helpers import FAST, ROOT, compose_cfg, read_result, run_cli

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What the core install may bring: training, logging, joblib and SLURM sweeps, the report. A package added to
# pyproject's `dependencies` that is not here fails the test: put it in an extra (or argue for it here).
CORE = {"torch", "torchvision", "pytorch-lightning", "hydra-core", "omegaconf", "wandb", "torchmetrics", "scikit-learn",
        "threadpoolctl", "matplotlib", "rich", "numpy", "scipy", "pillow", "pyyaml", "hydra-joblib-launcher",
        "hydra-submitit-launcher"}
EXTRAS = ("audio", "restoration", "optuna", "export", "explore", "fid")
# every module an extra brings (and optuna's own dependencies): missing while the core is tested
BLOCKED = (*EXTRA_OF, "sqlalchemy", "alembic")
SHORT = [*FAST, "model/arch=mlp", "trainer.max_epochs=1", "logger=none", "eval=none", "callbacks.embeddings.n=50"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def expected(extra: str, feature: str) -> str:
    return f"{feature} needs the {extra} extra: pip install 'aelab[{extra}]'"


def one_line(extra: str, feature: str) -> str:
    """pytest.raises(match=...) for the one line naming `extra` (then which module is missing)."""
    return "^" + re.escape(expected(extra, feature)) + r" \(\S+ is not installed\)$"


def block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every module of an extra (and its loaded submodules) unimportable in this process, as if not installed.
    Lightning and torchmetrics are imported first: they read which optional packages are installed once, from the
    package metadata, and keep it for the session."""
    import pytorch_lightning  # noqa: F401
    import torchmetrics  # noqa: F401

    for name in [*BLOCKED, *(m for m in sys.modules if m.split(".")[0] in BLOCKED)]:
        monkeypatch.setitem(sys.modules, name, None)


SITECUSTOMIZE = """import importlib.metadata as metadata
import re
import subprocess
import sys

sys.modules.update(dict.fromkeys({blocked!r}))
from_name = metadata.Distribution.from_name.__func__


def hidden(cls, name):
    if re.sub(r"[-_.]+", "-", name).lower() in {hidden!r}:
        raise metadata.PackageNotFoundError(name)
    return from_name(cls, name)


metadata.Distribution.from_name = classmethod(hidden)
"""


def sitecustomize(folder: Path) -> dict[str, str]:
    """The environment of a CLI process (and of the processes it starts) in which the extras are missing: their
    modules cannot be imported and their package metadata is not found (what Lightning and torchmetrics ask)."""
    folder.mkdir(parents=True, exist_ok=True)
    packages = {n for e in EXTRAS for n in names(PROJECT["optional-dependencies"][e])}
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=BLOCKED, hidden=packages))
    return {"PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.fixture
def no_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    block(monkeypatch)


@pytest.fixture(scope="module")
def core_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training run, in this process, with every extra missing."""
    from aelab.commands.train import train

    folder = tmp_path_factory.mktemp("core") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        block(monkeypatch)
        train(compose_cfg(SHORT, folder))
    return folder


def test_the_core_dependencies_are_the_allow_list() -> None:
    assert names(PROJECT["dependencies"]) == CORE


def test_every_extra_is_declared_and_dev_installs_them_all() -> None:
    optional = PROJECT["optional-dependencies"]
    assert set(EXTRA_OF.values()) <= set(EXTRAS) <= set(optional)
    assert names(optional["all"]) == {"aelab"} and {e for r in optional["all"] for e in Requirement(r).extras} == set(EXTRAS)
    assert [Requirement(r).extras for r in optional["dev"] if Requirement(r).name == "aelab"] == [{"all"}]
    assert not names(PROJECT["dependencies"]) & {n for e in EXTRAS for n in names(optional[e])}


def test_requirements_lock_pins_every_declared_package_within_its_range() -> None:
    pins = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                if line and not line.startswith("#"))
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    declared = [Requirement(r) for r in PROJECT["dependencies"] + sum(PROJECT["optional-dependencies"].values(), [])]
    for req in declared:
        if req.name != "aelab":
            assert req.specifier.contains(pins.get(canonicalize_name(req.name), "0"), prereleases=True), str(req)
    assert "-c requirements.lock -e '.[dev]'" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_training_and_the_report_need_no_extra(core_run: Path, no_extras: None) -> None:
    from aelab.reporting.report import report

    assert read_result(core_run)["state"] == "completed"
    written = report(core_run.parent)
    assert written["md"].is_file() and "ae" in written["md"].read_text()


@pytest.mark.slow
def test_a_joblib_sweep_needs_no_extra(tmp_path: Path) -> None:
    env = sitecustomize(tmp_path / "site")
    probe = "import importlib.metadata as m\ntry:\n    import soundfile\nexcept ImportError:\n    print(m.version('soundfile'))"
    blocked = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, **env})
    assert "PackageNotFoundError: No package metadata was found for soundfile" in blocked.stderr  # the blocker works: neither module nor metadata
    out = run_cli("aelab-train", ["-m", *SHORT, "hydra/launcher=joblib", "seed=0", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                  env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_result(tmp_path / "sweep" / "0")["state"] == "completed"  # trained in a joblib (loky) worker


@pytest.mark.parametrize(("overrides", "extra", "feature"), [
    (["data=audio_folder", "data.path=."], "audio", "data=audio_folder"),
    (["data=speech"], "audio", "data=speech"),
    (["data=photo_patches", "data.photos=[china,astronaut]"], "restoration", "data=photo_patches photo 'astronaut'"),
])
def test_data_of_an_extra_names_it(overrides: list[str], extra: str, feature: str, no_extras: None) -> None:
    cfg = compose_cfg(overrides)
    with pytest.raises(MissingExtraError, match=one_line(extra, feature)):
        build(cfg.data, task=build(cfg.task), seed=0)


@pytest.mark.parametrize(("method", "extra"), [("nl_means", "restoration"), ("tv", "restoration"),
                                               ("spectral_gate", "audio")])
def test_a_classical_denoiser_names_its_extra(method: str, extra: str, no_extras: None) -> None:
    cfg = compose_cfg(["data=digits", "model=baseline/denoiser", f"model.method={method}", "data.shape=[1,8,8]"])
    with pytest.raises(MissingExtraError, match=one_line(extra, f"model=baseline/denoiser model.method={method}")):
        build(cfg.model)


def test_the_bundled_photos_of_scikit_learn_need_no_extra(no_extras: None) -> None:
    cfg = compose_cfg(["data=photo_patches"])  # china, flower
    assert build(cfg.data, task=build(cfg.task), seed=0).photos == ["china", "flower"]


@pytest.mark.slow
def test_export_and_the_explorer_name_their_extras(core_run: Path, no_extras: None, tmp_path: Path) -> None:
    from aelab.commands.apply import apply
    from aelab.explore.app import main as explore

    cfg = compose_cfg([f"ckpt_path={core_run / 'checkpoints' / 'best.ckpt'}", f"output={tmp_path / 'out'}",
                       "mode=export"], config_name="apply")
    with pytest.raises(MissingExtraError, match=one_line("export", "aelab-apply mode=export")):
        apply(cfg)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as stop:
        explore([str(core_run), "--port", "0"])
    assert str(stop.value).startswith("aelab-explore: error: " + expected("explore", "aelab-explore"))


def test_inception_fid_is_skipped_with_its_extra_named(no_extras: None) -> None:
    import torch

    from aelab.evals.generation import inception_fid

    value, note = inception_fid(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8))
    assert value is None and "pip install 'aelab[fid]'" in note


@pytest.mark.slow
@pytest.mark.parametrize("args", [["hparams_search=optuna_fmnist"], ["hydra/sweeper=optuna", *FAST]])
def test_the_optuna_sweeper_names_its_extra(args: list[str], tmp_path: Path) -> None:
    out = run_cli("aelab-train", ["-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                  env=sitecustomize(tmp_path / "site"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr[-3000:]
    assert re.match(one_line("optuna", "hydra/sweeper=optuna").replace("^", "^error: ", 1), lines[0]), lines

