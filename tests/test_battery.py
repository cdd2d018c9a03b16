"""Bad input through the real CLI: one clear error line, a non-zero exit, no traceback, nothing marked completed."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import pytest

from conftest import FAST, run_cli

QUICK = [*FAST, "model/arch=mlp", "logger=none", "trainer.max_epochs=1", "callbacks.embeddings=null",
         "callbacks.samples=null", "callbacks.reconstructions=null", "eval=none"]


def fails_cleanly(args: list[str], expect: str, run: Path, command: str = "aelab-train") -> str:
    """Run the CLI; assert exit != 0, no traceback, `expect` on one output line, no completed record; that line."""
    out = run_cli(command, [*args, f"hydra.run.dir={run}"], env={"HYDRA_FULL_ERROR": ""})
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if expect in line]
    assert lines, f"{expect!r} not in:\n{text[-3000:]}"
    result = run / "result.json"
    assert not result.is_file() or json.loads(result.read_text())["state"] != "completed"
    return lines[0]


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1-epoch vae checkpoint (latent 3) on digits."""
    run = tmp_path_factory.mktemp("vae")
    out = run_cli("aelab-train", [*QUICK, "model=vae", "model.latent_dim=3", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-2000:]
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "abc"])
def test_latent_dim_must_be_a_positive_integer(value: str, tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, f"model.latent_dim={value}"], "model.latent_dim", tmp_path)
    assert "positive integer" in line or "type" in line.lower()


@pytest.mark.parametrize("group, bad, a_choice", [("model", "vea", "vae"), ("data", "fmnist", "fashion_mnist"),
                                                  ("model/arch", "cnn", "conv"), ("task", "denoising", "denoise")])
def test_unknown_choice_lists_the_choices(group: str, bad: str, a_choice: str, tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, f"{group}={bad}"], f"unknown {group} '{bad}'", tmp_path)
    assert a_choice in line.split("choose one of:")[1]


def test_input_shape_the_architecture_cannot_take(tmp_path: Path) -> None:
    fails_cleanly([*FAST, "logger=none", "model/arch=conv", "model.encoder.channels=[8,16,32,64]"], "too many", tmp_path)


def test_loss_weight_naming_no_term(tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, "model=vae", "+model.loss_weights.klx=1.0"], "loss_weights", tmp_path)
    assert "klx" in line and "kl" in line


def test_missing_dataset_file(tmp_path: Path) -> None:
    args = ["data=fashion_mnist", f"data.root={tmp_path / 'empty'}", "data.system_dirs=[]", "data.download=false"]
    fails_cleanly([*QUICK[1:], *args], "make data", tmp_path / "run")


def test_corrupt_dataset_file(tmp_path: Path) -> None:
    root = tmp_path / "fmnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (root / name).write_bytes(gzip.compress(b"not an idx file"))
    args = ["data=fashion_mnist", f"data.root={root}", "data.system_dirs=[]", "data.download=false"]
    fails_cleanly([*QUICK[1:], *args], "is corrupt", tmp_path / "run")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_truncated_or_garbage_checkpoint(damage: str, vae_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    data = vae_checkpoint.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    for run, args, command in ((tmp_path / "eval", [f"ckpt_path={bad}"], "aelab-eval"),
                               (tmp_path / "train", [*QUICK, "model=vae", "model.latent_dim=3", f"ckpt_path={bad}"], "aelab-train")):
        line = fails_cleanly(args, str(bad), run, command=command)
        assert damage != "truncated" or "is truncated or not a PyTorch checkpoint" in line
        assert json.loads((run / "result.json").read_text())["state"] == "failed"


@pytest.mark.parametrize("other", [["model=ae", "model.latent_dim=3"], ["model=vae", "model.latent_dim=5"]])
def test_checkpoint_of_another_variant_or_latent_size(other: list[str], vae_checkpoint: Path, tmp_path: Path) -> None:
    fails_cleanly([*QUICK, *other, f"ckpt_path={vae_checkpoint}"], "does not fit", tmp_path)


def test_checkpoint_with_a_pickle_payload_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload()}))
    fails_cleanly([f"ckpt_path={evil}"], str(evil), tmp_path / "eval", command="aelab-eval")
    assert not marker.exists()


def test_output_folder_that_cannot_be_written(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    target = locked / "run" if os.geteuid() != 0 else Path("/proc/aelab_run")  # root ignores permissions
    out = run_cli("aelab-train", [*QUICK, f"hydra.run.dir={target}"], env={"HYDRA_FULL_ERROR": ""})
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "Traceback" not in text
    assert [line for line in text.splitlines() if line.startswith("error: cannot write")], text[-2000:]


@pytest.mark.parametrize("content, expect", [("a,b,diagnosis\n1,2,benign\n1,x,malignant\n", "'x' is not a number"),
                                             ("a,b,label\n1,2,benign\n", "diagnosis"),
                                             ("a,b,diagnosis\n1,2\n", "line 2")])
def test_malformed_csv(content: str, expect: str, tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text(content)
    args = ["experiment=breast_cancer_anomaly", f"data.path={table}", "data.shape=[2]", "logger=none",
            "callbacks.progress=null"]
    line = fails_cleanly(args, expect, tmp_path / "run")
    assert str(table) in line or "line" in line
