"""Audio files in and out: the one list of audio file endings, the one reading function, resampling, the band split.

Training (`data=audio_folder`) and `aelab-apply` both read through `read_audio`, so they accept the same files:
every format the installed libsndfile reads (`soundfile.available_formats()`: WAV 16/24/32-bit and float, FLAC,
Ogg Vorbis named .ogg or .oga, Opus when libsndfile has it, AIFF, CAF, MP3, ...), mapped to their file endings by
`FORMAT_ENDINGS`. Left out on purpose: RAW (no header: rate and channels unknown) and endings other files share
(.mat, .iff, .sf, .mpc), which would stop a run on a file that was never audio.

Channels: the models take one channel, so a multi-channel file is mixed to mono as the mean of its channels (a
model that took channels would need a rule per channel layout instead; none does).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch

from aelab.core.errors import DataError
from aelab.core.extras import require

# libsndfile format -> the endings its files carry (WAVEX files are .wav too)
FORMAT_ENDINGS = {
    "WAV": (".wav",), "WAVEX": (".wav",), "W64": (".w64",), "RF64": (".rf64",), "FLAC": (".flac",),
    "OGG": (".ogg", ".oga"), "AIFF": (".aiff", ".aif", ".aifc"), "CAF": (".caf",), "AU": (".au", ".snd"),
    "MP3": (".mp3",), "NIST": (".sph", ".nist"), "VOC": (".voc",), "SVX": (".8svx", ".16sv"), "AVR": (".avr",),
    "HTK": (".htk",), "PAF": (".paf",), "PVF": (".pvf",), "SD2": (".sd2",), "SDS": (".sds",), "XI": (".xi",),
    "WVE": (".wve",),
}


def audio_library(feature: str = "reading and writing audio files") -> ModuleType:
    """soundfile (the `aelab[audio]` extra), or the one-line MissingExtraError naming `feature`."""
    return require("soundfile", feature)


@functools.cache
def audio_extensions() -> tuple[str, ...]:
    """The endings (lower case, with the dot) of every format this libsndfile reads; .opus when it decodes Opus."""
    soundfile = audio_library()

    endings = {e for name in soundfile.available_formats() for e in FORMAT_ENDINGS.get(name, ())}
    if "OPUS" in soundfile.available_subtypes("OGG"):
        endings.add(".opus")
    return tuple(sorted(endings))


class Audio(NamedTuple):
    """A file read: mono float32 samples (T,), the rate they are at, and the file's own rate and channel count."""

    wave: np.ndarray
    rate: int
    file_rate: int
    channels: int


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(T,) at `rate` -> (T * target / rate,) at `target`, scipy's polyphase filter."""
    from scipy.signal import resample_poly

    if rate == target:
        return wave
    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def read_audio(path: Path, sample_rate: int | None) -> Audio:
    """A file as mono (mean of channels) float32 at `sample_rate` (None: the file's own); DataError naming it."""
    soundfile = audio_library()

    try:
        wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as err:
        raise DataError(f"{path} is not a readable audio file ({err})") from err
    if len(wave) == 0:
        raise DataError(f"{path} holds no samples")
    target = sample_rate or rate
    return Audio(resample(wave.mean(axis=1), rate, target), target, rate, wave.shape[1])  # (T, C) -> (T,)


def write_audio(path: Path, wave: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """A mono clip (T,) or (1, T) as 16-bit PCM WAV, clipped to [-1, 1]."""
    soundfile = audio_library()

    data = np.asarray(wave.detach().cpu() if isinstance(wave, torch.Tensor) else wave, dtype=np.float32).reshape(-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """`wave` cut or zero-padded to `length` samples (a resampling round trip may be a sample off)."""
    return np.pad(wave[:length], (0, max(0, length - len(wave))))


def band_limited(wave: np.ndarray, rate: int, model_rate: int) -> np.ndarray:
    """The part of `wave` (T,) at `rate` that survives a round trip through `model_rate`: its band below
    model_rate / 2 (all of it when rate <= model_rate), same length."""
    if rate <= model_rate:
        return wave
    return fit_length(resample(resample(wave, rate, model_rate), model_rate, rate), len(wave))


def with_high_band(output: np.ndarray, wave: np.ndarray, rate: int, model_rate: int, keep: bool) -> np.ndarray:
    """keep: `output` plus the input's content above model_rate / 2, `wave - band_limited(wave)`; drop: `output`
    as it is (band-limited by the round trip through the model's rate)."""
    return output + (wave - band_limited(wave, rate, model_rate)) if keep else output
