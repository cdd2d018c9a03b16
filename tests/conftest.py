"""pytest's hooks and fixtures for every test (the helpers the tests import are in helpers.py)."""

from __future__ import annotations

import inspect
import re
import sys

import pytest


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs never reach for the network; no test inherits the W&B service an earlier in-process run
    started (WANDB_SERVICE): a CLI process attached to it would share its runs, and a killed sweep's run would stay
    open there, so its resume would fail."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


HEAVY = re.compile(r"run_cli\(|fails_cleanly\(|(?<![.\w])train\(|subprocess\.|(?<![.\w])sweep\(")


def _heavy(func: object) -> bool:
    try:
        return bool(HEAVY.search(inspect.getsource(func)))
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that (itself or through a fixture) starts a CLI process or a training run must be marked `slow` where
    it is written (`@pytest.mark.slow`, or `pytestmark` for a whole file): `make test-fast` (-m "not slow") keeps
    the units, closed forms and the contract suite. An unmarked one stops the collection, named."""
    unmarked = []
    for item in items:
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        heavy = any(_heavy(f) for f in [getattr(item, "function", None), *fixtures] if f is not None)
        if heavy and item.get_closest_marker("slow") is None:
            unmarked.append(item.nodeid)
    if unmarked:
        raise pytest.UsageError("start a CLI process or a training run but are not marked @pytest.mark.slow: "
                                + ", ".join(sorted(unmarked)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Times measured, reported and not asserted: the SLURM tests' (sweep wall time, requeue to resumed training) and
    the bad-input battery's from launch to a config error (target under 5 s)."""
    slurm = getattr(sys.modules.get("test_slurm"), "SECONDS", {})
    if slurm:
        terminalreporter.write_line("SLURM, seconds: " + ", ".join(f"{what} {t:.1f}" for what, t in sorted(slurm.items())))
    times = getattr(sys.modules.get("test_bad_input"), "SECONDS_TO_ERROR", {})
    if times:
        terminalreporter.write_line("seconds from launch to the config error (target < 5 s): "
                                    + ", ".join(f"{case} {t:.1f}" for case, t in sorted(times.items())))
