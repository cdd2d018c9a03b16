"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): offline and fast, for tests."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from aelab.data.base import InMemoryDataModule, Splits


class DigitsDataModule(InMemoryDataModule):
    """Digits scaled to [0, 1]; there is no official test set, so a seeded `test_size` share is held out."""

    def __init__(self, test_size: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_size = test_size

    def load(self) -> Splits:
        bunch = load_digits()
        x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 8, 8) -> (N, 1, 8, 8)
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 1))
        n_test = int(round(self.test_size * len(x)))
        test, pool = perm[:n_test], perm[n_test:]
        return Splits(x_train=x[pool], y_train=y[pool], x_test=x[test], y_test=y[test])
