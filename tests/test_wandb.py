"""A real offline W&B run from the CLI, read back with `wandb leet inspect --summary --json`."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import pytest

from helpers import FAST, read_result, run_cli, wandb_summary

pytestmark = pytest.mark.slow  # every test here starts a CLI process or a training run

LATENT = 6


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One CLI run with no credentials at all (HOME without .netrc, no WANDB_MODE): it must fall back to offline."""
    run = tmp_path_factory.mktemp("run")
    home = tmp_path_factory.mktemp("home")
    env = {"HOME": str(home), "WANDB_MODE": "", "WANDB_API_KEY": "", "WANDB_DIR": ""}
    out = run_cli("aelab-train", [*FAST, "model=vae", "model/arch=mlp", f"model.latent_dim={LATENT}",
                                  "trainer.max_epochs=2", "callbacks.embeddings.n=50", f"hydra.run.dir={run}"], env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return run, out.stdout


def test_offline_run_lives_in_the_run_folder(wandb_run: tuple[Path, str]) -> None:
    run, stdout = wandb_run
    wandb_dir = Path(read_result(run)["wandb_dir"])
    assert wandb_dir.parent == run / "wandb" and wandb_dir.name.startswith("offline-run-")
    assert list(wandb_dir.glob("run-*.wandb"))
    assert f"wandb leet {run / 'wandb'}" in stdout and f"wandb sync {wandb_dir}" in stdout


def test_config_is_logged_as_nested_keys(wandb_run: tuple[Path, str]) -> None:
    data = wandb_summary(wandb_run[0])
    assert data["state"] == "finished" and data["exit_code"] == 0
    config = data["config"]
    assert config["model"]["name"] == "vae" and config["model"]["latent_dim"] == LATENT
    assert config["model"]["arch"] == "mlp" and config["data"]["name"] == "digits" and config["seed"] == 0


def test_metrics_image_and_table_are_logged(wandb_run: tuple[Path, str]) -> None:
    run = wandb_run[0]
    summary = wandb_summary(run)["summary"]
    result = read_result(run)["metrics"]
    best = {"val/mse": "min", "val/psnr": "max", "val/ssim": "max", "val/elbo": "max"}  # defined summaries
    for key, how in best.items():
        assert math.isfinite(summary[key][how])
    for key in ("val/kl", "test/mse", "test/elbo"):
        assert math.isfinite(summary[key])
    assert summary["val/mse"]["min"] <= result["val/mse"] + 1e-9  # the best epoch, the last one at most
    assert summary["test/mse"] == pytest.approx(result["test/mse"], rel=1e-6)
    image = summary["val/reconstructions"]
    assert image["_type"] == "images/separated" and image["count"] == 1
    assert image["height"] == 2 * 8 + 3  # two rows of 8x8 images with 1-pixel padding
    assert summary["val/latent_pca"]["_type"] == "images/separated"
    table = summary["val/embeddings"]
    assert table["_type"] == "table-file" and table["nrows"] == 50 and table["ncols"] == 2 + LATENT
    stored = json.loads((Path(read_result(run)["wandb_dir"]) / "files" / table["path"]).read_text())
    assert stored["columns"] == ["label", "image", *[f"z{i}" for i in range(LATENT)]]
    assert {row[0] for row in stored["data"]} <= set(range(10))


def test_unreachable_server_falls_back_to_offline(tmp_path: Path) -> None:
    """Credentials set, WANDB_BASE_URL at a closed local port: offline within seconds, data kept for `wandb sync`."""
    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "a" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}",
           "HOME": str(tmp_path)}
    start = time.time()
    out = run_cli("aelab-train", [*FAST, "model/arch=mlp", "trainer.max_epochs=1", "eval=none",
                                  "callbacks.embeddings=null", f"hydra.run.dir={tmp_path / 'run'}"], env=env)
    elapsed = time.time() - start
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cannot be reached, logging offline" in out.stdout + out.stderr
    result = read_result(tmp_path / "run")
    assert result["state"] == "completed" and Path(result["wandb_dir"]).name.startswith("offline-run-")
    summary = wandb_summary(tmp_path / "run")["summary"]
    assert summary["test/mse"] == pytest.approx(result["metrics"]["test/mse"])
    assert elapsed < 120  # the whole run, not 90 s of W&B retries on top of it
