"""Bad input through the real CLI: one clear error line, a non-zero exit, no traceback, nothing marked completed."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import pytest

from helpers import FAST, LIBRARY_WORDS, fails_cleanly, run_cli

QUICK = [*FAST, "model/arch=mlp", "logger=none", "trainer.max_epochs=1", "callbacks.embeddings=null",
         "callbacks.samples=null", "callbacks.reconstructions=null", "eval=none"]


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1-epoch vae checkpoint (latent 3) on digits."""
    run = tmp_path_factory.mktemp("vae")
    out = run_cli("aelab-train", [*QUICK, "model=vae", "model.latent_dim=3", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-2000:]
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "abc"])
@pytest.mark.slow
def test_latent_dim_must_be_a_positive_integer(value: str, tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, f"model.latent_dim={value}"], "model.latent_dim", tmp_path)
    assert "positive integer" in line or "type" in line.lower()


@pytest.mark.parametrize("group, bad, a_choice", [("model", "vea", "vae"), ("data", "fmnist", "fashion_mnist"),
                                                  ("model/arch", "cnn", "conv"), ("task", "denoising", "denoise")])
@pytest.mark.slow
def test_unknown_choice_lists_the_choices(group: str, bad: str, a_choice: str, tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, f"{group}={bad}"], f"unknown {group} '{bad}'", tmp_path)
    assert a_choice in line.split("choose one of:")[1]


@pytest.mark.slow
def test_input_shape_the_architecture_cannot_take(tmp_path: Path) -> None:
    fails_cleanly([*FAST, "logger=none", "model/arch=conv", "model.encoder.channels=[8,16,32,64]"], "too many", tmp_path)


@pytest.mark.slow
def test_loss_weight_naming_no_term(tmp_path: Path) -> None:
    line = fails_cleanly([*QUICK, "model=vae", "+model.loss_weights.klx=1.0"], "loss_weights", tmp_path)
    assert "klx" in line and "kl" in line


@pytest.mark.slow
def test_missing_dataset_file(tmp_path: Path) -> None:
    args = ["data=fashion_mnist", f"data.root={tmp_path / 'empty'}", "data.system_dirs=[]", "data.download=false"]
    fails_cleanly([*QUICK[1:], *args], "make data", tmp_path / "run")


@pytest.mark.slow
def test_corrupt_dataset_file(tmp_path: Path) -> None:
    root = tmp_path / "fmnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (root / name).write_bytes(gzip.compress(b"not an idx file"))
    args = ["data=fashion_mnist", f"data.root={root}", "data.system_dirs=[]", "data.download=false"]
    fails_cleanly([*QUICK[1:], *args], "is corrupt", tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_truncated_or_garbage_checkpoint(damage: str, vae_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    data = vae_checkpoint.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    for run, args, command in ((tmp_path / "eval", [f"ckpt_path={bad}"], "aelab-eval"),
                               (tmp_path / "train", [*QUICK, "model=vae", "model.latent_dim=3", f"ckpt_path={bad}"], "aelab-train")):
        line = fails_cleanly(args, str(bad), run, command=command)
        assert "is a truncated or damaged zip archive" in line if damage == "truncated" else "not a checkpoint" in line
        assert not run.exists()  # refused before anything was written: no run folder left behind


@pytest.mark.slow
@pytest.mark.parametrize("other", [["model=ae", "model.latent_dim=3"], ["model=vae", "model.latent_dim=5"]])
def test_checkpoint_of_another_variant_or_latent_size(other: list[str], vae_checkpoint: Path, tmp_path: Path) -> None:
    fails_cleanly([*QUICK, *other, f"ckpt_path={vae_checkpoint}"], "does not fit", tmp_path)


@pytest.mark.slow
def test_checkpoint_with_a_pickle_payload_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload()}))
    fails_cleanly([f"ckpt_path={evil}"], str(evil), tmp_path / "eval", command="aelab-eval")
    assert not marker.exists()


@pytest.mark.slow
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
@pytest.mark.slow
def test_malformed_csv(content: str, expect: str, tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text(content)
    args = ["experiment=breast_cancer_anomaly", f"data.path={table}", "data.shape=[2]", "logger=none",
            "callbacks.progress=null"]
    line = fails_cleanly(args, expect, tmp_path / "run")
    assert str(table) in line or "line" in line


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


def file_of_kind(kind: str, folder: Path, real: Path) -> Path:
    """A file that is not an aelab checkpoint: text, a pickle, another program's torch file, a truncated copy."""
    import torch

    path = folder / f"{kind}.ckpt"
    if kind == "text":
        path.write_text("epoch,loss\n1,0.5\n")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": {}}))
    elif kind == "other_program":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, path)
    else:
        path.write_bytes(real.read_bytes()[:5000])
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind, expect", [("text", "is a text file, not a checkpoint"),
                                          ("pickle", "is a Python pickle"),
                                          ("other_program", "checkpoint of another program"),
                                          ("truncated", "truncated or damaged")])
def test_what_is_not_an_aelab_checkpoint_is_named(kind: str, expect: str, vae_checkpoint: Path, tmp_path: Path) -> None:
    from aelab.core.errors import CheckpointError
    from aelab.tracking.checkpoint import load_checkpoint

    path = file_of_kind(kind, tmp_path, vae_checkpoint)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert expect in str(caught.value) and str(path) in str(caught.value)
    assert not any(word in str(caught.value) for word in LIBRARY_WORDS)


SECONDS_TO_ERROR: dict[str, float] = {}


@pytest.mark.parametrize("case, command, args, expect", [
    ("latent_dim", "aelab-train", ["model.latent_dim=-4"], "model.latent_dim must be a positive integer"),
    ("loss_weight", "aelab-train", ["model=vae", "+model.loss_weights.klx=1.0"], "klx"),
    ("text_checkpoint", "aelab-apply", ["ckpt_path={text}", "input=x.png", "output={out}/applied"], "is a text file"),
    ("text_checkpoint", "aelab-eval", ["ckpt_path={text}"], "is a text file"),
    ("missing_output", "aelab-apply", ["ckpt_path={text}"], "aelab-apply needs output=<value>"),
    ("misspelt_group", "aelab-train", ["modle=vae"], "'modle' (did you mean model?)"),
    ("misspelt_key", "aelab-train", ["model.latnt_dim=3"], "did you mean model.latent_dim?"),
])
@pytest.mark.slow
def test_config_errors_are_one_line_and_leave_outputs_as_before(case: str, command: str, args: list[str], expect: str,
                                                               tmp_path: Path) -> None:
    """One `error:` line, exit 1, and outputs/ byte for byte as before; the time to the error is reported."""
    import time

    outputs = tmp_path / "outputs"
    (outputs / "runs" / "earlier").mkdir(parents=True)
    (outputs / "runs" / "earlier" / "result.json").write_text('{"state": "completed"}')
    before = snapshot(outputs)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    extra = [QUICK[0], "logger=wandb"] if command == "aelab-train" else []  # W&B on: it must not start
    full = [*extra, *[a.format(text=text, out=outputs) for a in args], f"paths.log_dir={outputs}"]
    start = time.perf_counter()
    out = run_cli(command, full, env={"HYDRA_FULL_ERROR": ""}, cwd=tmp_path)
    SECONDS_TO_ERROR[f"{command} {case}"] = time.perf_counter() - start
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 1 and lines and lines[-1].startswith("error:") and expect in lines[-1], lines[-20:]
    assert not any(line.startswith("error:") for line in lines[:-1]), lines
    assert not any(word in out.stdout + out.stderr for word in [*LIBRARY_WORDS, "Traceback", "wandb sync"]), lines
    assert snapshot(outputs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ckpt", "outputs"]  # nothing else made
