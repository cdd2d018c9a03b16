"""`aelab-eval` rebuilds a model from a checkpoint alone and reproduces the training run's test metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aelab.commands.train import train
from aelab.core.errors import CheckpointError
from aelab.tracking.checkpoint import load_checkpoint
from helpers import FAST, compose_cfg, read_result, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        train(compose_cfg([*FAST, "model=vae", "model/arch=conv", "logger=none", "trainer.max_epochs=2"], run))
    return run


@pytest.mark.slow
def test_eval_reproduces_test_metrics(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "best.ckpt"
    out = run_cli("aelab-eval", [f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}", "seed=0"])
    assert out.returncode == 0, out.stderr[-2000:]
    evaluated, trained_metrics = read_result(tmp_path)["metrics"], read_result(trained)["metrics"]
    # deterministic metrics match exactly; the ELBO draws z, so it matches only because the seed is the same
    for key in ("test/mse", "test/psnr", "test/ssim", "test/kl"):
        assert evaluated[key] == pytest.approx(trained_metrics[key], rel=1e-6)
    assert "test/mse" in out.stdout


@pytest.mark.slow
def test_open_run_gives_the_checkpoints_model_and_its_recorded_test_mse(trained: Path) -> None:
    """open_run on the run folder and on best.ckpt: the model rebuilt by hand from the file (same outputs), the
    stored config and apply state, the run's record, and the test MSE that training recorded."""
    from hydra.utils import instantiate

    from aelab.tracking.trained import open_run

    best = trained / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    reference = instantiate(ckpt["aelab_config"]["model"])
    reference.load_state_dict(ckpt["state_dict"])
    by_folder, by_file = open_run(trained), open_run(best)
    assert by_folder.checkpoint == best and by_file.checkpoint == best
    data = by_folder.datamodule()
    test = data.fixed_batch("test", len(data.split("test")))
    with torch.no_grad():
        expected = reference.eval().reconstruct(test["x"])
        outputs = [run.model.reconstruct(test["x"]) for run in (by_folder, by_file)]
    assert all(torch.equal(out, expected) for out in outputs) and not by_folder.model.training
    assert by_folder.config == ckpt["aelab_config"] and by_folder.task == "reconstruct"
    assert by_folder.apply_state["preprocessing"] == ckpt["aelab_apply"]["preprocessing"]
    assert by_folder.record == read_result(trained)
    mse = float((expected - test["target"]).pow(2).mean())
    assert mse == pytest.approx(read_result(trained)["metrics"]["test/mse"], rel=1e-5)
    last = open_run(trained / "checkpoints" / "last.ckpt")
    assert last.apply_state is None and last.record == by_folder.record  # last.ckpt: weights, no apply state
    with pytest.raises(CheckpointError, match="has no checkpoints/best.ckpt or checkpoints/last.ckpt"):
        open_run(trained / "checkpoints")


@pytest.mark.slow
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


@pytest.mark.slow
def test_training_from_a_checkpoint_of_another_variant_is_refused(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "last.ckpt"
    out = run_cli("aelab-train", [*FAST, "model=ae", "model.latent_dim=5", "logger=none", f"ckpt_path={ckpt}",
                                  f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = next(l for l in (out.stdout + out.stderr).splitlines() if l.startswith("error:"))
    assert "does not fit this model" in line and "name: checkpoint 'vae', config 'ae'" in line
    assert "latent_dim: checkpoint 16, config 5" in line
    assert not tmp_path.exists()  # refused before the run began: no folder left behind
