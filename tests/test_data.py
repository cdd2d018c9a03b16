"""Datamodules: seeded disjoint splits, batches by indexing, Fashion-MNIST files verified by MD5."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from aelab.core.build import build
from aelab.core.errors import DataError
from aelab.data.fashion_mnist import DEBIAN_DIR, RAW_MD5, FashionMNISTDataModule
from helpers import compose_cfg, run_cli

HAS_DEBIAN = all((Path(DEBIAN_DIR) / n).is_file() for n in RAW_MD5)


def digits(tmp_path: Path, *overrides: str):
    data = build(compose_cfg(["data=digits", *overrides], tmp_path).data)
    data.setup()
    return data


def test_digits_splits_are_disjoint_complete_and_seeded(tmp_path: Path) -> None:
    a, b, c = digits(tmp_path), digits(tmp_path), digits(tmp_path, "data.split_seed=1")
    sizes = (len(a.train_set), len(a.val_set), len(a.test_set))
    assert sum(sizes) == 1797 and sizes[2] == round(0.2 * 1797)
    rows = torch.cat([a.train_set.x, a.val_set.x, a.test_set.x]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == len(torch.unique(torch.cat([rows]), dim=0))
    assert torch.equal(a.val_set.x, b.val_set.x) and not torch.equal(a.val_set.x, c.val_set.x)
    assert 0.0 <= float(rows.min()) and float(rows.max()) == 1.0


def test_train_loader_visits_every_example_once_per_epoch(tmp_path: Path) -> None:
    data = digits(tmp_path, "data.batch_size=100")
    batches = list(data.train_dataloader())
    assert set(batches[0]) == {"x", "target", "y"} and batches[0]["x"].shape == (100, 1, 8, 8)
    seen = torch.cat([b["x"] for b in batches]).flatten(1)
    assert len(seen) == len(data.train_set)
    assert torch.equal(seen.sum(0), data.train_set.x.flatten(1).sum(0)) or torch.allclose(
        seen.sum(0), data.train_set.x.flatten(1).sum(0))
    assert torch.equal(batches[0]["x"], batches[0]["target"])


def test_grouped_train_batches_are_the_batches_in_order(tmp_path: Path) -> None:
    """model.steps_per_call=K: each item of the train loader is K consecutive batches of the same epoch order."""
    data = digits(tmp_path, "data.batch_size=64")
    single = torch.cat([b["x"] for b in data.train_dataloader()])
    data.batches_per_call = 3
    grouped = list(data.train_dataloader())
    assert [len(b["x"]) for b in grouped] == [192] * 6 + [len(data.train_set) - 6 * 192]
    assert torch.equal(torch.cat([b["x"] for b in grouped]), single)


@pytest.mark.skipif(not HAS_DEBIAN, reason="needs the Debian package dataset-fashion-mnist (`make data`)")
def test_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    data = build(compose_cfg(["data=fashion_mnist", f"data.root={tmp_path / 'empty'}"], tmp_path).data)
    data.setup()
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (55000, 5000, 10000)
    assert data.train_set.x.shape[1:] == (1, 28, 28) and data.train_set.x.dtype == torch.float32
    assert torch.bincount(data.test_set.y).tolist() == [1000] * 10  # the official test set is balanced


def fake_root(tmp_path: Path) -> Path:
    """A data.root holding copies of the real files (so the root is preferred over the system folder)."""
    root = tmp_path / "fm"
    root.mkdir()
    for name in RAW_MD5:
        shutil.copy(Path(DEBIAN_DIR) / name, root / name)
    return root


@pytest.mark.skipif(not HAS_DEBIAN, reason="needs the Debian package dataset-fashion-mnist (`make data`)")
def test_corrupt_file_is_named(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    raw = bytearray(gzip.decompress((root / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one flipped label
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    module = FashionMNISTDataModule(root=str(root), name="fashion_mnist", shape=[1, 28, 28], num_classes=10)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt \(MD5"):
        module.setup()


@pytest.mark.skipif(not HAS_DEBIAN, reason="needs the Debian package dataset-fashion-mnist (`make data`)")
def test_missing_file_is_named(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    (root / "train-labels-idx1-ubyte.gz").unlink()
    module = FashionMNISTDataModule(root=str(root), name="fashion_mnist", shape=[1, 28, 28], num_classes=10,
                                    system_dirs=[], download=False)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is missing"):
        module.setup()


@pytest.mark.slow
def test_no_data_and_no_network_is_one_clear_line(tmp_path: Path) -> None:
    """With no local copy and downloads off, the CLI fails with one line saying how to get the data."""
    out = run_cli("aelab-train", [f"data.root={tmp_path / 'none'}", "data.system_dirs=[]", "data.download=false",
                                  "logger=none", f"hydra.run.dir={tmp_path / 'run'}"])
    lines = (out.stdout + out.stderr).strip().splitlines()
    errors = [line for line in lines if "ERROR" in line or line.startswith("error:")]
    assert out.returncode == 1 and errors == lines[-1:] and "make data" in errors[0] and "Traceback" not in out.stderr


def test_declared_shape_must_match_the_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has shape \[1, 8, 8\] but data.shape says \[1, 28, 28\]"):
        digits(tmp_path, "data.shape=[1,28,28]")
