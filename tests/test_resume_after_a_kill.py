"""Crash safety: a run killed with SIGKILL mid-training resumes from last.ckpt and ends with the same metrics as a
run that was never interrupted (CPU, fixed seed). Same seed, same metrics: tests/test_train.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import BIN, FAST, ROOT, read_result, run_cli

pytestmark = pytest.mark.slow  # every test here starts a CLI process or a training run

# a VAE, so that the resumed run must also draw the same posterior noise; small batches: many steps per epoch
ARGS = [*FAST, "model=vae", "model/arch=mlp", "model.latent_dim=4", "data.batch_size=8", "trainer.max_epochs=4",
        "logger=csv", "eval=none", "callbacks.embeddings=null", "callbacks.samples=null", "threads=1"]


def finished(run: Path, extra: list[str] = ()) -> dict:
    out = run_cli("aelab-train", [*ARGS, *extra, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return read_result(run)


# factor_vae: a discriminator with its own optimizer, trained in turn with the autoencoder (manual optimisation)
@pytest.mark.parametrize("variant", ["vae", "factor_vae"])
def test_killed_run_resumes_to_the_same_metrics(variant: str, tmp_path: Path) -> None:
    extra = [f"model={variant}"]
    unbroken = finished(tmp_path / "unbroken", extra)
    run = tmp_path / "killed"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([str(BIN / "aelab-train"), *ARGS, *extra, f"hydra.run.dir={run}"], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, deadline = run / "checkpoints" / "last.ckpt", time.time() + 300
    while not last.is_file() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_result(run)["state"] == "running"  # killed: never marked completed
    assert torch.load(last, weights_only=True)["epoch"] < 3  # killed before the last epoch was saved

    resumed = finished(run, extra)
    assert resumed["attempts"] == 2 and resumed["resumed_from"].endswith("checkpoints/last.ckpt")
    final = {k: v for k, v in unbroken["metrics"].items() if k.startswith(("val/", "test/"))}
    assert final and {k: resumed["metrics"][k] for k in final} == pytest.approx(final, rel=1e-6)

