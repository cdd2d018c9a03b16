"""Contract suite over every variant YAML on disk (conf/model/*.yaml): a new variant is tested by existing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aelab.build import build
from conftest import CONF_DIR, compose_cfg

VARIANTS = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
ARCHS = sorted(p.stem for p in (Path(CONF_DIR) / "model" / "arch").glob("*.yaml"))
LATENT = 8  # valid for every variant: a multiple of vq's code_dim, >= ksparse's k


@pytest.fixture(scope="module")
def digits_batch() -> dict[str, torch.Tensor]:
    data = build(compose_cfg(["data=digits"], Path("/tmp")).data)
    data.setup()
    return data.fixed_batch("train", 128)


def make(variant: str, arch: str, tmp_path: Path):
    torch.manual_seed(0)
    cfg = compose_cfg(["data=digits", f"model={variant}", f"model/arch={arch}", f"model.latent_dim={LATENT}"], tmp_path)
    return build(cfg.model), cfg


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_api_shapes(variant: str, arch: str, tmp_path: Path, digits_batch: dict) -> None:
    own_arch = compose_cfg([f"model={variant}"], tmp_path).model.arch
    if own_arch != "conv" and arch != own_arch:  # the variant fixes its architecture (linear_ae: mlp, no hidden)
        pytest.skip(f"{variant} is defined on model/arch={own_arch}")
    model, _ = make(variant, arch, tmp_path)
    model.eval()
    x = digits_batch["x"][:10]
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (10, LATENT)
        assert model.decode(z).shape == x.shape and model.reconstruct(x).shape == x.shape
        assert model.interpolate(x[:2], x[2:4], steps=5).shape == (2, 5, *x.shape[1:])
        if not model.bottleneck.has_prior:
            model.fit_density(model.encode(digits_batch["x"]))
        samples = model.sample(7)
    assert samples.shape == (7, *x.shape[1:]) and torch.isfinite(samples).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_terms_are_finite_scalars_with_gradients(variant: str, tmp_path: Path, digits_batch: dict) -> None:
    model, cfg = make(variant, "mlp", tmp_path)
    loss, logs = model.compute_loss(digits_batch, "train")
    emitted = {*model.bottleneck.terms, *model.penalties}
    assert set(cfg.model.loss_weights) <= emitted, "every configured weight names an emitted term"
    for name in [n for n in emitted if n in logs]:
        assert logs[name].ndim == 0 and math.isfinite(float(logs[name])), name
    assert loss.ndim == 0 and math.isfinite(float(loss))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_steps_lower_the_loss(variant: str, tmp_path: Path, digits_batch: dict) -> None:
    model, _ = make(variant, "mlp", tmp_path)
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer

    def eval_loss() -> float:
        torch.manual_seed(1)  # the same noise draws before and after, so the comparison is of the weights alone
        with torch.no_grad():
            return float(model.compute_loss(digits_batch, "val")[0])

    before = eval_loss()
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model.compute_loss(digits_batch, "train")[0].backward()
        optimizer.step()
    model.eval()
    assert eval_loss() < before


@pytest.mark.parametrize("variant", VARIANTS)
def test_trains_validates_and_tests_through_lightning(variant: str, tmp_path: Path) -> None:
    """A few real Trainer steps per variant: catches what only the loops do (no_grad/inference mode, callbacks)."""
    from aelab.train import train

    cfg = compose_cfg(["data=digits", f"model={variant}", "model/arch=mlp", f"model.latent_dim={LATENT}", "logger=none",
                       "callbacks.progress=null", "callbacks.embeddings.n=50", "trainer.max_epochs=1",
                       "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"],
                      tmp_path)
    result = train(cfg)
    assert result["state"] == "completed"
    assert all(math.isfinite(result["metrics"][k]) for k in ("val/loss", "test/loss", "test/mse"))
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
