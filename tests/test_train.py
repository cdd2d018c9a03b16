"""Short real trainings on digits for every variant x architecture; the run folder is checked on disk."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from aelab.commands.train import train
from helpers import FAST, compose_cfg, read_result, run_cli

VARIANTS = [("ae", "mlp"), ("ae", "conv"), ("vae", "mlp"), ("vae", "conv")]


def epoch_losses(run_dir: Path) -> list[float]:
    """train/loss per epoch, read back from the CSV logger's metrics.csv."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [float(r["train/loss"]) for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "arch"), VARIANTS, ids=[f"{m}-{a}" for m, a in VARIANTS])
def test_short_training_lowers_loss(variant: str, arch: str, tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, f"model={variant}", f"model/arch={arch}", "logger=csv", "trainer.max_epochs=4",
                       "callbacks.reconstructions.every_n_epochs=2", "callbacks.embeddings.n=100"], tmp_path)
    result = train(cfg)
    losses = epoch_losses(tmp_path)
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    on_disk = read_result(tmp_path)
    assert on_disk == result and on_disk["state"] == "completed"
    keys = {"val/loss", "val/mse", "val/psnr", "val/ssim", "test/loss", "test/mse", "test/psnr", "test/ssim"}
    if variant == "vae":
        keys |= {"val/elbo", "val/kl", "test/elbo", "test/kl"}
    assert keys <= set(on_disk["metrics"])
    assert all(math.isfinite(v) for v in on_disk["metrics"].values())
    assert 0 < on_disk["metrics"]["test/mse"] < 0.2
    assert 5 < on_disk["metrics"]["test/psnr"] < 40
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.glob("recon_epoch*.png")) == ["recon_epoch001.png", "recon_epoch003.png"]
    assert (tmp_path / "latent_pca.png").is_file()
    assert on_disk["seed"] == 0 and on_disk["versions"]["torch"] and on_disk["wall_time_s"] > 0


@pytest.mark.slow
def test_vae_elbo_is_minus_recon_minus_kl(tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, "model=vae", "model/arch=mlp", "logger=none", "trainer.max_epochs=1"], tmp_path)
    m = train(cfg)["metrics"]
    assert m["test/elbo"] == pytest.approx(-(m["test/recon"] + m["test/kl"]), rel=1e-5)
    assert m["test/loss"] == pytest.approx(m["test/recon"] + m["test/kl"], rel=1e-5)


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path: Path) -> None:
    runs = [train(compose_cfg([*FAST, "model/arch=mlp", "logger=none", "trainer.max_epochs=2"], tmp_path / str(i)))
            for i in range(2)]
    assert runs[0]["metrics"] == runs[1]["metrics"]


@pytest.mark.slow
def test_a_refused_config_writes_nothing(tmp_path: Path) -> None:
    """The model is built before the run record and the claim: a config it refuses leaves no trace in the folder."""
    cfg = compose_cfg([*FAST, "logger=none", "model.encoder.channels=[4,4,4,4,4]"], tmp_path)
    with pytest.raises(Exception, match="too many"):
        train(cfg)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_divergence_stops_the_run_and_names_the_step(tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, "model/arch=mlp", "logger=none", "trainer.max_epochs=30", "model.optimizer.lr=1e12"],
                      tmp_path)
    with pytest.raises(Exception, match=r"non-finite training loss at step \d+ .*non-finite terms: .*loss"):
        train(cfg)
    record = read_result(tmp_path)
    assert record["state"] == "failed" and "DivergenceError" in record["error"]


class Poison(pl.Callback):
    """Turns a weight into NaN at the start of the second epoch: a divergence after a good first epoch."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                next(module.decoder.parameters()).fill_(float("nan"))


@pytest.mark.slow
def test_divergence_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, "model/arch=mlp", "logger=none", "trainer.max_epochs=3", "eval=none",
                       "+callbacks.poison._target_=test_train.Poison"], tmp_path)
    with pytest.raises(Exception, match=r"non-finite training loss at step \d+ \(epoch 1\)"):
        train(cfg)
    assert read_result(tmp_path)["state"] == "failed"
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())


@pytest.mark.slow
def test_gpu_options_run_on_cpu(tmp_path: Path) -> None:
    """trainer=gpu's options (bf16-mixed, channels-last, data moved to the device, torch.compile) on the CPU; the
    checkpoint of the compiled channels-last model evaluates in a plain fp32 model."""
    run = tmp_path / "run"
    args = [*FAST, "trainer=gpu", "trainer.accelerator=cpu", "data.device=cpu", "model.compile=true", "trainer.max_epochs=1",
            "logger=none", "eval=none", "callbacks.embeddings=null", "callbacks.samples=null", "threads=1"]
    out = run_cli("aelab-train", [*args, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    trained = read_result(run)
    assert trained["state"] == "completed"
    out = run_cli("aelab-eval", [f"ckpt_path={trained['best_checkpoint']}", "eval=none", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_result(tmp_path / "eval")["metrics"]["test/mse"] == pytest.approx(trained["metrics"]["test/mse"], rel=0.05)


def val_rows(run_dir: Path) -> dict[int, dict[str, str]]:
    """The validation row of each epoch in the CSV logger's metrics.csv."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return {int(r["epoch"]): r for r in csv.DictReader(f) if r.get("val/mse")}


@pytest.mark.slow
def test_val_ssim_in_the_last_epoch_by_default_every_epoch_on_request(tmp_path: Path) -> None:
    rows = {}
    for mode, extra in (("last", []), ("every", []), ("steps", ["+trainer.max_steps=50"])):
        train(compose_cfg([*FAST, "model/arch=mlp", "logger=csv", "eval=none", "trainer.max_epochs=3", *extra,
                           f"model.val_metrics={'every' if mode == 'every' else 'last'}"], tmp_path / mode))
        rows[mode] = val_rows(tmp_path / mode)
    assert [e for e, r in rows["last"].items() if r["val/ssim"]] == [2]
    assert [e for e, r in rows["every"].items() if r["val/ssim"]] == [0, 1, 2]
    assert len(rows["steps"]) >= 2 and all(r["val/ssim"] for r in rows["steps"].values())  # may stop early: every epoch
    assert rows["last"][2]["val/ssim"] == rows["every"][2]["val/ssim"]  # the same run: only when SSIM is computed differs
    assert [r["val/mse"] for r in rows["last"].values()] == [r["val/mse"] for r in rows["every"].values()]
    assert "val/ssim" in read_result(tmp_path / "last")["metrics"]


def test_progress_bar_hands_on_every_refresh_rate_th_batch_and_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from pytorch_lightning.callbacks import RichProgressBar

    from aelab.callbacks.progress import ProgressBar

    seen: list[int] = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", lambda self, t, m, o, b, i: seen.append(i + 1))
    bar = ProgressBar(refresh_rate=10)
    bar._trainer = SimpleNamespace(num_training_batches=25, max_epochs=1, max_steps=-1)
    for i in range(25):
        bar.on_train_batch_end(bar.trainer, None, None, None, i)
    assert seen == [10, 20, 25]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


STEPS = [*FAST, "model=vae_warmup", "model.schedules.0.steps=30", "model/arch=mlp", "logger=none", "eval=none"]


@pytest.mark.slow
def test_several_steps_per_call_train_exactly_as_one_step_per_call(tmp_path: Path) -> None:
    """The same batches, order, KL warm-up (a schedule by global step) and Adam steps: bit-equal weights."""
    runs = {k: train(compose_cfg([*STEPS, "trainer.max_epochs=2", f"model.steps_per_call={k}"], tmp_path / str(k)))
            for k in (1, 3)}
    one, three = final_weights(tmp_path / "1"), final_weights(tmp_path / "3")
    assert one.keys() == three.keys() and all(torch.equal(v, three[k]) for k, v in one.items())
    assert runs[1]["metrics"] == runs[3]["metrics"]
    assert torch.load(tmp_path / "3" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * 20


@pytest.mark.slow
def test_several_steps_per_call_resume_exactly(tmp_path: Path) -> None:
    whole = train(compose_cfg([*STEPS, "trainer.max_epochs=2", "model.steps_per_call=4"], tmp_path / "whole"))
    train(compose_cfg([*STEPS, "trainer.max_epochs=1", "model.steps_per_call=4"], tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(compose_cfg([*STEPS, "trainer.max_epochs=2", "model.steps_per_call=4", f"ckpt_path={last}"],
                                tmp_path / "resumed"))
    assert resumed["metrics"] == whole["metrics"]
    ref, got = final_weights(tmp_path / "whole"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(v, got[k]) for k, v in ref.items())


def test_steps_per_call_refuses_a_scheduler_and_non_positive_counts(tmp_path: Path) -> None:
    from aelab.core.build import build
    from aelab.core.errors import ConfigError

    base = ["data=digits", "model/arch=mlp"]
    with pytest.raises(ConfigError, match="steps_per_call must be a positive integer"):
        build(compose_cfg([*base, "model.steps_per_call=0"], tmp_path).model)
    plateau = ["+model.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau", "+model.scheduler._partial_=true"]
    with pytest.raises(ConfigError, match="does not step a model.scheduler"):
        build(compose_cfg([*base, "model.steps_per_call=2", *plateau], tmp_path).model)
