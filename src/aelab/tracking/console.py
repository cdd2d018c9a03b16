"""What the commands print: library warnings that do not apply silenced, and the end-of-run rich table of final
metrics with how to look at the run."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

QUIET = (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*",
         ".*overridden `on_after_batch_transfer`.*")


def quiet_libraries() -> None:
    """Silence warnings that do not apply to in-memory data on CPU, and Lightning's advertising tips."""
    for pattern in QUIET:
        warnings.filterwarnings("ignore", pattern)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


def make_console() -> Console:
    """A console as wide as the terminal, or 160 columns when the output is a file or a pipe."""
    return Console(width=None if Console().is_terminal else 160)


def print_result(title: str, result: dict, run_folder: Path, wandb_dir: Path | None) -> None:
    console = make_console()
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(result["metrics"].items()):
        table.add_row(key, f"{value:.5g}")
    console.print(table)
    console.print(f"state: {result['state']}   wall time: {result['wall_time_s']:.1f} s   run folder: {run_folder}", soft_wrap=True)
    if wandb_dir is not None:
        console.print(f"look at it locally:  wandb leet {wandb_dir.parent}", soft_wrap=True)
        if wandb_dir.name.startswith("offline-run"):
            console.print(f"upload it to W&B:    wandb sync {wandb_dir}", soft_wrap=True)
