"""`aelab-eval` rebuilds a model from a checkpoint alone and reproduces the training run's test metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aelab.tracking.checkpoint import load_checkpoint
from aelab.core.errors import CheckpointError
from aelab.commands.train import train
from conftest import FAST, compose_cfg, read_result, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        train(compose_cfg([*FAST, "model=vae", "model/arch=conv", "logger=none", "trainer.max_epochs=2"], run))
    return run


def test_eval_reproduces_test_metrics(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "best.ckpt"
    out = run_cli("aelab-eval", [f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}", "seed=0"])
    assert out.returncode == 0, out.stderr[-2000:]
    evaluated, trained_metrics = read_result(tmp_path)["metrics"], read_result(trained)["metrics"]
    # deterministic metrics match exactly; the ELBO draws z, so it matches only because the seed is the same
    for key in ("test/mse", "test/psnr", "test/ssim", "test/kl"):
        assert evaluated[key] == pytest.approx(trained_metrics[key], rel=1e-6)
    assert "test/mse" in out.stdout


def test_checkpoint_loads_with_weights_only(trained: Path) -> None:
    ckpt = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    assert ckpt["aelab_config"]["model"]["name"] == "vae"


def test_checkpoint_with_pickle_payload_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "aelab_config": {}, "x": Payload()}, bad)
    with pytest.raises(CheckpointError, match="does not run code from a checkpoint"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_training_from_a_checkpoint_of_another_variant_is_refused(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "last.ckpt"
    out = run_cli("aelab-train", [*FAST, "model=ae", "model.latent_dim=5", "logger=none", f"ckpt_path={ckpt}",
                                  f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = next(l for l in (out.stdout + out.stderr).splitlines() if l.startswith("error:"))
    assert "does not fit this model" in line and "name: checkpoint 'vae', config 'ae'" in line
    assert "latent_dim: checkpoint 16, config 5" in line
    assert not tmp_path.exists()  # refused before the run began: no folder left behind
