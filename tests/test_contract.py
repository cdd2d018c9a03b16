"""Contract suite over every variant YAML on disk (conf/model/*.yaml): a new variant is tested by existing.

The checks are aelab.commands.check's, which `aelab-check` runs on a researcher's own variant."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aelab.commands import check
from aelab.core.build import build
from aelab.models.api import Autoencoder, GenerativeAutoencoder
from helpers import CONF_DIR, compose_cfg

VARIANTS = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
ARCHS = sorted(p.stem for p in (Path(CONF_DIR) / "model" / "arch").glob("*.yaml"))
LATENT = 8  # valid for every variant: a multiple of vq's code_dim, >= ksparse's k
SIGNAL_ARCHS = {"conv1d", "unet1d"}  # architectures for (C, L) signals: checked on audio-like clips, not on digits
SIGNAL = ["data=audio_folder", "data.path=unused", "data.clip_length=256",  # the model is sized from data.shape only
          "model.encoder.channels=[8,16]"]  # small: the contract is about wiring, and cae's exact Jacobian is costly


@pytest.fixture(scope="module")
def digits_batch() -> dict[str, torch.Tensor]:
    data = build(compose_cfg(["data=digits"], Path("/tmp")).data)
    data.setup()
    return data.fixed_batch("train", 128)


@pytest.fixture(scope="module")
def signal_batch() -> dict[str, torch.Tensor]:
    """128 clips (1, 256) of two sinusoids with random frequencies and phases, amplitude below 1."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(256) / 8000.0
    f, phase = 100 + 1500 * torch.rand(128, 2, 1, generator=gen), 6.28 * torch.rand(128, 2, 1, generator=gen)
    x = 0.4 * torch.sin(6.283 * f * t + phase).sum(1, keepdim=True)  # (128, 1, 256)
    return {"x": x, "target": x, "y": torch.zeros(128, dtype=torch.long)}


def make(variant: str, arch: str, tmp_path: Path):
    torch.manual_seed(0)
    data = SIGNAL if arch in SIGNAL_ARCHS else ["data=digits"]
    cfg = compose_cfg([*data, f"model={variant}", f"model/arch={arch}", f"model.latent_dim={LATENT}"], tmp_path)
    return build(cfg.model), cfg


def batch_for(arch: str, request: pytest.FixtureRequest) -> dict[str, torch.Tensor]:
    return request.getfixturevalue("signal_batch" if arch in SIGNAL_ARCHS else "digits_batch")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_api_shapes(variant: str, arch: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    own_arch_or_skip(variant, arch, tmp_path)
    model, _ = make(variant, arch, tmp_path)
    batch = batch_for(arch, request)
    check.encode_shapes(model, batch)
    assert model.encode(batch["x"][:3]).shape == (3, LATENT)
    assert isinstance(model, GenerativeAutoencoder)  # the whole model API that evaluators, apply and explore use


BASELINES = sorted(p.stem for p in (Path(CONF_DIR) / "model" / "baseline").glob("*.yaml"))


@pytest.mark.parametrize("baseline", BASELINES)
def test_baselines_offer_the_autoencoder_api_and_nothing_generative(baseline: str, tmp_path: Path) -> None:
    cfg = compose_cfg(["data=digits", f"model=baseline/{baseline}", f"model.latent_dim={LATENT}"], tmp_path)
    model = build(cfg.model)
    assert isinstance(model, Autoencoder) and not isinstance(model, GenerativeAutoencoder)


def own_arch_or_skip(variant: str, arch: str, tmp_path: Path) -> None:
    own = compose_cfg([f"model={variant}"], tmp_path).model.arch
    if own != "conv" and arch != own:  # the variant fixes its architecture (linear_ae: mlp, no hidden)
        pytest.skip(f"{variant} is defined on model/arch={own}")


@pytest.mark.parametrize("arch", ["mlp", "unet", "unet1d"])  # unet: skip maps go through every bottleneck's decoder path
@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_terms_are_finite_scalars_with_gradients(variant: str, arch: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    own_arch_or_skip(variant, arch, tmp_path)
    model, cfg = make(variant, arch, tmp_path)
    assert set(cfg.model.loss_weights) <= {*model.bottleneck.terms, *model.penalties, *model.adversary_terms}, \
        "weights name emitted terms"
    check.finite_terms(model, batch_for(arch, request))


@pytest.mark.parametrize("arch", ["mlp", "unet", "unet1d"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_steps_lower_the_loss(variant: str, arch: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    own_arch_or_skip(variant, arch, tmp_path)
    model, _ = make(variant, arch, tmp_path)
    check.loss_decreases(model, batch_for(arch, request))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_trains_validates_and_tests_through_lightning(variant: str, tmp_path: Path) -> None:
    """A few real Trainer steps per variant: catches what only the loops do (no_grad/inference mode, callbacks)."""
    from aelab.commands.train import train

    cfg = compose_cfg(["data=digits", f"model={variant}", "model/arch=mlp", f"model.latent_dim={LATENT}", "logger=none",
                       "callbacks.progress=null", "callbacks.embeddings.n=50", "trainer.max_epochs=1",
                       "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"],
                      tmp_path)
    result = train(cfg)
    assert result["state"] == "completed"
    assert all(math.isfinite(result["metrics"][k]) for k in ("val/loss", "test/loss", "test/mse"))
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
