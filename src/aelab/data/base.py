"""In-memory datamodule: the whole dataset lives in tensors and batches are cut by indexing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from aelab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Raw arrays from a source: images (N, C, H, W) float in [0, 1], integer labels (N,)."""

    x_train: torch.Tensor  # train pool, split into train/val with the split seed
    y_train: torch.Tensor
    x_test: torch.Tensor  # the official test set, never used for model selection
    y_test: torch.Tensor


class TensorBatches(Dataset):
    """A dataset indexed by a whole batch of indices at once: one gather per batch, no per-sample collate."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        x = self.x[index]
        return {"x": x, "target": x, "y": self.y[index]}


class InMemoryDataModule(pl.LightningDataModule):
    """Base datamodule: subclasses implement `load()`; this class splits, checks the shape and batches."""

    def __init__(
        self,
        name: str,
        shape: list[int],
        num_classes: int,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int | float = 0.1,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size}")
        self.name, self.shape, self.num_classes = name, list(shape), num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed = val_size, split_seed
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
        if got != self.shape:
            raise DataError(f"{self.name}: the data has shape {got} but data.shape says {self.shape}")
        n = len(splits.x_train)
        n_val = int(round(self.val_size * n)) if isinstance(self.val_size, float) else int(self.val_size)
        if not 0 < n_val < n:
            raise ConfigError(f"data.val_size={self.val_size} leaves no train or no val data out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        self.train_set = TensorBatches(splits.x_train[train_idx], splits.y_train[train_idx])
        self.val_set = TensorBatches(splits.x_train[val_idx], splits.y_train[val_idx])
        self.test_set = TensorBatches(splits.x_test, splits.y_test)
        log.info("%s: %d train, %d val, %d test, shape %s", self.name, n - n_val, n_val, len(splits.x_test), got)

    def _loader(self, data: TensorBatches, batch_size: int, shuffle: bool) -> DataLoader:
        sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
        batches = BatchSampler(sampler, batch_size=batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def fixed_batch(self, stage: str, n: int) -> dict[str, torch.Tensor]:
        """The first `n` examples of a split, the same every call (for image grids and embeddings)."""
        self.setup()
        data = {"val": self.val_set, "test": self.test_set, "train": self.train_set}[stage]
        return data[list(range(min(n, len(data))))]


def to_float_images(raw: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    x = raw if raw.ndim == 4 else raw.unsqueeze(-1)  # (N, H, W) -> (N, H, W, 1)
    return x.permute(0, 3, 1, 2).contiguous().float().div_(255.0)  # (N, H, W, C) -> (N, C, H, W)
