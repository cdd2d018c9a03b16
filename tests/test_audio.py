"""Audio end to end: real WAV files (espeak-ng speech), the voice split, SNR/SI-SDR known answers, 1-D nets, aelab-apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from aelab.core.errors import DataError
from aelab.data.audio import AudioFolderDataModule, overlap_add
from aelab.data.audio_io import read_audio, write_audio
from aelab.data.corruptions import AdditiveNoise, Clipping, DroppedSegments
from aelab.data.tasks import Task
from aelab.evals.restoration import quality
from helpers import compose_cfg, read_result, run_cli, wandb_summary

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make setup)")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small spoken-word set made with espeak-ng: 20 words x 6 voices x 2 speeds x 2 pitches."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it as root)")
    from aelab.data.speech import VOICES, WORDS, make_speech

    return make_speech(tmp_path_factory.mktemp("audio") / "speech", words=WORDS[:20], voices=VOICES[:6])


def test_the_voice_split_is_disjoint_and_every_clip_is_real_speech(speech: Path) -> None:
    from aelab.data.speech import VOICES

    held = [VOICES[1], VOICES[4]]
    data = AudioFolderDataModule(path=str(speech), test_groups=held, name="speech", shape=[1, 4096], num_classes=None,
                                 task=Task())
    data.setup()
    classes = data.classes
    test_voices = {classes[int(v)] for v in data.test_set.y.unique()}
    train_voices = {classes[int(v)] for v in torch.cat([data.train_set.y, data.val_set.y]).unique()}
    assert test_voices == set(held) and train_voices == set(VOICES[:6]) - set(held) and not test_voices & train_voices
    rms = data.test_set.x.pow(2).mean(-1).sqrt()
    assert float(rms.min()) >= 0.01 and float(data.test_set.x.abs().max()) <= 0.9 + 1e-6
    share = AudioFolderDataModule(path=str(speech), test_groups=0.34, name="speech", shape=[1, 4096], num_classes=None,
                                  task=Task())
    share.setup()
    assert len(share.held_out) == 2 and set(share.held_out) <= set(VOICES[:6])
    with pytest.raises(DataError, match=r"data.test_groups names \['nobody'\]"):
        AudioFolderDataModule(path=str(speech), test_groups=["nobody"], name="s", shape=[1, 4096], num_classes=None,
                              task=Task()).setup()


def test_si_sdr_of_a_clip_is_maximal_against_itself_and_equals_the_snr_of_added_noise() -> None:
    torch.manual_seed(0)
    t = torch.arange(8192) / 8000.0
    clean = (0.3 * torch.sin(2 * np.pi * 220 * t) + 0.2 * torch.sin(2 * np.pi * 1330 * t)).view(1, 1, -1).repeat(8, 1, 1)
    itself = quality(clean, clean, "signal")
    assert itself["si_sdr"] > 60 and itself["snr"] > 60
    for snr in (0.0, 5.0, 10.0):
        noisy = AdditiveNoise(snr)(clean)
        got = quality(noisy, clean, "signal")
        assert got["snr"] == pytest.approx(snr, abs=1e-3)  # the noise is scaled to exactly this SNR
        assert got["si_sdr"] == pytest.approx(snr, abs=0.1)  # independent white noise: SI-SDR ~ SNR
        assert got["si_sdr"] < itself["si_sdr"]


def test_clipping_and_dropped_segments_do_what_they_say() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 1, 2048) * torch.tensor([0.1, 0.3, 0.6, 0.9]).view(4, 1, 1)
    clipped = Clipping(0.25)(x)
    assert torch.allclose(clipped.abs().amax(-1), 0.25 * x.abs().amax(-1))
    dropped = DroppedSegments(0.5, segment=256)(x)
    segments = dropped.view(4, 1, 8, 256)
    zero = (segments == 0).all(-1)  # (4, 1, 8): whole segments are zero, the others untouched
    assert torch.equal(segments[~zero], x.view(4, 1, 8, 256)[~zero]) and 8 < int(zero.sum()) < 24


def test_overlap_add_stitches_an_identity_back_exactly() -> None:
    wave = np.random.default_rng(0).normal(size=30001).astype(np.float32)
    assert np.abs(overlap_add(wave, 4096, lambda x: x) - wave).max() < 1e-5
    assert np.abs(overlap_add(wave[:100], 4096, lambda x: -x) + wave[:100]).max() < 1e-5  # shorter than a clip


@pytest.mark.slow
@needs_espeak
def test_apply_restores_a_ten_second_noisy_wav_of_an_unheard_voice(speech: Path, tmp_path: Path) -> None:
    """Train a small 1-D skip AE on 5 voices; restore 10 s of the sixth voice's words in white noise at 5 dB."""
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio as si_sdr

    from aelab.data.speech import VOICES

    run = tmp_path / "run"
    done = run_cli("aelab-train", ["experiment=speech_denoise", "data=audio_folder", f"data.path={speech}",
                                   f"data.test_groups=[{VOICES[5]}]", "data.clip_length=1024", "model.latent_dim=32",
                                   "model.encoder.channels=[16,32,32,64]", "model.optimizer.lr=3e-3",
                                   "trainer.max_epochs=12",
                                   "callbacks.progress=null", "callbacks.embeddings=null", f"paths.output_dir={run}",
                                   f"paths.data_dir={tmp_path / 'data'}"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_result(run)["metrics"]["test/si_sdr_gain@5"] > 0
    assert {p.name for p in (run / "restoration_audio").iterdir()} >= {"clip0_noisy.wav", "clip0_restored.wav", "clip0_clean.wav"}
    logged = wandb_summary(run)  # the offline W&B run, read back: the clips are audio media
    summary = logged.get("summary", logged)
    assert summary["test/audio_clip0_restored"]["_type"] == "audio" and summary["test/si_sdr_gain@5"] > 0
    words = sorted((speech / VOICES[5]).glob("*.wav"))
    clean = np.concatenate([read_audio(f, 8000).wave for f in words])[: 10 * 8000]  # 10 s at 8 kHz
    rng = np.random.default_rng(0)
    noise = rng.normal(size=len(clean)).astype(np.float32)
    noisy = clean + noise * np.sqrt((clean**2).sum() / (noise**2).sum() * 10 ** (-5 / 10))
    inputs = tmp_path / "in"
    write_audio(inputs / "noisy.wav", noisy, 8000)
    soundfile.write(str(inputs / "noisy_22k.wav"), read_audio(inputs / "noisy.wav", 22050).wave, 22050)
    done = run_cli("aelab-apply", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={inputs}", f"output={tmp_path / 'out'}"])
    assert done.returncode == 0, done.stderr[-2000:]
    restored, rate = soundfile.read(str(tmp_path / "out" / "noisy.wav"), dtype="float32")
    assert rate == 8000 and len(restored) == len(noisy) == 80000
    info = soundfile.info(str(tmp_path / "out" / "noisy_22k.wav"))
    assert info.samplerate == 22050 and info.frames == soundfile.info(str(inputs / "noisy_22k.wav")).frames
    reference = torch.from_numpy(clean)
    before = float(si_sdr(torch.from_numpy(read_audio(inputs / "noisy.wav", 8000).wave), reference))
    after = float(si_sdr(torch.from_numpy(restored), reference))
    assert before == pytest.approx(5.0, abs=0.2) and after > before + 0.5


def test_conv1d_and_unet1d_without_skips_are_the_same_network() -> None:
    from aelab.core.build import build

    shapes = ["data=audio_folder", "data.path=unused", "data.clip_length=2000", "model.latent_dim=8"]
    torch.manual_seed(0)
    conv = build(compose_cfg([*shapes, "model/arch=conv1d"]).model)
    torch.manual_seed(0)
    plain = build(compose_cfg([*shapes, "model/arch=unet1d", "model.encoder.skips=false"]).model)
    assert list(plain.state_dict()) == list(conv.state_dict())
    x = torch.randn(3, 1, 2000)
    assert torch.equal(plain.reconstruct(x), conv.reconstruct(x)) and conv.reconstruct(x).shape == x.shape
