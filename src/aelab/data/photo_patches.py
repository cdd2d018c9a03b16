"""Colour patches cut from photographs that scikit-learn and scikit-image bundle, offline.

`data.photos` names them: scikit-learn's `china` and `flower` (427x640) and scikit-image's natural colour photos
`astronaut` (512x512), `chelsea` (300x451), `coffee` (400x600) and `rocket` (427x640); scikit-image's need the
`aelab[restoration]` extra, scikit-learn's (the default) do not. Meant for colorization (the task shows the model a
grayscale copy, the target is the colour patch). Train crops lie in the left `train_width` share of each photo's
width and test crops in the rest, so no test pixel is ever seen in training. The validation share (split off the
train pool by the base class) overlaps train crops. y = the photo's index in `data.photos`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from aelab.core.errors import ConfigError, positive_int
from aelab.core.extras import require
from aelab.data.base import InMemoryDataModule, Splits, to_float_images

log = logging.getLogger(__name__)

SKLEARN_PHOTOS = ("china", "flower")  # scikit-learn's load_sample_images: <name>.jpg
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # skimage.data.<name>()


def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as uint8 (H, W, 3); MissingExtraError when scikit-image is missing, ConfigError for
    a bad name."""
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")  # decodes the JPEG with pillow
    if name in SKIMAGE_PHOTOS:
        return getattr(require("skimage.data", f"data=photo_patches photo {name!r}"), name)()
    raise ConfigError(f"data.photos: unknown photo {name!r}; bundled are {', '.join(SKLEARN_PHOTOS + SKIMAGE_PHOTOS)}")


def crop(photos: list[np.ndarray], origins: torch.Tensor, size: int) -> torch.Tensor:
    """Patches (N, size, size, 3) uint8 at rows of `origins` = (photo, top, left)."""
    out = torch.empty(len(origins), size, size, 3, dtype=torch.uint8)
    offsets = np.arange(size)
    for k, photo in enumerate(photos):
        rows_k = (origins[:, 0] == k).nonzero().flatten()
        o = origins[rows_k].numpy()
        rows = (o[:, 1, None] + offsets)[:, :, None]  # (n, size, 1)
        cols = (o[:, 2, None] + offsets)[:, None, :]  # (n, 1, size)
        out[rows_k] = torch.from_numpy(photo[rows, cols])  # (n, size, size, 3)
    return out


def random_origins(n: int, strips: list[tuple[int, int, int]], size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) int64 crop origins (photo, top, left): photos alternate, photo k's crop stays in rows [0, height) and
    columns [lo, hi) of its strip (height, lo, hi)."""
    photo = torch.arange(n) % len(strips)  # balanced classes, interleaved so any prefix has every photo
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)  # (n, 2) uniform, scaled per photo below
    bounds = torch.tensor(strips, dtype=torch.float64)[photo]  # (n, 3) height, lo, hi
    top = (u[:, 0] * (bounds[:, 0] - size + 1)).long()
    left = bounds[:, 1].long() + (u[:, 1] * (bounds[:, 2] - bounds[:, 1] - size + 1)).long()
    return torch.stack([photo, top, left], dim=1)


class PhotoPatchesDataModule(InMemoryDataModule):
    """Seeded random crops (3, patch_size, patch_size) in [0, 1]; y = the photo's index in `photos`."""

    def __init__(self, photos: list[str] = SKLEARN_PHOTOS, train_patches: int = 8000, test_patches: int = 1000,
                 patch_size: int = 32, train_width: float = 0.8, **kwargs) -> None:
        super().__init__(**kwargs)
        if not photos:
            raise ConfigError("data.photos is empty; bundled are " + ", ".join(SKLEARN_PHOTOS + SKIMAGE_PHOTOS))
        self.photos = list(photos)
        skimage_photos = [name for name in self.photos if name in SKIMAGE_PHOTOS]
        if skimage_photos:  # the restoration extra, checked before anything starts
            require("skimage.data", f"data=photo_patches photo {skimage_photos[0]!r}")
        if self.num_classes is None:
            self.num_classes = len(self.photos)  # y = the photo
        elif self.num_classes != len(self.photos):
            raise ConfigError(f"data.num_classes={self.num_classes}, but y is the photo and data.photos names "
                              f"{len(self.photos)}; leave num_classes null")
        self.train_patches = positive_int("data.train_patches", train_patches)
        self.test_patches = positive_int("data.test_patches", test_patches)
        self.patch_size = positive_int("data.patch_size", patch_size)
        if not 0.0 < train_width < 1.0:
            raise ConfigError(f"data.train_width must be in (0, 1), got {train_width!r}")
        self.train_width = train_width
        self.origins_train: torch.Tensor | None = None  # (N, 3) photo, top, left of each train-pool crop
        self.origins_test: torch.Tensor | None = None

    def load(self) -> Splits:
        photos = [load_photo(name) for name in self.photos]  # [(H_k, W_k, 3)]
        size = self.patch_size
        strips_train, strips_test = [], []
        for name, photo in zip(self.photos, photos):
            height, width = photo.shape[:2]
            split = int(round(self.train_width * width))  # first test column
            if size > min(split, width - split, height):
                raise ConfigError(f"data.patch_size={size} does not fit the train ({split} px) or test "
                                  f"({width - split} px) strip of the {height}x{width} photo {name}")
            strips_train.append((height, 0, split))
            strips_test.append((height, split, width))
        gen = torch.Generator().manual_seed(self.split_seed + 1)
        self.origins_train = random_origins(self.train_patches, strips_train, size, gen)
        self.origins_test = random_origins(self.test_patches, strips_test, size, gen)
        log.info("photo_patches: %d train and %d test crops of %d px from %s", self.train_patches, self.test_patches,
                 size, ", ".join(self.photos))
        return Splits(
            x_train=to_float_images(crop(photos, self.origins_train, size)),
            y_train=self.origins_train[:, 0].clone(),
            x_test=to_float_images(crop(photos, self.origins_test, size)),
            y_test=self.origins_test[:, 0].clone(),
        )
