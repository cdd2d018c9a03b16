"""The evaluator contract and the loop that runs a suite: metrics into result.json and the loggers, grids as PNGs.

An evaluator is built from `conf/eval/<name>.yaml` (`eval=[probe,anomaly]` picks several) and is called as
`evaluator(model, data, out_dir) -> Evaluation`. It touches the model only through its public API
(encode, decode, reconstruct, sample, interpolate, anomaly_score, iw_log_likelihood). `skip_reason` says why an
evaluator does not apply to a run (e.g. anomaly detection without anomaly labels); the reason becomes a note.
Each evaluator declares, in `higher_is_better`, the direction of every metric it emits (by the name between
`test/` and any `@level`); that declaration travels into result.json, and everything that ranks reads it there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
import torch

from aelab.data.base import InMemoryDataModule
from aelab.models.api import Autoencoder

log = logging.getLogger(__name__)

DENSITY_FIT_ON = 10000  # train codes the code density (model.density) is fitted on


@dataclass
class Evaluation:
    """What one evaluator returns."""

    metrics: dict[str, float] = field(default_factory=dict)  # "test/<name>" -> value
    images: dict[str, Path] = field(default_factory=dict)  # logger key -> PNG in the run folder
    audio: dict[str, Path] = field(default_factory=dict)  # logger key -> WAV in the run folder
    notes: list[str] = field(default_factory=list)  # what was skipped or approximated, in words
    higher_is_better: dict[str, bool | None] = field(default_factory=dict)  # "test/<name>" -> direction; None: not ranked


class Evaluator:
    """Base class: subclasses implement `__call__` and, when they do not always apply, `skip_reason`."""

    higher_is_better: dict[str, bool | None] = {}  # metric name (without `test/` and `@level`) -> direction; None: unranked

    def direction(self, metric: str) -> bool | None:
        """The declared direction of an emitted metric key such as `test/psnr_gain@0.5`."""
        name = metric.split("/", 1)[-1].split("@")[0]
        if name not in self.higher_is_better:
            raise KeyError(f"{type(self).__name__} emits {metric} without declaring its direction in higher_is_better")
        return self.higher_is_better[name]

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        return None

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        raise NotImplementedError


@torch.no_grad()
def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, device: torch.device, size: int = 1000) -> torch.Tensor:
    """fn applied to aligned chunks of `tensors` (moved to `device`), results concatenated on the CPU."""
    chunks = zip(*(t.split(size) for t in tensors))
    return torch.cat([fn(*(c.to(device) for c in chunk)).cpu() for chunk in chunks])


def split_codes(model: Autoencoder, data: InMemoryDataModule, stage: str, limit: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (N, d) of a split's model inputs and their labels (N,), the first `limit` examples."""
    batch = data.whole(stage) if limit is None else data.fixed_batch(stage, limit)
    return batched(model.encode, batch["x"], device=model.device), batch["y"]


def fit_code_density(model: Autoencoder, data: InMemoryDataModule, n: int = DENSITY_FIT_ON) -> None:
    """Fit the model's code density on the codes of the first `n` train examples."""
    model.fit_density(split_codes(model, data, "train", n)[0])


def run_suite(suite: Mapping[str, Any] | None, model: Autoencoder, data: InMemoryDataModule,
              out_dir: Path, trainer: pl.Trainer | None = None) -> Evaluation:
    """Build and run every evaluator of the `eval` config; log metrics and images to the trainer's loggers;
    return their metrics, directions and notes in one Evaluation."""
    from aelab.core.build import build
    from aelab.tracking.media import log_audio, log_image

    evaluators: dict[str, Evaluator] = {name: build(node) for name, node in (suite or {}).items()}
    total = Evaluation()
    model.eval()
    data.setup()
    for name, evaluator in evaluators.items():
        reason = evaluator.skip_reason(model, data)
        if reason:
            total.notes.append(f"eval.{name} skipped: {reason}")
            continue
        log.info("evaluating %s", name)
        result = evaluator(model, data, out_dir)
        total.metrics.update(result.metrics)
        total.higher_is_better.update({m: evaluator.direction(m) for m in result.metrics})
        total.notes.extend(f"eval.{name}: {note}" for note in result.notes)
        if trainer is not None:
            for key, path in result.images.items():
                log_image(trainer, key, path, caption=name)
            for key, path in result.audio.items():
                log_audio(trainer, key, path, caption=name)
    for note in total.notes:
        log.info("%s", note)
    if trainer is not None and total.metrics:
        for logger in trainer.loggers:
            logger.log_metrics(total.metrics, step=trainer.global_step)
    return total
