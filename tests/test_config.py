"""Every config on disk composes and resolves; config composition stays free of heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import CONF_DIR, ROOT, compose_cfg, run_cli

GROUPS = ["data", "model", "model/arch", "model/likelihood", "trainer", "logger", "callbacks", "debug", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]


@pytest.mark.parametrize(("group", "option"), ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_every_config_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    cfg = compose_cfg([f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["paths"]["output_dir"] == str(tmp_path)
    if group.startswith("model/"):
        assert resolved["model"][group.split("/")[1] if group == "model/arch" else "likelihood"] is not None
    assert resolved["model"]["in_shape"] == resolved["data"]["shape"]


def test_every_group_has_options() -> None:
    assert {"ae", "vae", "linear_ae"} <= set(options("model"))
    assert {"mlp", "conv"} <= set(options("model/arch"))
    assert {"fashion_mnist", "digits", "mnist", "cifar10"} <= set(options("data"))
    assert {"wandb", "csv", "tensorboard", "none"} <= set(options("logger"))


def test_eval_config_composes(tmp_path: Path) -> None:
    cfg = compose_cfg(["ckpt_path=/x.ckpt"], tmp_path, config_name="eval")
    assert cfg.ckpt_path == "/x.ckpt" and cfg.get("data") is None


def test_defaults_are_fashion_mnist_conv_ae_wandb(tmp_path: Path) -> None:
    cfg = compose_cfg([], tmp_path)
    assert (cfg.data.name, cfg.model.name, cfg.model.arch) == ("fashion_mnist", "ae", "conv")
    assert list(cfg.logger) == ["wandb"]


@pytest.mark.slow
def test_cfg_job_does_not_import_torch() -> None:
    """`aelab-train --cfg job` composes without importing torch, Lightning or W&B."""
    code = ("import sys; sys.argv = ['aelab-train', '--cfg', 'job', 'data=digits', 'model=vae']\n"
            "from aelab.commands.train import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'wandb') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "name: vae" in out.stdout
    assert "HEAVY []" in out.stdout


@pytest.mark.slow
def test_help_lists_groups() -> None:
    out = run_cli("aelab-train", ["--help"])
    assert out.returncode == 0
    listed = dict(line.strip().split(None, 1) for line in out.stdout.split("config groups:")[1].split("examples:")[0].splitlines()
                  if line.strip())
    for group in ("model", "model/arch", "data", "task", "eval"):
        assert listed[group].split(", ") == options(group)


@pytest.mark.slow
def test_help_of_apply_and_eval_lists_their_own_settings_and_groups() -> None:
    """aelab-apply composes apply.yaml (paths only): its settings, not the training groups; aelab-eval rebuilds the
    model from the checkpoint, so it offers data/eval/trainer/logger but no model."""
    def section(out: str, head: str) -> dict[str, str]:
        block = out.split(head)[1].split("\n\n")[0]
        return dict((line.strip().split(None, 1) + [""])[:2] for line in block.splitlines() if line.strip())

    apply = run_cli("aelab-apply", ["--help"]).stdout
    settings = section(apply, "settings (key=value):")
    assert {"ckpt_path=???", "input=null", "output=???", "mode=auto", "n=64"} <= set(settings)
    assert "reconstruct | restore" in settings["mode=auto"]
    assert list(section(apply, "config groups:")) == ["paths"]
    evaluate = run_cli("aelab-eval", ["--help"]).stdout
    assert set(section(evaluate, "config groups:")) == {"data", "eval", "trainer", "logger", "paths"}
    assert "ckpt_path=???" in section(evaluate, "settings (key=value):")
    assert "threshold_fpr=0.05" in section(run_cli("aelab-train", ["--help"]).stdout, "settings (key=value):")


@pytest.mark.slow
def test_help_imports_neither_hydra_nor_torch() -> None:
    code = ("import sys; sys.argv = ['aelab-train', '--help']\n"
            "from aelab.cli import train\ntrain()\n"
            "print('HEAVY', [m for m in ('torch', 'pytorch_lightning', 'wandb', 'hydra') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "config groups:" in out.stdout and "HEAVY []" in out.stdout


@pytest.mark.slow
def test_threads_caps_torch_and_the_blas_pools() -> None:
    """threads=1 must reach numpy's and scikit-learn's BLAS/OpenMP pools too, not only torch's."""
    code = ("import sklearn.mixture, torch; from threadpoolctl import threadpool_info; "
            "from aelab.tracking.runtime import limit_threads; limit_threads(1); "
            "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 [1]"
