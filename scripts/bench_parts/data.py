"""Part 2 of `make bench`: the in-memory train loader against torchvision's FashionMNIST + ToTensor + DataLoader."""

from __future__ import annotations

import gzip
import tempfile
import time
from pathlib import Path
from statistics import median

from torch.utils.data import DataLoader

from aelab.data.base import InMemoryDataModule
from bench_parts.common import FMNIST_DIR, Part, Settings, log


def aelab_loader(datamodule: InMemoryDataModule, epochs: int) -> tuple[float, int]:
    """Samples/s of aelab's train loader over whole epochs (median) and the samples per epoch."""
    loader, times, samples = datamodule.train_dataloader(), [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        samples = sum(len(batch["x"]) for batch in loader)
        times.append(time.perf_counter() - start)
    return samples / median(times), samples


def raw_copy(folder: Path) -> Path:
    """torchvision's layout, <root>/FashionMNIST/raw/<name without .gz>, gunzipped from the Debian files."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in sorted(FMNIST_DIR.glob("*-ubyte.gz")):
        (raw / archive.stem).write_bytes(gzip.decompress(archive.read_bytes()))
    return folder


def torchvision_loader(root: Path, max_batches: int | None) -> tuple[float, int, float]:
    """torchvision's default FashionMNIST + ToTensor + DataLoader(128, shuffle): samples/s, samples, init seconds."""
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    start = time.perf_counter()
    loader = DataLoader(FashionMNIST(str(root), train=True, transform=ToTensor()), batch_size=128, shuffle=True)
    init_s, samples, start = time.perf_counter() - start, 0, time.perf_counter()
    for i, (x, _) in enumerate(loader):
        samples += len(x)
        if max_batches is not None and i + 1 >= max_batches:
            break
    return samples / (time.perf_counter() - start), samples, init_s


def part_data(s: Settings, datamodule: InMemoryDataModule, load_s: float) -> Part:
    """Part 2: aelab's in-memory loader against torchvision's default one."""
    log.info("part 2: aelab loader (%d epochs), torchvision loader", s.loader_epochs)
    ae_rate, ae_samples = aelab_loader(datamodule, s.loader_epochs)
    with tempfile.TemporaryDirectory(prefix="bench_fmnist_") as tmp:
        tv_rate, tv_samples, tv_init = torchvision_loader(raw_copy(Path(tmp)), s.torchvision_batches)
    rows = [["aelab train_dataloader()", ae_samples, ae_rate, load_s],
            ["torchvision FashionMNIST + ToTensor + DataLoader", tv_samples, tv_rate, tv_init],
            ["speed-up aelab/torchvision", "", ae_rate / tv_rate, ""]]
    return Part(
        title="2. Data pipeline: one epoch of batches of 128, num_workers=0",
        columns=["loader", "samples timed", "samples/s", "set-up s"], rows=rows,
        target="aelab >= 10x torchvision", met=ae_rate / tv_rate >= 10,
        notes=[f"aelab: the 55,000-image train split, median of {s.loader_epochs} shuffled epochs; set-up = "
               "FashionMNISTDataModule.setup() (gunzip, MD5 check, float conversion, split).",
               "torchvision: train=True (60,000 images), shuffle=True, "
               + ("one whole epoch" if s.torchvision_batches is None else f"the first {s.torchvision_batches} batches")
               + "; set-up = the dataset's constructor on the gunzipped raw files."])
