"""Restoration (denoise, colorize): the output against the clean target, beside the model's input against it.

`test/psnr_input` is the corrupted (or grayscale) input's PSNR against the clean target, `test/psnr_output` the
model's, `test/psnr_gain` their difference (dB); the same for SSIM on images, and for audio clips SNR and SI-SDR
(`test/si_sdr_gain`). For a denoising task each of `task.levels` is measured too (`test/psnr_gain@0.5`), with test
noise drawn once from a fixed seed. Audio runs also write `n_audio` test clips (noisy, restored, clean) as WAV files
into `restoration_audio/` and log them to W&B. Audio is measured at the data's `sample_rate`, where input and
target were resampled alike when read: a resample-only baseline here is the input itself (`test/si_sdr_input`);
the baseline that separates resampling from the model is apply's (`aelab-apply clean=...`, at the files' own rates).
"""

from __future__ import annotations

from pathlib import Path

import torch

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.metrics.reconstruction import data_kind, reconstruction_metrics
from aelab.models.api import Autoencoder

METRICS = ("psnr", "ssim", "snr", "si_sdr")


def quality(pred: torch.Tensor, target: torch.Tensor, kind: str) -> dict[str, float]:
    """The quality metrics of the data's kind (PSNR, SSIM; SNR, SI-SDR) of predictions against targets, in chunks."""
    metrics = reconstruction_metrics("", kind)
    for p, t in zip(pred.split(1000), target.split(1000)):
        metrics.update(p, t)
    return {k: float(v) for k, v in metrics.compute().items() if k != "mse"}


def gains(inputs: torch.Tensor, outputs: torch.Tensor, target: torch.Tensor, kind: str, suffix: str = "") -> dict[str, float]:
    """`test/<metric>_input|_output|_gain<suffix>` for every quality metric; image outputs clipped to [0, 1]."""
    before, after = quality(inputs, target, kind), quality(outputs.clamp(0, 1) if kind == "image" else outputs, target, kind)
    out = {}
    for name in before:
        out |= {f"test/{name}_input{suffix}": before[name], f"test/{name}_output{suffix}": after[name],
                f"test/{name}_gain{suffix}": after[name] - before[name]}
    return out


class Restoration(Evaluator):
    """Quality gain of the model's output over its input, at the task's level and each of `task.levels`."""

    higher_is_better = {f"{m}_{part}": True for m in METRICS for part in ("input", "output", "gain")}

    def __init__(self, n_audio: int = 4) -> None:
        self.n_audio = n_audio

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        return f"the task's input is its target (task={data.task.name})" if data.task.identity else None

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.whole("test")
        kind = data_kind(test["target"].shape[1:])
        restore = lambda x: batched(model.reconstruct, x, device=model.device)  # noqa: E731
        restored = restore(test["x"])
        metrics = gains(test["x"], restored, test["target"], kind)
        for level in data.task.levels:
            noisy = data.task.at_level(level).fixed_inputs(test["target"], data.split_seed)
            metrics |= gains(noisy, restore(noisy), test["target"], kind, suffix=f"@{level:g}")
        audio = self.write_audio(test, restored, data, out_dir) if kind == "signal" else {}
        return Evaluation(metrics=metrics, audio=audio)

    def write_audio(self, test: dict, restored: torch.Tensor, data: InMemoryDataModule, out_dir: Path) -> dict[str, Path]:
        """The first `n_audio` test clips as `restoration_audio/clip<k>_{noisy,restored,clean}.wav`; logger key -> file."""
        from aelab.data.audio_io import write_audio

        files = {}
        for k in range(min(self.n_audio, len(restored))):
            for part, clip in (("noisy", test["x"][k]), ("restored", restored[k]), ("clean", test["target"][k])):
                files[f"test/audio_clip{k}_{part}"] = write_audio(out_dir / "restoration_audio" / f"clip{k}_{part}.wav",
                                                                  clip, data.sample_rate)
        return files
