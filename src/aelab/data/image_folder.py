"""A folder of the user's images (PNG/JPEG) as a dataset: `data=image_folder data.path=<folder>`.

Images directly in the folder have no label (y = 0); images in sub-folders are labelled by sub-folder (classes in
name order). Every image is converted to `channels` (1: grayscale, 3: RGB) and resized to `size` (H = W = size;
null keeps the files' own size, which must then be the same for all). A seeded `test_size` share is the test set,
the rest the train pool. Parsed once and cached as tensors in `cache_dir`. Unreadable files, empty folders and
mixed sizes stop with one line naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from aelab.data.base import InMemoryDataModule, Splits, folder_files, to_float_images
from aelab.data.cache import cached
from aelab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}  # channels -> PIL mode


def image_files(folder: Path) -> list[Path]:
    """The image files in `folder` and its sub-folders (one level), in name order."""
    return folder_files(folder, EXTENSIONS, "PNG/JPEG images", "class")[0]


GRAY = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes without colour


def read_image(path: Path, channels: int, size: tuple[int, int] | None, colour: bool | None = None) -> np.ndarray:
    """One image as uint8 (H, W, C) in `channels`, resized to size = (H, W) unless None; DataError naming the file
    if it is unreadable, or (`colour` given) if it has colour where `colour` is False or none where it is True."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if colour is not None and (image.mode not in GRAY) != colour:
                raise DataError(f"{path} has {'colour channels' if colour is False else '1 channel'} ({image.mode}), "
                                f"the model takes {channels}")
            image = image.convert(MODES[channels])
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({type(err).__name__}: {err})") from err
    return array.reshape(array.shape[0], array.shape[1], channels)


def read_folder(folder: Path, files: list[Path], channels: int, size: int | None) -> dict:
    """Images (N, C, H, W) float in [0, 1], labels (N,) and class names, from the files in order."""
    classes = sorted({f.parent.name for f in files if f.parent != folder})
    if classes and any(f.parent == folder for f in files):
        loose = next(f for f in files if f.parent == folder)
        raise DataError(f"{loose}: images sit both directly in {folder} and in class sub-folders; use one layout")
    arrays, first = [], None
    for f in files:
        a = read_image(f, channels, None if size is None else (size, size))
        if first is None:
            first = (f, a.shape)
        elif a.shape != first[1]:
            raise DataError(f"{f} is {a.shape[1]}x{a.shape[0]} but {first[0]} is {first[1][1]}x{first[1][0]}: "
                            f"set data.size to resize every image")
        arrays.append(a)
    x = to_float_images(torch.from_numpy(np.stack(arrays)))  # (N, H, W, C) uint8 -> (N, C, H, W) in [0, 1]
    y = torch.tensor([classes.index(f.parent.name) if classes else 0 for f in files], dtype=torch.long)
    return {"x": x, "y": y, "classes": classes or ["images"], "files": [str(f.relative_to(folder)) for f in files]}


class ImageFolderDataModule(InMemoryDataModule):
    """The images of a folder; shape [channels, size, size] (inferred from the files when size is null)."""

    def __init__(self, path: str, channels: int = 3, size: int | None = 64, test_size: float = 0.2,
                 cache_dir: str | None = None, **kwargs) -> None:
        if channels not in MODES:
            raise ConfigError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if size is not None and size < 8:
            raise ConfigError(f"data.size must be at least 8 pixels (or null for the files' own size), got {size}")
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        super().__init__(**kwargs)
        self.path, self.channels, self.size, self.test_size = Path(path).expanduser(), channels, size, test_size
        self.cache_dir = cache_dir
        self.classes: list[str] = []
        self.files: list[str] = []

    def load(self) -> Splits:
        files = image_files(self.path)
        settings = {"kind": "image_folder", "channels": self.channels, "size": self.size}
        blob = cached(files, settings, self.cache_dir, lambda: read_folder(self.path, files, self.channels, self.size))
        x, y, self.classes, self.files = blob["x"], blob["y"], list(blob["classes"]), list(blob["files"])
        if self.num_classes is None:
            self.num_classes = len(self.classes)
        n_test = int(round(self.test_size * len(x)))
        if not 0 < n_test < len(x) - 1:
            raise DataError(f"{self.path}: {len(x)} images are too few to hold out a test share of {self.test_size}")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 1))
        test, pool = order[:n_test].sort().values, order[n_test:].sort().values
        log.info("%s: %d images, classes %s, shape %s", self.path, len(x), self.classes, list(x.shape[1:]))
        return Splits(x_train=x[pool], y_train=y[pool], x_test=x[test], y_test=y[test])
