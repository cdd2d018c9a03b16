"""Colour patches cut from scikit-learn's two bundled photographs (china.jpg, flower.jpg; 427x640 RGB), offline.

Meant for colorization (the task shows the model a grayscale copy, the target is the colour patch). Train crops
lie in the left `train_width` share of each photo's width and test crops in the rest, so no test pixel is ever
seen in training. The validation share (split off the train pool by the base class) overlaps train crops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from aelab.data.base import InMemoryDataModule, Splits, to_float_images
from aelab.errors import ConfigError, DataError, positive_int

log = logging.getLogger(__name__)

PHOTOS = ("china.jpg", "flower.jpg")  # label y = index in this tuple


def sample_photos() -> np.ndarray:
    """Both photos as one uint8 array (2, H, W, 3), in the order of PHOTOS."""
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()  # decodes the JPEGs with pillow
    except ImportError as err:
        raise DataError(f"photo_patches needs pillow to decode scikit-learn's sample photos ({err}): "
                        f"pip install pillow") from err
    by_name = {Path(name).name: img for name, img in zip(bunch.filenames, bunch.images)}
    return np.stack([by_name[name] for name in PHOTOS])


def crop(photos: np.ndarray, origins: torch.Tensor, size: int) -> torch.Tensor:
    """Patches (N, size, size, 3) uint8 at rows of `origins` = (photo, top, left)."""
    o = origins.numpy()
    offsets = np.arange(size)
    rows = (o[:, 1, None] + offsets)[:, :, None]  # (N, size, 1)
    cols = (o[:, 2, None] + offsets)[:, None, :]  # (N, 1, size)
    return torch.from_numpy(photos[o[:, 0, None, None], rows, cols])  # (N, size, size, 3)


def random_origins(n: int, height: int, lo: int, hi: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) int64 crop origins (photo, top, left): photos alternate, the crop stays in columns [lo, hi)."""
    photo = torch.arange(n) % len(PHOTOS)  # balanced classes, interleaved so any prefix has both photos
    top = torch.randint(0, height - size + 1, (n,), generator=generator)
    left = torch.randint(lo, hi - size + 1, (n,), generator=generator)
    return torch.stack([photo, top, left], dim=1)


class PhotoPatchesDataModule(InMemoryDataModule):
    """Seeded random crops (3, patch_size, patch_size) in [0, 1]; y = which photo (0 china, 1 flower)."""

    def __init__(self, train_patches: int = 8000, test_patches: int = 1000, patch_size: int = 32,
                 train_width: float = 0.8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_patches = positive_int("data.train_patches", train_patches)
        self.test_patches = positive_int("data.test_patches", test_patches)
        self.patch_size = positive_int("data.patch_size", patch_size)
        if not 0.0 < train_width < 1.0:
            raise ConfigError(f"data.train_width must be in (0, 1), got {train_width!r}")
        self.train_width = train_width
        self.origins_train: torch.Tensor | None = None  # (N, 3) photo, top, left of each train-pool crop
        self.origins_test: torch.Tensor | None = None

    def load(self) -> Splits:
        photos = sample_photos()  # (2, H, W, 3)
        _, height, width, _ = photos.shape
        split = int(round(self.train_width * width))  # first test column
        size = self.patch_size
        if size > min(split, width - split, height):
            raise ConfigError(f"data.patch_size={size} does not fit the train ({split} px) or test "
                              f"({width - split} px) strip of the {height}x{width} photos")
        gen = torch.Generator().manual_seed(self.split_seed + 1)
        self.origins_train = random_origins(self.train_patches, height, 0, split, size, gen)
        self.origins_test = random_origins(self.test_patches, height, split, width, size, gen)
        log.info("photo_patches: %d train and %d test crops of %d px, test columns from %d", self.train_patches,
                 self.test_patches, size, split)
        return Splits(
            x_train=to_float_images(crop(photos, self.origins_train, size)),
            y_train=self.origins_train[:, 0].clone(),
            x_test=to_float_images(crop(photos, self.origins_test, size)),
            y_test=self.origins_test[:, 0].clone(),
        )
