"""The baseline contract: a scikit-learn model behind the part of the module API that the evaluators use.

A baseline is chosen like a variant (`model=baseline/pca`), fitted on the train split instead of trained by
Lightning, and scored by the same test metrics and evaluators, so its run folder, result.json and report row
look like a trained model's. `encode` flattens the input by default: a baseline on raw pixels has the pixels as
its code, so the probe evaluator on it is a probe on raw pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from aelab.metrics.reconstruction import data_kind, reconstruction_metrics


class Baseline(nn.Module):
    """Subclasses implement `fit(x, target)` on the flattened train split's inputs and clean targets (N, D) as numpy,
    and what they answer."""

    has_prior = False
    reconstructs = False  # True: test mse/psnr/ssim of `reconstruct` are recorded
    density = None

    def __init__(self, name: str, latent_dim: int, in_shape: list[int], arch: str = "none", **training: Any) -> None:
        """`training`: what a sweep sets for the trained rows of its table (model.scheduler, ...); nothing to train here."""
        super().__init__()
        self.name, self.arch, self.latent_dim, self.in_shape = name, arch, latent_dim, list(in_shape)
        self.register_buffer("anchor", torch.zeros(0), persistent=False)  # gives the module a device

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # (B, *shape) -> (B, D)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} does not reconstruct")

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def test_metrics(self, x: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, float], dict[str, bool]]:
        """`test/mse`, `test/psnr`, `test/ssim` of the reconstructions, with the direction each metric declares."""
        if not self.reconstructs:
            return {}, {}
        metrics = reconstruction_metrics("test/", data_kind(self.in_shape))
        for xs, ts in zip(x.split(1000), target.split(1000)):
            metrics.update(self.reconstruct(xs), ts)
        values = {k: float(v) for k, v in metrics.compute().items()}
        return values, {k: bool(metrics[k].higher_is_better) for k in values}


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().flatten(1).double().numpy()  # (N, *shape) -> (N, D)
