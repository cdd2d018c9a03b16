"""Shared helpers: compose the real configs from conf/ and run the real entry points."""

from __future__ import annotations

import inspect
import json
import os
import re
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


def wandb_summary(run: Path) -> dict:
    """The run's offline W&B log read back by `wandb leet inspect --summary --json`."""
    wandb_dir = Path(read_result(run)["wandb_dir"])
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(wandb_dir)])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs never reach for the network."""
    monkeypatch.setenv("WANDB_MODE", "offline")


HEAVY = re.compile(r"run_cli\(|cli_run\(|(?<![.\w])train\(|subprocess\.|(?<![.\w])sweep\(")


def _heavy(func: object) -> bool:
    try:
        return bool(HEAVY.search(inspect.getsource(func)))
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that (itself or through a fixture) starts a CLI process or a training run:
    `make test-fast` (-m "not slow") keeps the units, closed forms and the contract suite."""
    for item in items:
        fixtures = [d.func for defs in getattr(item, "_fixtureinfo").name2fixturedefs.values() for d in defs]
        if any(_heavy(f) for f in [getattr(item, "function", None), *fixtures] if f is not None):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The bad-input battery's time from launch to a config error (target under 5 s: reported, not asserted)."""
    times = getattr(sys.modules.get("test_battery"), "SECONDS_TO_ERROR", {})
    if times:
        terminalreporter.write_line("seconds from launch to the config error (target < 5 s): "
                                    + ", ".join(f"{case} {t:.1f}" for case, t in sorted(times.items())))
