"""Restoration (denoise, colorize): the output against the clean target, beside the model's input against it.

`test/psnr_input` is the corrupted (or grayscale) input's PSNR against the clean target, `test/psnr_output` the
model's, `test/psnr_gain` their difference (dB); the same for SSIM. For a denoising task each of
`task.levels` is measured too (`test/psnr_gain@0.5`), with test noise drawn once from a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.metrics.reconstruction import reconstruction_metrics


def quality(pred: torch.Tensor, target: torch.Tensor, image: bool) -> dict[str, float]:
    """PSNR (and SSIM for images) of predictions against targets, in chunks."""
    metrics = reconstruction_metrics("", image=image)
    for p, t in zip(pred.split(1000), target.split(1000)):
        metrics.update(p, t)
    return {k: float(v) for k, v in metrics.compute().items() if k != "mse"}


def gains(inputs: torch.Tensor, outputs: torch.Tensor, target: torch.Tensor, image: bool, suffix: str = "") -> dict[str, float]:
    """`test/<metric>_input|_output|_gain<suffix>` for every quality metric."""
    before, after = quality(inputs, target, image), quality(outputs.clamp(0, 1), target, image)
    out = {}
    for name in before:
        out |= {f"test/{name}_input{suffix}": before[name], f"test/{name}_output{suffix}": after[name],
                f"test/{name}_gain{suffix}": after[name] - before[name]}
    return out


class Restoration(Evaluator):
    """Quality gain of the model's output over its input, at the task's level and each of `task.levels`."""

    higher_is_better = {f"{m}_{part}": True for m in ("psnr", "ssim") for part in ("input", "output", "gain")}

    def skip_reason(self, model: pl.LightningModule, data: InMemoryDataModule) -> str | None:
        return f"the task's input is its target (task={data.task.name})" if data.task.identity else None

    def __call__(self, model: pl.LightningModule, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.fixed_batch("test", len(data.split("test")))
        image = test["target"].ndim == 4
        restore = lambda x: batched(model.reconstruct, x, device=model.device)  # noqa: E731
        metrics = gains(test["x"], restore(test["x"]), test["target"], image)
        for level in data.task.levels:
            noisy = data.task.at_level(level).fixed_inputs(test["target"], data.split_seed)
            metrics |= gains(noisy, restore(noisy), test["target"], image, suffix=f"@{level:g}")
        return Evaluation(metrics=metrics)
