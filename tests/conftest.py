"""Shared helpers: compose the real configs from conf/ and run the real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from aelab import CONF_DIR

ROOT = Path(CONF_DIR).parent
BIN = Path(sys.executable).parent
FAST = ["data=digits", "callbacks.progress=null"]


def compose_cfg(overrides: list[str], output_dir: Path | None = None, config_name: str = "train") -> DictConfig:
    """Compose conf/<config_name>.yaml with overrides, the run folder set to `output_dir`."""
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=[*overrides, *extra])


def run_cli(command: str, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a console script of this venv (aelab-train, aelab-eval, wandb) and capture its output."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([str(BIN / command), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs never reach for the network."""
    monkeypatch.setenv("WANDB_MODE", "offline")
