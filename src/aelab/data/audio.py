"""Audio files as fixed-length clips: `data=audio_folder data.path=<folder>` (WAV, FLAC, OGG), and `data=speech`.

Every file is read with soundfile, mixed down to mono, resampled to `sample_rate` (scipy's polyphase filter), scaled
to a peak of `peak` and cut into clips of `clip_length` samples (the last one zero-padded); clips quieter than
`min_rms` (silence) are dropped. Sub-folders are groups, e.g. speakers: y = the group's index (names in order).
The test set is whole groups, so no test speaker is heard in training: `test_groups` names them, or is the seeded
share of groups to hold out (of files, when there are no sub-folders). A clip is (1, clip_length) in [-1, 1].
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from aelab.data.base import InMemoryDataModule, Splits, folder_files, named
from aelab.data.cache import cached
from aelab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EXTENSIONS = (".wav", ".flac", ".ogg")


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(T,) at `rate` -> (T * target / rate,) at `target`, scipy's polyphase filter."""
    from scipy.signal import resample_poly

    if rate == target:
        return wave
    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def read_audio(path: Path, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """A file as mono float32 (T,) at `sample_rate` (None: the file's own) and its original rate; DataError naming it."""
    import soundfile

    try:
        wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as err:
        raise DataError(f"{path} is not a readable audio file ({err})") from err
    if len(wave) == 0:
        raise DataError(f"{path} holds no samples")
    return resample(wave.mean(axis=1), rate, sample_rate or rate), rate


def write_audio(path: Path, wave: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """A mono clip (T,) or (1, T) as 16-bit PCM WAV, clipped to [-1, 1]."""
    import soundfile

    data = np.asarray(wave.detach().cpu() if isinstance(wave, torch.Tensor) else wave, dtype=np.float32).reshape(-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path


def to_clips(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(T,) -> (n, length) clips every `hop` samples; the tail zero-padded so every sample is in a clip."""
    n = max(1, math.ceil((len(wave) - length) / hop) + 1) if len(wave) > length else 1
    padded = np.zeros((n - 1) * hop + length, dtype=np.float32)
    padded[: len(wave)] = wave
    return np.stack([padded[i * hop: i * hop + length] for i in range(n)])


def audio_files(folder: Path) -> list[Path]:
    """The audio files in `folder` and its sub-folders (one level), in name order."""
    files, others = folder_files(folder, EXTENSIONS, "WAV/FLAC/OGG files", "group")
    if others:
        names = [p.relative_to(folder) for p in others]
        log.info("%s: skipped %d file(s) that are not WAV/FLAC/OGG: %s", folder, len(others), named(names))
    return files


def read_folder(folder: Path, files: list[Path], sample_rate: int, clip_length: int, peak: float,
                min_rms: float) -> dict:
    """Clips (N, 1, L), their group (N,) and file index (N,), and the group names, from the files in order."""
    groups = sorted({f.parent.name for f in files if f.parent != folder})
    clips, group, origin = [], [], []
    for k, f in enumerate(files):
        wave = read_audio(f, sample_rate)[0]
        top = float(np.abs(wave).max())
        cut = to_clips(wave * (peak / top if top > 0 else 1.0), clip_length, clip_length)  # (n, L)
        cut = cut[np.sqrt((cut**2).mean(axis=1)) >= min_rms]
        clips.append(cut)
        group += [groups.index(f.parent.name) if f.parent != folder else 0] * len(cut)
        origin += [k] * len(cut)
    x = torch.from_numpy(np.concatenate(clips)).unsqueeze(1)  # (N, L) -> (N, 1, L)
    if len(x) == 0:
        raise DataError(f"{folder}: every clip is quieter than data.min_rms={min_rms}")
    return {"x": x, "y": torch.tensor(group), "file": torch.tensor(origin), "groups": groups or ["audio"],
            "files": [str(f.relative_to(folder)) for f in files]}


class AudioFolderDataModule(InMemoryDataModule):
    """Clips of the audio files in a folder; shape [1, clip_length]; test set = whole groups (or files)."""

    def __init__(self, path: str, sample_rate: int = 8000, clip_length: int = 4096, test_groups: float | list[str] = 0.2,
                 peak: float = 0.9, min_rms: float = 0.01, make: str | None = None, cache_dir: str | None = None,
                 **kwargs) -> None:
        if sample_rate < 1000 or clip_length < 64:
            raise ConfigError(f"data.sample_rate must be >= 1000 Hz and data.clip_length >= 64 samples, "
                              f"got {sample_rate} and {clip_length}")
        if isinstance(test_groups, (int, float)) and not 0.0 < test_groups < 1.0:
            raise ConfigError(f"data.test_groups must be a share in (0, 1) or a list of group names, got {test_groups!r}")
        super().__init__(**kwargs)
        self.path, self.sample_rate, self.clip_length = Path(path).expanduser(), sample_rate, clip_length
        self.test_groups, self.peak, self.min_rms, self.make = test_groups, peak, min_rms, make
        self.cache_dir = cache_dir
        self.classes: list[str] = []

    def load(self) -> Splits:
        if self.make is not None and not self.path.is_dir():
            from aelab.data.speech import MAKERS

            if self.make not in MAKERS:
                raise ConfigError(f"data.make must be one of {', '.join(MAKERS)} or null, got {self.make!r}")
            MAKERS[self.make](self.path)
        files = audio_files(self.path)
        settings = {"kind": "audio", "rate": self.sample_rate, "clip": self.clip_length, "peak": self.peak,
                    "min_rms": self.min_rms}
        blob = cached(files, settings, self.cache_dir, lambda: read_folder(self.path, files, self.sample_rate,
                                                                          self.clip_length, self.peak, self.min_rms))
        x, y, self.classes = blob["x"], blob["y"], list(blob["groups"])
        if self.num_classes is None:
            self.num_classes = len(self.classes)
        test = self.test_mask(y, blob["file"])
        log.info("%s: %d clips of %d samples at %d Hz from %d files; test groups: %s", self.path, len(x),
                 self.clip_length, self.sample_rate, len(blob["files"]), ", ".join(self.held_out))
        return Splits(x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test])

    def test_mask(self, y: torch.Tensor, file: torch.Tensor) -> torch.Tensor:
        """Boolean (N,): clips of the held-out groups (or files, without groups); sets `held_out` (their names)."""
        grouped = len(self.classes) > 1
        units = self.classes if grouped else [str(k) for k in range(int(file.max()) + 1)]
        if isinstance(self.test_groups, (int, float)):
            order = torch.randperm(len(units), generator=torch.Generator().manual_seed(self.split_seed + 1)).tolist()
            chosen = sorted(order[: max(1, int(round(self.test_groups * len(units))))])
        else:
            unknown = sorted(set(self.test_groups) - set(units))
            if unknown or not grouped:
                raise DataError(f"{self.path}: data.test_groups names {unknown or list(self.test_groups)}, but the groups "
                                f"(sub-folders) are {', '.join(self.classes) if grouped else 'none'}")
            chosen = [units.index(name) for name in self.test_groups]
        if len(chosen) >= len(units):
            raise DataError(f"{self.path}: {len(units)} {'groups' if grouped else 'files'} are too few to hold some out")
        self.held_out = [units[k] for k in chosen] if grouped else [f"{len(chosen)} files"]
        return torch.isin(y if grouped else file, torch.tensor(chosen))

    def preprocessing(self) -> dict:
        return {**super().preprocessing(), "kind": "audio", "sample_rate": self.sample_rate,
                "clip_length": self.clip_length, "peak": self.peak, "classes": self.classes}

    def preview(self, out_dir: Path) -> Path:
        """Eight training clips back to back (`data_preview.wav`) and their waveforms (`data_preview.png`)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.setup()
        clips = self.fixed_batch("train", 8)["x"][:, 0]  # (8, L)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_audio(out_dir / "data_preview.wav", clips.flatten(), self.sample_rate)
        fig, axes = plt.subplots(len(clips), 1, figsize=(8, 1.2 * len(clips)), sharex=True, squeeze=False)
        for ax, clip in zip(axes[:, 0], clips):
            ax.plot(np.arange(len(clip)) / self.sample_rate, clip.numpy(), linewidth=0.5)
            ax.set_ylim(-1, 1)
        axes[-1, 0].set_xlabel("seconds")
        path = out_dir / "data_preview.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path


def overlap_add(wave: np.ndarray, length: int, fn) -> np.ndarray:
    """A long signal (T,) processed by `fn` on clips (n, 1, length) at 50% overlap, Hann-weighted and summed back
    (normalised by the summed window, so an identity `fn` returns `wave` exactly); the ends are padded first."""
    from scipy.signal import get_window

    hop = length // 2
    padded = np.concatenate([np.zeros(hop, np.float32), wave.astype(np.float32), np.zeros(hop, np.float32)])
    clips = to_clips(padded, length, hop)  # (n, L)
    done = fn(torch.from_numpy(clips).unsqueeze(1)).squeeze(1).numpy()  # (n, 1, L) -> (n, L)
    window = get_window("hann", length).astype(np.float32)
    total = np.zeros((len(clips) - 1) * hop + length, np.float32)
    weight = np.zeros_like(total)
    for i, clip in enumerate(done):
        total[i * hop: i * hop + length] += clip * window
        weight[i * hop: i * hop + length] += window
    return (total / np.maximum(weight, 1e-8))[hop: hop + len(wave)]
