"""Audio files as fixed-length clips: `data=audio_folder data.path=<folder>` (any format libsndfile reads), and `data=speech`.

Every file is read by `audio_io.read_audio` (the reader `aelab-apply` uses too), mixed to mono (the mean of its
channels), resampled to `sample_rate` (scipy's polyphase filter), scaled to a peak of `peak` and cut into clips of
`clip_length` samples (the last one zero-padded); clips quieter than `min_rms` (silence) are dropped. Sub-folders
are groups, e.g. speakers: y = the group's index (names in order; files beside sub-folders form the group ".").
The test set is whole groups, so no test speaker is heard in training: `test_groups` names them, or is the seeded
share of groups to hold out (of files, when there are no sub-folders). A clip is (1, clip_length) in [-1, 1].

Files without an audio ending (`audio_io.audio_extensions()`), hidden files and files deeper than one sub-folder are
skipped and counted; a file with an audio ending that fails to decode stops the run (DataError naming it) unless
`on_bad_file=skip`. `file_report` (JSON-ready) and one log line say what was read: files per group, the sample rates
met, how many were resampled and mixed to mono, what was skipped or unreadable (the first few named).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.core.errors import ConfigError, DataError
from aelab.data.audio_io import Audio, audio_extensions, audio_library, read_audio, write_audio
from aelab.data.base import InMemoryDataModule, Splits, counted, folder_files
from aelab.data.cache import cached

log = logging.getLogger(__name__)

ON_BAD_FILE = ("error", "skip")  # data.on_bad_file: a file with an audio ending that fails to decode


def to_clips(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(T,) -> (n, length) clips every `hop` samples; the tail zero-padded so every sample is in a clip."""
    n = max(1, math.ceil((len(wave) - length) / hop) + 1) if len(wave) > length else 1
    padded = np.zeros((n - 1) * hop + length, dtype=np.float32)
    padded[: len(wave)] = wave
    return np.stack([padded[i * hop: i * hop + length] for i in range(n)])


def audio_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The audio files in `folder` and its sub-folders (one level), in name order, and the other files skipped."""
    return folder_files(folder, audio_extensions(), "audio files (" + " ".join(audio_extensions()) + ")", "group")


def read_files(folder: Path, files: list[Path], sample_rate: int, on_bad_file: str) -> tuple[list[Path], list[Audio], list[str]]:
    """The files read at `sample_rate`, and the unreadable ones named: one stops the run unless on_bad_file=skip."""
    kept, audios, bad = [], [], []
    for f in files:
        try:
            audios.append(read_audio(f, sample_rate))
            kept.append(f)
        except DataError as err:
            if on_bad_file != "skip":
                raise DataError(f"{err}: fix or remove it, or set data.on_bad_file=skip to leave it out") from err
            log.warning("skipped %s", err)
            bad.append(str(f.relative_to(folder)))
    if not audios:
        raise DataError(f"{folder}: none of the {len(files)} audio files could be read (e.g. {bad[0]})")
    return kept, audios, bad


def read_folder(folder: Path, files: list[Path], sample_rate: int, clip_length: int, peak: float, min_rms: float,
                on_bad_file: str = "error") -> dict:
    """Clips (N, 1, L), their group (N,) and file index (N,), the group names, and what reading did (`report`)."""
    files, audios, bad = read_files(folder, files, sample_rate, on_bad_file)
    names = [f.parent.name if f.parent != folder else "." for f in files]  # ".": beside the sub-folders, a group too
    groups = sorted(set(names))
    clips, group, origin = [], [], []
    for k, (name, audio) in enumerate(zip(names, audios)):
        top = float(np.abs(audio.wave).max())
        cut = to_clips(audio.wave * (peak / top if top > 0 else 1.0), clip_length, clip_length)  # (n, L)
        cut = cut[np.sqrt((cut**2).mean(axis=1)) >= min_rms]
        clips.append(cut)
        group += [groups.index(name)] * len(cut)
        origin += [k] * len(cut)
    x = torch.from_numpy(np.concatenate(clips)).unsqueeze(1)  # (N, L) -> (N, 1, L)
    if len(x) == 0:
        raise DataError(f"{folder}: every clip is quieter than data.min_rms={min_rms}")
    report = {"files_per_group": dict(sorted(Counter(names).items())),
              "sample_rates": {str(r): c for r, c in sorted(Counter(a.file_rate for a in audios).items())},
              "resampled": sum(a.file_rate != sample_rate for a in audios),
              "mixed_to_mono": sum(a.channels > 1 for a in audios), "unreadable": bad,
              "groups_without_clips": [g for k, g in enumerate(groups) if k not in set(group)]}
    return {"x": x, "y": torch.tensor(group), "file": torch.tensor(origin), "groups": ["audio"] if groups == ["."] else groups,
            "files": [str(f.relative_to(folder)) for f in files], "report": report}


def describe(report: dict[str, Any], sample_rate: int) -> str:
    """One line of what reading the folder did: files per group, rates met, resampled, mixed, skipped."""
    groups = ", ".join(f"{g}: {n}" for g, n in report["files_per_group"].items())
    rates = ", ".join(f"{r} Hz x{n}" for r, n in report["sample_rates"].items())
    skipped, bad, silent = report["skipped"], report["unreadable"], report["groups_without_clips"]
    return (f"{report['files']} audio files ({groups}); sample rates met: {rates}; {report['resampled']} resampled to "
            f"{sample_rate} Hz; {report['mixed_to_mono']} multi-channel mixed to mono (mean of channels); "
            f"skipped {skipped['count']} other files" + (f" ({', '.join(skipped['first'])})" if skipped["count"] else "")
            + f"; {bad['count']} unreadable" + (f" ({', '.join(bad['first'])})" if bad["count"] else "")
            + (f"; no clip louder than data.min_rms in group(s) {', '.join(silent)}" if silent else ""))


class AudioFolderDataModule(InMemoryDataModule):
    """Clips of the audio files in a folder; shape [1, clip_length]; test set = whole groups (or files)."""

    def __init__(self, path: str, sample_rate: int = 8000, clip_length: int = 4096, test_groups: float | list[str] = 0.2,
                 peak: float = 0.9, min_rms: float = 0.01, make: str | None = None, cache_dir: str | None = None,
                 on_bad_file: str = "error", **kwargs) -> None:
        if sample_rate < 1000 or clip_length < 64:
            raise ConfigError(f"data.sample_rate must be >= 1000 Hz and data.clip_length >= 64 samples, "
                              f"got {sample_rate} and {clip_length}")
        if isinstance(test_groups, (int, float)) and not 0.0 < test_groups < 1.0:
            raise ConfigError(f"data.test_groups must be a share in (0, 1) or a list of group names, got {test_groups!r}")
        if on_bad_file not in ON_BAD_FILE:
            raise ConfigError(f"data.on_bad_file must be one of {', '.join(ON_BAD_FILE)}, got {on_bad_file!r}")
        super().__init__(**kwargs)
        audio_library(f"data={self.name}")  # the audio extra, checked before anything starts
        self.path, self.sample_rate, self.clip_length = Path(path).expanduser(), sample_rate, clip_length
        self.test_groups, self.peak, self.min_rms, self.make = test_groups, peak, min_rms, make
        self.cache_dir, self.on_bad_file = cache_dir, on_bad_file
        self.classes: list[str] = []
        self.file_report: dict[str, Any] = {}  # what reading the folder did (JSON-ready): see `describe`

    def load(self) -> Splits:
        if self.make is not None and not self.path.is_dir():
            from aelab.data.speech import MAKERS

            if self.make not in MAKERS:
                raise ConfigError(f"data.make must be one of {', '.join(MAKERS)} or null, got {self.make!r}")
            MAKERS[self.make](self.path)
        files, skipped = audio_files(self.path)
        settings = {"kind": "audio", "rate": self.sample_rate, "clip": self.clip_length, "peak": self.peak,
                    "min_rms": self.min_rms, "on_bad_file": self.on_bad_file, "reader": 2}
        blob = cached(files, settings, self.cache_dir, lambda: read_folder(self.path, files, self.sample_rate,
                                                                          self.clip_length, self.peak, self.min_rms,
                                                                          self.on_bad_file))
        self.file_report = {"files": len(blob["files"]), **blob["report"], "skipped": counted(skipped),
                            "unreadable": counted(list(blob["report"]["unreadable"]))}
        log.info("%s: %s", self.path, describe(self.file_report, self.sample_rate))
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
