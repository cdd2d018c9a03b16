"""MNIST, CIFAR-10 and other torchvision image sets, read once into memory (no per-sample PIL pipeline)."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from aelab.core.errors import DataError
from aelab.data.base import InMemoryDataModule, Splits, to_float_images

log = logging.getLogger(__name__)


class TorchvisionDataModule(InMemoryDataModule):
    """Any torchvision dataset class with `train=`/`download=` and `.data`/`.targets` (MNIST, CIFAR10, ...)."""

    def __init__(self, dataset: Callable, root: str, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dataset, self.root, self.download = dataset, root, download

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            ds = self.dataset(self.root, train=train, download=self.download)
        except Exception as err:  # torchvision raises RuntimeError (missing/corrupt files) or URLError (network)
            raise DataError(f"{self.name}: could not load from {self.root} ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); connect to the internet "
                            f"once to download it, or put torchvision's files in data.root") from err
        images = torch.as_tensor(np.asarray(ds.data))  # MNIST: (N, H, W); CIFAR: (N, H, W, C)
        return to_float_images(images), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)

    def load(self) -> Splits:
        x_train, y_train = self._read(train=True)
        x_test, y_test = self._read(train=False)
        return Splits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
