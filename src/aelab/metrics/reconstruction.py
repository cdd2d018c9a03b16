"""Reconstruction quality metrics (torchmetrics), one collection per evaluation stage."""

from __future__ import annotations

from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure


def reconstruction_metrics(prefix: str, image: bool, data_range: float = 1.0) -> MetricCollection:
    """MSE (mean over all values), PSNR (mean of per-example PSNR) and, for images, SSIM."""
    metrics = {
        "mse": MeanSquaredError(),
        "psnr": PeakSignalNoiseRatio(data_range=data_range, dim=tuple(range(1, 4 if image else 2)), reduction="elementwise_mean"),
    }
    if image:
        metrics["ssim"] = StructuralSimilarityIndexMeasure(data_range=data_range)
    return MetricCollection(metrics, prefix=prefix)
