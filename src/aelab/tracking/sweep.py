"""End of a multirun: a table of every job's state from the run folders, and a non-zero exit if any failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from aelab.tracking.run import read_record

log = logging.getLogger(__name__)


def job_records(sweep_dir: Path) -> list[tuple[Path, dict]]:
    """(run folder, result.json) for every job folder under a sweep folder, in job order."""
    found = [(p.parent, read_record(p)) for p in sweep_dir.glob("*/result.json")]
    return sorted(found, key=lambda item: (len(item[0].name), item[0].name))


def dashboard_commands(sweep_dir: Path) -> list[str]:
    """How to look at a sweep's W&B runs locally (one dashboard) and upload all of them; [] without W&B runs."""
    if not (sweep_dir / "wandb").is_dir():
        return []
    return [f"look at the sweep locally:  wandb leet {sweep_dir / 'wandb'}",
            f"upload all of its runs:     wandb sync {sweep_dir}/*/wandb/*run-*"]


class SweepSummary(Callback):
    """Hydra callback: prints the sweep's table of jobs (state, attempts: starts incl. requeues and resumes); exits with status 1 when a job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)  # Optuna's sqlite file lives there

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rich.table import Table

        from aelab.tracking.console import make_console

        sweep_dir = Path(config.hydra.sweep.dir)
        records = job_records(sweep_dir)
        table = Table(title=f"sweep {sweep_dir}")
        for column in ("job", "state", "attempts", "overrides", "error"):
            table.add_column(column, overflow="fold")
        for folder, record in records:
            table.add_row(folder.name, record["state"], str(record.get("attempts", "")), " ".join(record.get("overrides", [])),
                          record.get("error", ""))
        console = make_console()
        console.print(table)
        for line in dashboard_commands(sweep_dir):
            console.print(line, soft_wrap=True)
        failed = [folder.name for folder, record in records if record["state"] not in ("completed", "pruned")]
        if failed:
            log.error("%d of %d jobs did not complete: %s", len(failed), len(records), ", ".join(failed))
            raise SystemExit(1)
