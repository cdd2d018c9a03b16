"""The evaluator contract and the loop that runs a suite: metrics into result.json and the loggers, grids as PNGs.

An evaluator is built from `conf/eval/<name>.yaml` (`eval=[probe,anomaly]` picks several) and is called as
`evaluator(model, data, out_dir) -> Evaluation`. It touches the model only through its public API
(encode, decode, reconstruct, sample, interpolate, anomaly_score, iw_log_likelihood). `skip_reason` says why an
evaluator does not apply to a run (e.g. anomaly detection without anomaly labels); the reason becomes a note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
import torch

from aelab.data.base import InMemoryDataModule

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What one evaluator returns."""

    metrics: dict[str, float] = field(default_factory=dict)  # "test/<name>" -> value
    images: dict[str, Path] = field(default_factory=dict)  # logger key -> PNG in the run folder
    notes: list[str] = field(default_factory=list)  # what was skipped or approximated, in words


class Evaluator:
    """Base class: subclasses implement `__call__` and, when they do not always apply, `skip_reason`."""

    def skip_reason(self, model: pl.LightningModule, data: InMemoryDataModule) -> str | None:
        return None

    def __call__(self, model: pl.LightningModule, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        raise NotImplementedError


@torch.no_grad()
def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, device: torch.device, size: int = 1000) -> torch.Tensor:
    """fn applied to aligned chunks of `tensors` (moved to `device`), results concatenated on the CPU."""
    chunks = zip(*(t.split(size) for t in tensors))
    return torch.cat([fn(*(c.to(device) for c in chunk)).cpu() for chunk in chunks])


def split_codes(model: pl.LightningModule, data: InMemoryDataModule, stage: str, limit: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (N, d) of a split's model inputs and their labels (N,), the first `limit` examples."""
    n = len(data.split(stage)) if limit is None else min(limit, len(data.split(stage)))
    batch = data.fixed_batch(stage, n)
    return batched(model.encode, batch["x"], device=model.device), batch["y"]


def run_suite(suite: Mapping[str, Any] | None, model: pl.LightningModule, data: InMemoryDataModule,
              out_dir: Path, trainer: pl.Trainer | None = None) -> tuple[dict[str, float], list[str]]:
    """Build and run every evaluator of the `eval` config; log metrics and images to the trainer's loggers;
    return metrics and notes."""
    from aelab.build import build
    from aelab.callbacks.logging import log_image

    evaluators: dict[str, Evaluator] = {name: build(node) for name, node in (suite or {}).items()}

    metrics: dict[str, float] = {}
    notes: list[str] = []
    model.eval()
    data.setup()
    for name, evaluator in evaluators.items():
        reason = evaluator.skip_reason(model, data)
        if reason:
            notes.append(f"eval.{name} skipped: {reason}")
            continue
        log.info("evaluating %s", name)
        result = evaluator(model, data, out_dir)
        metrics.update(result.metrics)
        notes.extend(f"eval.{name}: {note}" for note in result.notes)
        for key, path in result.images.items():
            if trainer is not None:
                log_image(trainer, key, path, caption=name)
    for note in notes:
        log.info("%s", note)
    if trainer is not None and metrics:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
    return metrics, notes
