"""`trainer=ddp_cpu` through the real CLI: two gloo processes, one run folder and W&B run, sharded data, exact eval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from aelab.core.build import build
from aelab.data.base import EpochBatchSampler, example_order
from helpers import FAST, compose_cfg, read_result, run_cli

WORLD, BATCH, EPOCHS = 2, 64, 2
# 359 test examples: shards of 180 and 179, so rank 0 runs 2 test batches of at most 179 and rank 1 runs one
ARGS = [*FAST, "trainer=ddp_cpu", "logger=wandb", "model.latent_dim=4", f"trainer.max_epochs={EPOCHS}",
        f"data.batch_size={BATCH}", "data.eval_batch_size=179"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One DDP run with the default run-folder pattern under a fresh log dir; its folder and stdout."""
    log_dir = tmp_path_factory.mktemp("outputs")
    out = run_cli("aelab-train", [*ARGS, f"paths.log_dir={log_dir}"])
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list(log_dir.glob("runs/*/*"))
    assert len(runs) == 1, runs  # rank 1 ran in rank 0's folder, not in one of its own
    return runs[0], out.stdout


@pytest.mark.slow
def test_one_record_one_table_written_by_rank_zero(ddp_run: tuple[Path, str]) -> None:
    run, stdout = ddp_run
    record = read_result(run)
    assert record["state"] == "completed" and record["attempts"] == 1 and record["resumed_from"] is None
    assert all(math.isfinite(v) for v in record["metrics"].values())
    assert {"train/loss", "val/mse", "test/mse", "test/psnr", "test/ssim"} <= set(record["metrics"])
    assert stdout.count("state: completed") == 1  # rank 1 prints no table
    assert "MEMBER: 2/2" in (run / "train.log").read_text()  # both ranks really ran
    assert {"recon_epoch001.png", "latent_pca.png", "samples.png"} <= {p.name for p in run.glob("*.png")}


@pytest.mark.slow
def test_one_offline_wandb_run(ddp_run: tuple[Path, str]) -> None:
    run, _ = ddp_run
    wandb_runs = list((run / "wandb").glob("*run-*"))
    assert len(wandb_runs) == 1 and wandb_runs[0].name.startswith("offline-run-")
    assert read_result(run)["wandb_dir"] == str(wandb_runs[0])
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(wandb_runs[0])])
    data = json.loads(out.stdout)
    assert data["state"] == "finished" and data["exit_code"] == 0
    assert data["summary"]["trainer/global_step"] == expected_steps()


def expected_steps() -> int:
    """Optimizer steps of the whole run: each step consumes WORLD x BATCH training examples."""
    data = build(compose_cfg(["data=digits"]).data)
    data.setup()
    return math.ceil(len(data.train_set) / (WORLD * BATCH)) * EPOCHS


@pytest.mark.slow
def test_steps_per_epoch_follow_the_global_batch(ddp_run: tuple[Path, str]) -> None:
    last = torch.load(ddp_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == expected_steps() == 20  # 1222 examples: 10 steps of 2 x 64, not 20 of 64


@pytest.mark.slow
def test_test_metrics_equal_a_single_process_evaluation(ddp_run: tuple[Path, str], tmp_path: Path) -> None:
    """Disjoint unpadded shards: the synced test metrics are those of one process on the whole test set."""
    run, _ = ddp_run
    out = run_cli("aelab-eval", [f"ckpt_path={read_result(run)['best_checkpoint']}", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-2000:]
    single, ddp = read_result(tmp_path)["metrics"], read_result(run)["metrics"]
    for key in ("test/loss", "test/mse", "test/psnr", "test/ssim"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-6), key


@pytest.mark.slow
def test_ddp_in_a_multirun_is_refused(tmp_path: Path) -> None:
    """Lightning would re-run `-m ...` for rank 1 and start the sweep again: the job fails before fitting."""
    out = run_cli("aelab-train", ["-m", *FAST, "trainer=ddp_cpu", "logger=none", "model/arch=mlp",
                                  f"hydra.sweep.dir={tmp_path}"])
    assert out.returncode == 1
    record = read_result(tmp_path / "0")
    assert record["state"] == "failed" and "not in a multirun" in record["error"]


def shards(n: int, shuffle: bool, epoch: int = 0) -> list[list[int]]:
    """The examples each of WORLD ranks visits in one epoch of a dataset of n examples."""
    data = TensorDataset(torch.zeros(n))
    order = []
    for rank in range(WORLD):
        batches = EpochBatchSampler(example_order(data, shuffle, {"num_replicas": WORLD, "rank": rank}), 4, False)
        batches.set_epoch(epoch)
        order.append([i for batch in batches for i in batch])
    return order


def test_training_shards_are_disjoint_equal_and_reshuffled_each_epoch() -> None:
    a, b = shards(11, shuffle=True)
    assert len(a) == len(b) == 6 and set(a) | set(b) == set(range(11))  # one example repeated to even the ranks
    assert len(set(a) & set(b)) <= 1
    assert shards(11, shuffle=True, epoch=1) != [a, b]


def test_evaluation_shards_cover_each_example_once() -> None:
    a, b = shards(11, shuffle=False)
    assert sorted(a + b) == list(range(11))
