"""Anomaly detection: score every test example by the model's anomaly score; AUROC and AUPRC against the labels.

The score is -log p(target|z) (the reconstruction error under the model's likelihood), plus the KL for Gaussian
bottlenecks (then it is -ELBO). Anomalies are the test examples outside `data.normal_classes` (task=one_class).
AUPRC is the average precision with the anomalies as the positive class.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched


def detection_metrics(scores: torch.Tensor, is_anomaly: torch.Tensor) -> dict[str, float]:
    """AUROC and AUPRC of scores (N,) (higher = more anomalous) for boolean labels (N,)."""
    s = scores.double()
    # min-max into [0, 1] (order kept): torchmetrics would otherwise read the scores as logits and squash them
    s = (s - s.min()) / (s.max() - s.min()).clamp_min(torch.finfo(s.dtype).tiny)
    target = is_anomaly.long()
    return {"auroc": float(binary_auroc(s, target)), "auprc": float(binary_average_precision(s, target))}


class AnomalyDetection(Evaluator):
    """`test/auroc`, `test/auprc` and `test/anomaly_rate` (the AUPRC of a random scorer)."""

    def skip_reason(self, model: pl.LightningModule, data: InMemoryDataModule) -> str | None:
        return None if data.normal_classes is not None else "no anomaly labels (set task=one_class or data.normal_classes)"

    def __call__(self, model: pl.LightningModule, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.fixed_batch("test", len(data.split("test")))
        torch.manual_seed(0)  # the score of a stochastic bottleneck uses one posterior sample
        scores = batched(model.anomaly_score, test["x"], test["target"], device=model.device)
        labels = data.is_anomaly(test["y"])
        metrics = {f"test/{k}": v for k, v in detection_metrics(scores, labels).items()}
        metrics["test/anomaly_rate"] = float(labels.float().mean())
        return Evaluation(metrics=metrics)
