"""A folder of the user's images as a dataset: `data=image_folder data.path=<folder>`.

Every file Pillow decodes is read (PNG, JPEG, WEBP, BMP, TIFF, GIF, ...; aelab.data.images states how each kind
becomes float (C, H, W) in [0, 1]: alpha, palettes, 16-bit, CMYK, EXIF orientation, first frames). Other files
(text, SVG, hidden files, files deeper than one sub-folder) are skipped, counted and the first few named; a file
with an image extension that does not decode stops the run with one line naming it, or with
`data.on_bad_file=skip` is skipped, counted and named too. `file_report` holds what was done (JSON-ready).

Images directly in the folder have no label (y = 0); images in sub-folders are labelled by sub-folder (classes in
name order). Every image is converted to `channels` (1: grayscale, 3: RGB; `alpha=keep` adds alpha as one more)
and resized to `size` (H = W = size; null keeps the files' own size, which must then be the same for all). A
seeded `test_size` share is the test set, the rest the train pool. Parsed once and cached as tensors in
`cache_dir`, keyed by the files and every setting that shapes the tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.core.errors import ConfigError, DataError
from aelab.data.base import InMemoryDataModule, Splits, folder_files
from aelab.data.cache import cached
from aelab.data.images import ON_BAD_FILE, ImageRule, ReadReport, image_extensions, read_image

log = logging.getLogger(__name__)

READER = 2  # in the cache key: tensors cached by an earlier reader (alpha dropped, 8-bit only) are not reused


def image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The image files in `folder` and its sub-folders (one level), and the other files, in name order."""
    return folder_files(folder, image_extensions(), "images Pillow reads", "class")


def read_folder(folder: Path, files: list[Path], rule: ImageRule, on_bad_file: str = "error") -> dict[str, Any]:
    """Images (N, C, H, W) float in [0, 1], labels (N,), class names, file names and the ReadReport's fields."""
    classes = sorted({f.parent.name for f in files if f.parent != folder})
    if classes and any(f.parent == folder for f in files):
        loose = next(f for f in files if f.parent == folder)
        raise DataError(f"{loose}: images sit both directly in {folder} and in class sub-folders; use one layout")
    report, arrays, kept = ReadReport(), [], []
    for f in files:
        name = str(f.relative_to(folder))
        try:
            a, notes = read_image(f, rule)
        except DataError as err:
            if on_bad_file == "error":
                raise DataError(f"{err}; set data.on_bad_file=skip to leave such files out") from err
            report.bad_files.append(name)
            continue
        if arrays and a.shape != arrays[0].shape:
            raise DataError(f"{f} is {a.shape[2]}x{a.shape[1]} but {kept[0]} is {arrays[0].shape[2]}x{arrays[0].shape[1]}: "
                            f"set data.size to resize every image")
        report.add(name, notes)
        arrays.append(a)
        kept.append(f)
    if not arrays:
        raise DataError(f"{folder}: none of the {len(files)} image file(s) could be decoded ({', '.join(report.bad_files[:5])})")
    x = torch.from_numpy(np.stack(arrays))  # (N, C, H, W) float32 in [0, 1]
    y = torch.tensor([classes.index(f.parent.name) if classes else 0 for f in kept], dtype=torch.long)
    return {"x": x, "y": y, "classes": classes or ["images"], "files": [str(f.relative_to(folder)) for f in kept],
            "converted": report.converted, "bad_files": report.bad_files}


class ImageFolderDataModule(InMemoryDataModule):
    """The images of a folder; shape [channels (+1 for alpha=keep), size, size] (inferred when size is null)."""

    def __init__(self, path: str, channels: int = 3, size: int | None = 64, test_size: float = 0.2,
                 cache_dir: str | None = None, alpha: str = "composite", background: float | list[float] = 1.0,
                 on_bad_file: str = "error", **kwargs) -> None:
        if size is not None and size < 8:
            raise ConfigError(f"data.size must be at least 8 pixels (or null for the files' own size), got {size}")
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        if on_bad_file not in ON_BAD_FILE:
            raise ConfigError(f"data.on_bad_file must be one of {list(ON_BAD_FILE)}, got {on_bad_file!r}")
        background = background if isinstance(background, (int, float)) else list(background)  # ListConfig -> list
        self.rule = ImageRule(channels, None if size is None else (size, size), alpha, background)
        super().__init__(**kwargs)
        self.path, self.channels, self.size, self.test_size = Path(path).expanduser(), channels, size, test_size
        self.cache_dir, self.on_bad_file = cache_dir, on_bad_file
        self.classes: list[str] = []
        self.files: list[str] = []
        self.file_report: dict[str, Any] = {}  # what reading did to the files: ReadReport.record()

    def load(self) -> Splits:
        files, others = image_files(self.path)
        settings = {"kind": "image_folder", "reader": READER, **self.rule.settings(), "on_bad_file": self.on_bad_file}
        blob = cached(files, settings, self.cache_dir, lambda: read_folder(self.path, files, self.rule, self.on_bad_file))
        x, y, self.classes, self.files = blob["x"], blob["y"], list(blob["classes"]), list(blob["files"])
        report = ReadReport(len(x), dict(blob["converted"]), others,
                            list(blob["bad_files"]))
        report.log(str(self.path))
        self.file_report = report.record()
        if self.num_classes is None:
            self.num_classes = len(self.classes)
        n_test = int(round(self.test_size * len(x)))
        if not 0 < n_test < len(x) - 1:
            raise DataError(f"{self.path}: {len(x)} images are too few to hold out a test share of {self.test_size}")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 1))
        test, pool = order[:n_test].sort().values, order[n_test:].sort().values
        log.info("%s: %d images, classes %s, shape %s", self.path, len(x), self.classes, list(x.shape[1:]))
        return Splits(x_train=x[pool], y_train=y[pool], x_test=x[test], y_test=y[test])

    def preprocessing(self) -> dict[str, Any]:
        """The base's, plus the reading rule (channels, size, alpha, background): apply reads files the same way."""
        prep = super().preprocessing()
        return {**prep, **self.rule.settings(), "size": prep["shape"][1:]}
