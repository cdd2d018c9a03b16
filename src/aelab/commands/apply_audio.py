"""`aelab-apply` on audio files: each restored (or reconstructed) whole, at its own rate and length.

A file is read by `audio_io.read_audio` (the reader training uses: mono as the mean of the channels), scaled to the
run's peak, resampled to the model's rate, processed in half-overlapping clips stitched back with a Hann window,
resampled back to its own rate and written as a mono WAV at its relative path (ending .wav); apply.json counts the
multi-channel files mixed to mono.

The band above the model's Nyquist (model rate / 2) of a file at a higher rate never reaches the model; `high_band`
says what the output holds there, in one log line recorded in apply.json:
  keep: the input's own content above it, `input - band_limited(input)`, added back to the output;
  drop: nothing (the output is low-passed by the round trip through the model's rate);
  auto: drop for task=denoise (a noisy high band put back is not denoising), keep for any other task.

`clean=<clean file or folder>` (matched by relative path, else by name with any audio ending) scores each file at
its own rate (the clean file resampled to it), SI-SDR and SNR against the clean original, for the input, the resample-only baseline (input ->
model rate -> back under the same `high_band` rule, no model) and the model's output; so a gain in apply.json
cannot come from resampling alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aelab.core.errors import ConfigError, DataError
from aelab.data.audio_io import Audio, audio_extensions, fit_length, read_audio, resample, with_high_band, write_audio
from aelab.data.base import counted

log = logging.getLogger(__name__)

HIGH_BAND = ("auto", "keep", "drop")
VERSIONS = ("input", "resample_only", "model")  # what apply.json scores against the reference


def keeps_high_band(setting: str, task: str) -> bool:
    """True when the input's band above the model's Nyquist goes back into the output (see the module docstring)."""
    if setting not in HIGH_BAND:
        raise ConfigError(f"high_band must be one of {', '.join(HIGH_BAND)}, got {setting!r}")
    return setting == "keep" or (setting == "auto" and task != "denoise")


def high_band_line(setting: str, task: str, rates: list[int], model_rate: int) -> str:
    """The one line that says what the output holds above the model's Nyquist, for the files' rates."""
    keep = keeps_high_band(setting, task)
    rule = f"high_band={'keep' if keep else 'drop'}" + (f" (auto for task={task})" if setting == "auto" else "")
    above = sorted({r for r in rates if r > model_rate})
    nyquist = f"{model_rate / 2:g} Hz"
    if not above:
        return f"{rule}: every file is at or below the model's {model_rate} Hz, so none has content above {nyquist}"
    what = (f"their content above {nyquist} (the model's Nyquist) is added back to the output (input minus its own "
            f"band-limited version)" if keep else
            f"the output is low-passed at {nyquist} (the model's Nyquist): their content above it is dropped")
    count = sum(r > model_rate for r in rates)
    return f"{rule}: {count} file(s) at {', '.join(f'{r} Hz' for r in above)} exceed the model's {model_rate} Hz; {what}"


def through_model_rate(audio: Audio, prep: dict, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`fn` applied to the file at the model's rate and level, then back at the file's own rate and length."""
    top = float(np.abs(audio.wave).max())
    scale = prep["peak"] / top if top > 0 else 1.0  # the level the run was trained at, undone afterwards
    at_model = resample(audio.wave * scale, audio.rate, prep["sample_rate"])
    return fit_length(resample(fn(at_model) / scale, prep["sample_rate"], audio.rate), len(audio.wave))


def reference_for(rel: Path, reference: Path) -> Path | None:
    """The clean file for an input at relative path `rel`: `reference` itself if a file, else the same relative
    path under it, else the same name with another audio ending; None when there is none."""
    if reference.is_file():
        return reference
    if (reference / rel).is_file():
        return reference / rel
    same = sorted(p for p in (reference / rel).parent.glob(f"{rel.stem}.*") if p.suffix.lower() in audio_extensions())
    return same[0] if same else None


def scores(versions: dict[str, np.ndarray], clean: np.ndarray) -> dict[str, dict[str, float]]:
    """SI-SDR and SNR (dB, the project's metric) of each version against `clean`, over their common length."""
    import torch

    from aelab.evals.restoration import quality

    n = min(len(clean), *(len(v) for v in versions.values()))
    target = torch.from_numpy(np.ascontiguousarray(clean[:n])).view(1, 1, n)
    return {k: quality(torch.from_numpy(np.ascontiguousarray(v[:n])).view(1, 1, n), target, "signal")
            for k, v in versions.items()}


def mean_scores(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The per-file scores averaged over the files, per version and metric."""
    return {v: {m: float(np.mean([f[v][m] for f in files.values()])) for m in ("si_sdr", "snr")} for v in VERSIONS}


def score_file(audio: Audio, rel: Path, reference: Path, prep: dict, output: np.ndarray, keep: bool) -> dict | None:
    """SI-SDR/SNR of the input, the resample-only baseline and the output against the file's clean reference
    (read at the file's rate); None (and a warning) when the reference has no such file."""
    clean_path = reference_for(rel, reference)
    if clean_path is None:
        log.warning("clean=%s holds no file for %s: not scored", reference, rel)
        return None
    clean = read_audio(clean_path, audio.rate).wave
    baseline = with_high_band(through_model_rate(audio, prep, lambda w: w), audio.wave, audio.rate,
                              prep["sample_rate"], keep)
    got = scores({"input": audio.wave, "resample_only": baseline, "model": output}, clean)
    log.info("%s (%d Hz) against %s: SI-SDR input %.2f dB, resample-only %.2f dB, model %.2f dB", rel, audio.rate,
             clean_path.name, got["input"]["si_sdr"], got["resample_only"]["si_sdr"], got["model"]["si_sdr"])
    return {"clean_file": str(clean_path), "rate": audio.rate, **got}


def restore_audio(model: Any, files: list[Path], root: Path, prep: dict, out: Path, size: int, high_band: str,
                  task: str, reference: Path | None = None) -> dict[str, Any]:
    """Each file restored whole (see the module docstring); what apply.json records: written, skipped, the
    high-band rule and its line, and with a reference the scores per file and on average."""
    from aelab.data.audio import overlap_add
    from aelab.data.inputs import skip
    from aelab.evals.base import batched

    keep = keeps_high_band(high_band, task)
    model_fn = lambda w: overlap_add(w, prep["clip_length"], lambda x: batched(model.reconstruct, x,  # noqa: E731
                                                                                 device=model.device, size=size))
    written, skipped, rates, mixed, scored = [], [], [], [], {}
    for f in files:
        try:
            audio = read_audio(f, None)  # (T,) at the file's own rate, mono
        except DataError as err:
            skip(skipped, str(err))
            continue
        rel = f.relative_to(root)
        output = with_high_band(through_model_rate(audio, prep, model_fn), audio.wave, audio.rate, prep["sample_rate"],
                                keep)
        written.append(str(write_audio((out / rel).with_suffix(".wav"), output, audio.rate).relative_to(out)))
        rates.append(audio.rate)
        mixed += [str(rel)] * (audio.channels > 1)
        got = score_file(audio, rel, reference, prep, output, keep) if reference is not None else None
        if got is not None:
            scored[str(rel)] = got
    if not written:
        raise DataError(f"none of the {len(files)} input file(s) could be read (see the lines above)")
    line = high_band_line(high_band, task, rates, prep["sample_rate"])
    log.info(line)
    if mixed:
        log.info("%d multi-channel file(s) mixed to mono (the mean of the channels; outputs are mono): %s", len(mixed),
                 ", ".join(mixed[:5]))
    record = {"written": written, "skipped": skipped, "mixed_to_mono": counted(mixed),
              "high_band": {"setting": high_band, "rule": "keep" if keep else "drop", "line": line}}
    if reference is not None:
        record["clean"] = {"path": str(reference), "files": scored, "mean": mean_scores(scored) if scored else None}
    return record
