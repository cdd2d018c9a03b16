"""Reconstruction quality metrics (torchmetrics), one collection per evaluation stage and kind of data."""

from __future__ import annotations

from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.audio import ScaleInvariantSignalDistortionRatio, SignalNoiseRatio
from torchmetrics.image import PeakSignalNoiseRatio

from aelab.metrics.ssim import SSIM


def data_kind(shape: list[int] | tuple[int, ...]) -> str:
    """`image` for (C, H, W), `signal` for (C, L) (audio clips), `vector` for (D,) (table rows)."""
    return {3: "image", 2: "signal"}.get(len(shape), "vector")


COSTLY = ("ssim",)  # Gaussian windows: still the costliest metric, so val computes it in the last epoch only


def reconstruction_metrics(prefix: str, kind: str, data_range: float = 1.0) -> MetricCollection:
    """MSE (mean over all values) and, by kind: PSNR (mean of per-example PSNR) for images and vectors, SSIM for
    images, SNR and SI-SDR (dB, mean over examples; Le Roux et al. 2019) for signals."""
    metrics = {"mse": MeanSquaredError()}
    if kind == "signal":
        metrics |= {"snr": SignalNoiseRatio(), "si_sdr": ScaleInvariantSignalDistortionRatio()}
    else:
        dims = tuple(range(1, 4 if kind == "image" else 2))
        metrics["psnr"] = PeakSignalNoiseRatio(data_range=data_range, dim=dims, reduction="elementwise_mean")
    if kind == "image":
        metrics["ssim"] = SSIM(data_range=data_range)
    return MetricCollection(metrics, prefix=prefix)
