"""In-memory datamodule: the whole dataset lives in tensors and batches are cut by indexing.

`binarize` turns [0, 1] intensities into binary images drawn as Bernoulli(intensity), the protocol of likelihood
papers (Burda et al. 2016): `dynamic` draws each training image anew every time it is batched (once per epoch)
while the val/test images are drawn once under `split_seed`; `static` draws every split once.

Under DDP the datamodule shards the data itself (Lightning's sampler injection is off, `use_distributed_sampler:
false`, since it would shard our batches instead of our examples): `data.batch_size` is per process, so one
optimizer step consumes `world_size * batch_size` examples.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from aelab.core.errors import ConfigError, DataError, positive_int
from aelab.data.tasks import Task

log = logging.getLogger(__name__)

BINARIZE = (None, "dynamic", "static")  # data.binarize choices (null: keep the intensities)


@dataclass
class Splits:
    """Raw arrays from a source: images (N, C, H, W) float in [0, 1] or table rows (N, F) float64 as read
    (standardised later by `preprocess`), integer labels (N,). Images may also be uint8 (0..255): they are then
    kept as uint8 (a quarter of the memory) and each batch is made float in [0, 1] (`intensities`)."""

    x_train: torch.Tensor  # train pool, split into train/val with the split seed
    y_train: torch.Tensor
    x_test: torch.Tensor  # the official test set, never used for model selection
    y_test: torch.Tensor
    factors_train: torch.Tensor | None = None  # (N, K) integer generative factors, for disentanglement metrics
    factors_test: torch.Tensor | None = None


class TensorBatches(Dataset):
    """A dataset indexed by a whole batch of indices at once: one gather per batch, no per-sample collate.

    `inputs` holds fixed model inputs (val/test of random tasks); otherwise the task makes them per batch.
    `redraw` makes every gathered target a fresh Bernoulli draw of x (dynamic binarisation).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, task: Task, inputs: torch.Tensor | None = None,
                 factors: torch.Tensor | None = None, redraw: bool = False) -> None:
        self.x, self.y, self.task, self.inputs, self.factors = x, y, task, inputs, factors  # x: the clean data
        self.redraw = redraw

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long, device=self.x.device)
        clean = intensities(self.x[index])
        target = torch.bernoulli(clean) if self.redraw else clean
        x = self.inputs[index] if self.inputs is not None else self.task.inputs(target)
        batch = {"x": x, "target": target, "y": self.y[index]}
        if self.factors is not None:
            batch["factors"] = self.factors[index]
        return batch


class EpochBatchSampler(BatchSampler):
    """A BatchSampler that passes Lightning's per-epoch `set_epoch` on to a DistributedSampler (a new shuffle)."""

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)


def example_order(data: Dataset, shuffle: bool, shard: dict[str, int] | None, seed: int = 0) -> Sampler | Sequence[int]:
    """The indices this process visits: all of them, or its shard of a distributed run (`num_replicas`, `rank`).

    Training order is a DistributedSampler's (one replica without DDP) seeded by (seed, epoch), so it does not
    depend on the global RNG (exact resume); under DDP its shards are disjoint and padded with a few repeats so
    every rank makes the same number of steps. An evaluation shard is every `num_replicas`-th example without
    padding, so synced metrics count each example exactly once.
    """
    if shuffle:
        return DistributedSampler(data, shuffle=True, seed=seed, **(shard or {"num_replicas": 1, "rank": 0}))
    if shard is None:
        return SequentialSampler(data)
    return range(shard["rank"], len(data), shard["num_replicas"])


class InMemoryDataModule(pl.LightningDataModule):
    """Base datamodule: subclasses implement `load()`; this class splits, checks the shape and batches.

    Subclasses that standardise (tables) implement `fit_preprocessing` and `preprocess`: statistics come from
    the train split alone, never from val, test or (one-class) anomalous rows, and apply to every split."""

    def __init__(
        self,
        name: str,
        shape: list[int] | None,
        num_classes: int | None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int | float = 0.1,
        split_seed: int = 0,
        normal_classes: list[int] | None = None,
        task: Task | None = None,
        seed: int = 0,
        device: str | None = None,
        binarize: str | None = None,
    ) -> None:
        super().__init__()
        positive_int("data.batch_size", batch_size)
        positive_int("data.eval_batch_size", eval_batch_size)
        # shape / num_classes null: inferred from the files by `setup` (a user's folder or table)
        self.name, self.num_classes = name, num_classes
        self.shape = list(shape) if shape is not None else None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed = val_size, split_seed
        self.normal_classes = list(normal_classes) if normal_classes is not None else None  # one-class training
        self.task = task or Task()
        self.device = device  # move the whole dataset there once (e.g. cuda): batches are then cut on the device
        self.seed = seed  # shuffling: epoch e trains in the order drawn from (seed, e); train.py passes cfg.seed
        if binarize not in BINARIZE:
            raise ConfigError(f"data.binarize must be one of {list(BINARIZE)}, got {binarize!r}")
        self.binarize = binarize
        self.batches_per_call = 1  # train batches per item of the train loader (set by model.steps_per_call)
        self.train_set: TensorBatches | None = None
        self.val_set: TensorBatches | None = None
        self.test_set: TensorBatches | None = None

    def load(self) -> Splits:
        """Return the full train pool and the test set as tensors."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = self.load()
        got = list(splits.x_train.shape[1:])
        if self.shape is None:
            self.shape = got
            log.info("%s: shape inferred from the data: %s", self.name, got)
        if got != self.shape:
            raise DataError(f"{self.name}: the data has shape {got} but data.shape says {self.shape}")
        n = len(splits.x_train)
        n_val = int(round(self.val_size * n)) if isinstance(self.val_size, float) else int(self.val_size)
        if not 0 < n_val < n:
            raise ConfigError(f"data.val_size={self.val_size} leaves no train or no val data out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = self.normal_only(perm[:n_val], splits.y_train), self.normal_only(perm[n_val:], splits.y_train)
        self.fit_preprocessing(splits.x_train[train_idx])  # the rows the model trains on, nothing else
        x_pool, x_test = self.preprocess(splits.x_train), self.preprocess(splits.x_test)
        self.train_set = self.subset(x_pool, splits.y_train, splits.factors_train, train_idx, fixed=False)
        self.val_set = self.subset(x_pool, splits.y_train, splits.factors_train, val_idx, fixed=True)
        self.test_set = self.subset(x_test, splits.y_test, splits.factors_test, None, fixed=True)
        log.info("%s: %d train, %d val, %d test, shape %s, task %s", self.name, len(self.train_set), len(self.val_set),
                 len(self.test_set), got, self.task.name)

    def fit_preprocessing(self, x_train: torch.Tensor) -> None:
        """Fit statistics on the train split only (after the val split and `normal_only`); default: none."""

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Any split as the model sees it, with what `fit_preprocessing` fitted; default: unchanged."""
        return x

    def normal_only(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The indices whose label is a normal class (all of them when `normal_classes` is unset)."""
        if self.normal_classes is None:
            return idx
        kept = idx[torch.isin(y[idx], torch.as_tensor(self.normal_classes))]
        if len(kept) == 0:
            raise ConfigError(f"data.normal_classes={self.normal_classes} selects no {self.name} examples; "
                              f"the classes are 0..{self.num_classes - 1}")
        return kept

    def subset(self, x: torch.Tensor, y: torch.Tensor, factors: torch.Tensor | None, idx: torch.Tensor | None,
               fixed: bool) -> TensorBatches:
        """TensorBatches of the rows `idx` (all when None); `fixed` draws the task's inputs once."""
        if idx is not None:
            x, y, factors = x[idx], y[idx], factors[idx] if factors is not None else None
        redraw = self.binarize == "dynamic" and not fixed
        if self.binarize is not None and not redraw:  # drawn once: the same binary images every epoch and run
            x = torch.bernoulli(intensities(x), generator=torch.Generator().manual_seed(self.split_seed + int(fixed)))
        inputs = self.task.fixed_inputs(intensities(x), self.split_seed) if fixed else None
        if self.device is not None:
            x, y, inputs, factors = (t.to(self.device) if t is not None else None for t in (x, y, inputs, factors))
        return TensorBatches(x, y, self.task, inputs, factors, redraw=redraw)

    def is_anomaly(self, y: torch.Tensor) -> torch.Tensor:
        """Boolean (N,): labels outside `normal_classes` (needs `normal_classes`)."""
        if self.normal_classes is None:
            raise ConfigError(f"{self.name}: anomaly labels need data.normal_classes (task=one_class sets it)")
        return ~torch.isin(y, torch.as_tensor(self.normal_classes))

    def _loader(self, data: TensorBatches, batch_size: int, shuffle: bool) -> DataLoader:
        shard = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None  # None: one process
        batches = EpochBatchSampler(example_order(data, shuffle, shard, self.seed), batch_size=batch_size, drop_last=False)
        # its own generator: creating an iterator then leaves the global RNG alone (exact resume, see callbacks.rng)
        return DataLoader(data, sampler=batches, batch_size=None, generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size * self.batches_per_call, shuffle=True)  # K batches in order

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def fixed_batch(self, stage: str, n: int) -> dict[str, torch.Tensor]:
        """The first `n` examples of a split, the same every call (for image grids and embeddings)."""
        data = self.split(stage)
        return data[list(range(min(n, len(data))))]

    def whole(self, stage: str) -> dict[str, torch.Tensor]:
        """The whole train, val or test split as one batch, in order (what scoring a split runs on)."""
        return self.fixed_batch(stage, len(self.split(stage)))

    def split(self, stage: str) -> TensorBatches:
        """The train, val or test set."""
        self.setup()
        return {"val": self.val_set, "test": self.test_set, "train": self.train_set}[stage]

    def preprocessing(self) -> dict:
        """What `aelab-apply` needs to make a new file into an input like this data's (stored in the checkpoint)."""
        self.setup()
        return {"kind": "image" if len(self.shape) == 3 else "table", "shape": list(self.shape),
                "classes": list(getattr(self, "classes", []))}

    def preview(self, out_dir: Path) -> Path:
        """What the model will see, written before training: a grid of training images (`data_preview.png`), or
        for tables a listing of the columns' ranges and the label counts (`data_preview.txt`)."""
        self.setup()
        out_dir.mkdir(parents=True, exist_ok=True)
        train = self.fixed_batch("train", 64)
        if len(self.shape) == 3:
            from torchvision.utils import make_grid, save_image

            path = out_dir / "data_preview.png"
            save_image(make_grid(train["x"].clamp(0, 1), nrow=8, padding=1, pad_value=1.0), path)
            return path
        x = self.split("train").x.reshape(len(self.split("train")), -1)  # (N, F)
        names = list(getattr(self, "feature_names", [])) or [f"x{i}" for i in range(x.shape[1])]
        labels, counts = torch.unique(self.split("train").y, return_counts=True)
        lines = [f"{self.name}: {len(x)} train rows, {x.shape[1]} features (as the model sees them)", "",
                 f"{'column':<32}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}"]
        lines += [f"{n[:31]:<32}{float(c.mean()):>10.3f}{float(c.std()):>10.3f}{float(c.min()):>10.3f}{float(c.max()):>10.3f}"
                  for n, c in zip(names, x.T)]
        classes = list(getattr(self, "classes", [])) or [str(i) for i in range(int(labels.max()) + 1)]
        lines += ["", "train labels: " + ", ".join(f"{classes[int(v)]}: {int(k)} rows" for v, k in zip(labels, counts))]
        path = out_dir / "data_preview.txt"
        path.write_text("\n".join(lines) + "\n")
        return path


def folder_scan(folder: Path, extensions: Collection[str], depth: int | None = 2) -> tuple[list[Path], list[str]]:
    """The files under `folder` (at most `depth` path parts deep; None: any) ending in one of `extensions`, in name
    order, and every other file as "relative/path (why)": hidden (a part starting with "."), another ending, too deep."""
    files, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            skipped.append(f"{'/'.join(parts)} (hidden)")
        elif path.suffix.lower() not in extensions:
            skipped.append(f"{'/'.join(parts)} (not a file read here: ending {path.suffix or 'none'})")
        elif depth is not None and len(parts) > depth:
            skipped.append(f"{'/'.join(parts)} (deeper than one sub-folder)")
        else:
            files.append(path)
    return files, skipped


def counted(names: list[str], first: int = 5) -> dict[str, Any]:
    """A list as what a run records of it: its length and its first few entries."""
    return {"count": len(names), "first": names[:first]}


def folder_files(folder: Path, extensions: Collection[str], what: str, groups: str) -> tuple[list[Path], list[str]]:
    """`folder_scan` of `folder` and its sub-folders (one level): the files and the skipped; DataError naming `what`
    (e.g. "PNG/JPEG images") when the folder is missing or holds none."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder: set data.path to a folder of {what}")
    files, skipped = folder_scan(folder, extensions)
    if not files:
        raise DataError(f"{folder} holds no {what} (directly or in {groups} sub-folders)"
                        + (f"; skipped {len(skipped)}, e.g. {', '.join(skipped[:3])}" if skipped else ""))
    return files, skipped


def named(items: Sequence[object], shown: int = 5) -> str:
    """The first `shown` items, comma-separated, '...' when there are more."""
    return ", ".join(map(str, items[:shown])) + (", ..." if len(items) > shown else "")


def intensities(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) as float in [0, 1]; any other tensor unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def to_float_images(raw: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    x = raw if raw.ndim == 4 else raw.unsqueeze(-1)  # (N, H, W) -> (N, H, W, 1)
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255.0)  # (N, H, W, C) -> (N, C, H, W)


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as 8-bit pixels for PIL: (H, W) for C = 1, else (H, W, C); clipped, rounded."""
    pixels = x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels
