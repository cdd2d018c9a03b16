"""Real-world audio files: every format and rate read alike by training and aelab-apply, a mixed folder through the
CLI (counts, no group lost), the high-band rule in closed form, and apply's resample-only baseline against a reference."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from aelab.commands.apply_audio import high_band_line, keeps_high_band
from aelab.core.errors import ConfigError
from aelab.data.audio import AudioFolderDataModule, read_folder
from aelab.data.audio_io import audio_extensions, band_limited, read_audio, with_high_band
from aelab.data.tasks import Task
from helpers import fails_cleanly, run_cli

SECONDS = 0.5
# name -> (rate, soundfile format, subtype, channels, largest error at the file's rate: one step of the sample format)
KINDS = {
    "pcm16.wav": (8000, "WAV", "PCM_16", 1, 2**-15), "pcm24.wav": (16000, "WAV", "PCM_24", 1, 2**-23),
    "float.wav": (44100, "WAV", "FLOAT", 1, 1e-7), "lossless.flac": (48000, "FLAC", "PCM_16", 1, 2**-15),
    "stereo.wav": (16000, "WAV", "PCM_16", 2, 2**-15), "vorbis.ogg": (44100, "OGG", "VORBIS", 1, None),
    "vorbis.oga": (48000, "OGG", "VORBIS", 2, None), "apple.aiff": (8000, "AIFF", "PCM_16", 1, 2**-15),
    "speech.opus": (48000, "OGG", "OPUS", 1, None), "music.mp3": (44100, "MP3", "MPEG_LAYER_III", 1, None),
}
KINDS = {name: kind for name, kind in KINDS.items() if Path(name).suffix in audio_extensions()}  # this libsndfile's


def tones(rate: int, seconds: float = SECONDS, freqs: tuple[float, ...] = (300.0, 1100.0)) -> np.ndarray:
    """A known mono signal: equal sines at `freqs`, peak below 0.5."""
    t = np.arange(int(round(rate * seconds))) / rate
    return (0.45 / len(freqs) * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


def write_kind(path: Path, rate: int, fmt: str, subtype: str, channels: int) -> np.ndarray:
    """The known signal written as this kind (stereo: left = 1.5 x, right = 0.5 x, so the mean is the signal)."""
    mono = tones(rate)
    data = np.stack([1.5 * mono, 0.5 * mono], axis=1) if channels == 2 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate, format=fmt, subtype=subtype)
    return mono


def similar(got: np.ndarray, want: np.ndarray, step: float | None, rate: int) -> None:
    """Within one sample step (lossless), or for a lossy codec (which may shift and smear the samples a little):
    >= 95% of the energy within 20 Hz of the known tones, and the energy within 10% of the signal's."""
    if step is not None:
        assert np.abs(got - want).max() <= step + 1e-6
        return
    power = np.abs(np.fft.rfft(got)) ** 2
    freqs = np.fft.rfftfreq(len(got), 1 / rate)
    near = sum(power[np.abs(freqs - f) < 20].sum() for f in (300.0, 1100.0))
    assert near / power.sum() > 0.95 and abs((got**2).sum() / (want**2).sum() - 1) < 0.1


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kinds")
    for name, (rate, fmt, subtype, channels, _) in KINDS.items():
        write_kind(folder / name, rate, fmt, subtype, channels)
    return folder


def test_the_extension_list_comes_from_libsndfile() -> None:
    endings = audio_extensions()
    assert {".wav", ".flac", ".ogg", ".oga", ".aiff", ".mp3"} <= set(endings)
    assert (".opus" in endings) == ("OPUS" in soundfile.available_subtypes("OGG")) and ".raw" not in endings


@pytest.mark.parametrize("name", list(KINDS))
def test_apply_reads_each_kind_at_its_own_rate_as_written(name: str, kinds: Path) -> None:
    rate, _, _, channels, step = KINDS[name]
    audio = read_audio(kinds / name, None)
    assert (audio.rate, audio.file_rate, audio.channels) == (rate, rate, channels)
    similar(audio.wave, tones(rate), step, rate)


def test_training_reads_each_kind_resampled_to_its_rate_and_counts_what_it_did(kinds: Path) -> None:
    files = sorted(kinds.iterdir())
    blob = read_folder(kinds, files, 8000, 4000, peak=0.9, min_rms=0.0)  # 0.5 s at 8 kHz: one clip per file
    want = tones(8000) * 0.9 / np.abs(tones(8000)).max()
    assert blob["x"].shape == (len(files), 1, 4000)
    for clip, name in zip(blob["x"][:, 0].numpy(), blob["files"]):
        lossless = KINDS[name][4] is not None
        inner = slice(200, -200)  # away from the polyphase filter's edges
        # a lossy decoder's transient (Opus: at the end) may set the file's peak, hence its level: fit the level
        level = 1.0 if lossless else float(clip[inner] @ want[inner] / (want[inner] @ want[inner]))
        similar(clip[inner], level * want[inner], 0.01 if lossless else None, 8000)
    report = blob["report"]
    rates = Counter(kind[0] for kind in KINDS.values())
    assert report["sample_rates"] == {str(r): n for r, n in sorted(rates.items())} and len(rates) == 4
    assert report["resampled"] == len(files) - rates[8000] and report["mixed_to_mono"] == 2 and not report["unreadable"]


@pytest.mark.slow
def test_a_file_that_fails_to_decode_stops_the_run_unless_skipped(kinds: Path, tmp_path: Path) -> None:
    group = tmp_path / "audio" / "g"
    group.mkdir(parents=True)
    for name in ("pcm16.wav", "vorbis.oga"):
        (group / name).write_bytes((kinds / name).read_bytes())
    (group / "broken.flac").write_bytes(b"fLaC but nothing else")
    line = fails_cleanly(["data=audio_folder", f"data.path={group.parent}", "logger=none", "callbacks.progress=null"],
                         "broken.flac is not a readable audio file", tmp_path / "run")
    assert str(group / "broken.flac") in line and line.endswith("or set data.on_bad_file=skip to leave it out")
    args = {"path": str(group.parent), "name": "a", "shape": None, "num_classes": None, "task": Task(), "clip_length": 256}
    reports = []
    for _ in range(2):  # decoded, then read back from the cache: the same report
        data = AudioFolderDataModule(**args, on_bad_file="skip", test_groups=0.5, cache_dir=str(tmp_path / "cache"))
        data.setup()
        reports.append(data.file_report)
    assert reports[0]["unreadable"] == {"count": 1, "first": ["g/broken.flac"]} and reports[1] == reports[0]
    assert reports[0]["files"] == 2 and reports[0]["files_per_group"] == {"g": 2} and len(list(tmp_path.glob("cache/*")))
    with pytest.raises(ConfigError, match="data.on_bad_file must be one of error, skip"):
        AudioFolderDataModule(**args, on_bad_file="ignore")


def test_the_high_band_is_kept_or_dropped_on_a_known_signal() -> None:
    rate, model_rate = 48000, 8000
    wave = tones(rate, 1.0, (1000.0, 6000.0))  # 6 kHz lies above the model's Nyquist (4 kHz)
    output = band_limited(wave, rate, model_rate)  # what an identity model returns after the round trip

    def amplitude(x: np.ndarray, freq: float) -> float:
        return float(np.abs(np.fft.rfft(x))[int(freq)] * 2 / len(x))  # 1 s: bin k is k Hz

    kept, dropped = (with_high_band(output, wave, rate, model_rate, keep) for keep in (True, False))
    assert amplitude(kept, 6000) == pytest.approx(0.225, abs=1e-3) and np.abs(kept - wave).max() < 1e-5
    assert amplitude(dropped, 6000) < 1e-3 and amplitude(dropped, 1000) == pytest.approx(0.225, abs=2e-3)
    low = tones(model_rate, 1.0)
    assert np.array_equal(with_high_band(low, low, model_rate, model_rate, True), low)  # nothing above: no change


@pytest.mark.parametrize("setting, task, keep", [("auto", "denoise", False), ("auto", "reconstruct", True),
                                                 ("keep", "denoise", True), ("drop", "reconstruct", False)])
def test_the_high_band_rule_by_setting_and_task(setting: str, task: str, keep: bool) -> None:
    assert keeps_high_band(setting, task) is keep
    line = high_band_line(setting, task, [8000, 48000, 48000], 8000)
    assert f"high_band={'keep' if keep else 'drop'}" in line and "2 file(s) at 48000 Hz" in line and "4000 Hz" in line
    with pytest.raises(ConfigError, match="high_band must be one of auto, keep, drop"):
        keeps_high_band("maybe", task)


def mixed_folder(root: Path) -> Path:
    """Three groups (WAV 8 kHz, FLAC 44.1 kHz stereo, Ogg .oga 48 kHz), a loose WAV beside them (16 kHz), a .txt
    note and a hidden file."""
    for k in range(3):
        write_kind(root / "wav" / f"w{k}.wav", 8000, "WAV", "PCM_16", 1)
        write_kind(root / "flac" / f"f{k}.flac", 44100, "FLAC", "PCM_16", 2)
        write_kind(root / "vorbis" / f"v{k}.oga", 48000, "OGG", "VORBIS", 1)
    write_kind(root / "loose.wav", 16000, "WAV", "PCM_16", 1)
    (root / "notes.txt").write_text("recorded on a Tuesday")
    (root / "wav" / ".w0.wav.swp").write_bytes(b"editor swap")
    return root


@pytest.mark.slow
def test_a_mixed_folder_trains_and_apply_scores_a_48k_file_against_its_reference(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_cli("aelab-train", ["data=audio_folder", f"data.path={mixed_folder(tmp_path / 'mixed')}",
                                   "data.clip_length=256", "data.test_groups=[vorbis]", "model/arch=conv1d",
                                   "model.encoder.channels=[8,16]", "model.latent_dim=8", "task=denoise_audio",
                                   "logger=none", "trainer.max_epochs=1", "eval=none", "callbacks.progress=null",
                                   "callbacks.embeddings=null", "callbacks.samples=null",
                                   "callbacks.reconstructions=null", f"hydra.run.dir={run}",
                                   f"paths.data_dir={tmp_path / 'data'}"])
    assert done.returncode == 0, done.stderr[-2000:]
    log = (run / "train.log").read_text()
    assert "10 audio files (.: 1, flac: 3, vorbis: 3, wav: 3)" in log
    assert "sample rates met: 8000 Hz x3, 16000 Hz x1, 44100 Hz x3, 48000 Hz x3; 7 resampled to 8000 Hz; 3 multi" in log
    assert "skipped 2 other files (notes.txt (not a file read here: ending .txt), wav/.w0.wav.swp (hidden))" in log
    assert "test groups: vorbis" in log  # the .oga group is the test split, not lost
    clean, noisy = tmp_path / "clean", tmp_path / "noisy"
    wave = tones(48000, 2.0, (300.0, 1100.0, 2500.0))  # all below the model's Nyquist (4 kHz)
    noise = np.random.default_rng(0).normal(size=len(wave)).astype(np.float32)
    noise *= np.sqrt((wave**2).sum() / (noise**2).sum() * 10 ** (-5 / 10))  # white noise at 5 dB SNR
    for folder, data in ((clean, wave), (noisy, np.stack([wave + noise] * 2, axis=1))):  # the noisy file in stereo
        folder.mkdir()
        soundfile.write(str(folder / "talk.flac"), data, 48000, subtype="PCM_24")
    (noisy / "take notes.txt").write_text("not audio")
    done = run_cli("aelab-apply", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={noisy}",
                                   f"clean={clean}", f"output={tmp_path / 'out'}"])
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "apply.json").read_text())
    assert record["other_files"] == {"count": 1, "first": ["take notes.txt (not a file read here: ending .txt)"]}
    assert record["mixed_to_mono"] == {"count": 1, "first": ["talk.flac"]} and record["high_band"]["rule"] == "drop" and record["high_band"]["line"].startswith("high_band=drop (auto")
    scores = record["clean"]["files"]["talk.flac"]
    assert scores["rate"] == 48000 and scores["input"]["si_sdr"] == pytest.approx(5.0, abs=0.1)
    gain = 10 * np.log10(6)  # drop keeps 1/6 of white noise (0-4 of 0-24 kHz) and all of the signal
    assert scores["resample_only"]["si_sdr"] == pytest.approx(5.0 + gain, abs=0.3)
    assert np.isfinite(scores["model"]["si_sdr"]) and record["clean"]["mean"]["model"] == scores["model"]
    assert soundfile.info(str(tmp_path / "out" / "talk.wav")).samplerate == 48000
