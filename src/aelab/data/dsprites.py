"""The dSprites factor grid (Matthey et al. 2017, "dSprites: disentanglement testing sprites dataset",
https://github.com/deepmind/dsprites-dataset): 3 shapes x 6 scales x 40 orientations x 32 x 32 positions
= 737,280 images, rendered by the shapes renderer (`aelab.data.shapes.render`) or read from the published file.

Rotation follows dSprites, not data=shapes: 40 orientations over [0, 2 pi) for every shape, so symmetric shapes
repeat images (a square every 10 orientations, an ellipse every 20). Factors are the dSprites class indices
(`latents_classes[:, 1:]`: shape, scale, orientation, x, y), the same whether rendered or read, whatever the
stride: `stride` keeps the values 0, s, 2s, ... of each factor (`factor_sizes` of them). Images are stored as
uint8 and made float per batch, so the full grid at 64x64 takes 3 GB (one byte a pixel), not 12.

`path` reads `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (keys `imgs` (N, 64, 64) uint8 of 0/1,
`latents_classes` and `latents_values` (N, 6), column 0 the constant colour) instead of rendering; any subset of
its rows is accepted. A smaller `image_size` averages blocks of pixels (64 / image_size a side), so its edges are
grey; the rendered grid is lit where a pixel centre is inside the shape, at any size.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import torch

from aelab.core.errors import ConfigError, DataError
from aelab.data.base import Splits
from aelab.data.shapes import CACHE_VERSION, ShapesDataModule, render

log = logging.getLogger(__name__)

DSPRITES = (3, 6, 40, 32, 32)  # values per factor: shape, scale, orientation, x, y -> 737,280 images
SCALES = np.linspace(0.5, 1.0, DSPRITES[1])  # dSprites' scale values, times the largest radius
PERIODS = (2 * np.pi,) * DSPRITES[0]  # every shape turns through [0, 2 pi)
FILE_SIZE = 64  # side of the published images
URL = "https://github.com/deepmind/dsprites-dataset"
KEYS = ("imgs", "latents_classes", "latents_values")  # `metadata` is a pickle, never read


def subsampled_grid(stride: tuple[int, ...]) -> np.ndarray:
    """Class indices (N, 5) of every kept combination once, shape slowest (the published file's order)."""
    axes = [np.arange(0, n, s) for n, s in zip(DSPRITES, stride)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(DSPRITES)).astype(np.int64)


def shrink(imgs: np.ndarray, size: int) -> np.ndarray:
    """0/1 masks (N, 64, 64) as uint8 (N, size, size) 0..255: the mean of each block, rounded."""
    k = FILE_SIZE // size
    lit = imgs.reshape(len(imgs), size, k, size, k).sum((2, 4), dtype=np.uint16)  # (N, 64, 64) -> (N, S, S)
    return ((lit * 255 + k * k // 2) // (k * k)).astype(np.uint8)


def read_npz(path: Path, size: int, stride: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """The rows of the dSprites file whose class indices the stride keeps: images (N, 1, S, S) uint8, factors (N, 5)."""
    hint = f"expected dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz from {URL}"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as err:
        raise DataError(f"{path} not found: set data.path to the dSprites file ({hint})") from err
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not an npz archive ({type(err).__name__}): {hint}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not an npz archive: {hint}")
    with archive:
        missing = [key for key in KEYS if key not in archive.files]
        if missing:
            raise DataError(f"{path} has no {', '.join(missing)} (it holds {', '.join(archive.files) or 'nothing'}): {hint}")
        imgs, classes, values = (archive[key] for key in KEYS)
    n = len(imgs)
    if imgs.dtype != np.uint8 or imgs.shape[1:] != (FILE_SIZE, FILE_SIZE) or imgs.ndim != 3:
        raise DataError(f"{path}: imgs is {imgs.dtype} {imgs.shape}, expected uint8 (N, 64, 64): {hint}")
    for name, table in (("latents_classes", classes), ("latents_values", values)):
        if table.shape != (n, 1 + len(DSPRITES)):
            raise DataError(f"{path}: {name} has shape {table.shape}, expected ({n}, 6) for {n} images: {hint}")
    if not np.issubdtype(classes.dtype, np.integer):
        raise DataError(f"{path}: latents_classes is {classes.dtype}, expected integers: {hint}")
    factors = classes[:, 1:].astype(np.int64)  # column 0 is the colour, always 0
    bad = [k for k, m in enumerate(DSPRITES) if n and not 0 <= factors[:, k].min() <= factors[:, k].max() < m]
    if bad:
        k = bad[0]
        raise DataError(f"{path}: latents_classes column {k + 1} ({DSpritesDataModule.FACTOR_NAMES[k]}) holds "
                        f"{factors[:, k].min()}..{factors[:, k].max()}, expected 0..{DSPRITES[k] - 1}: {hint}")
    if n and imgs.max() > 1:
        raise DataError(f"{path}: imgs holds values up to {imgs.max()}, expected 0/1 masks: {hint}")
    keep = np.all(factors % np.asarray(stride) == 0, axis=1)
    if not keep.any():
        raise DataError(f"{path}: none of its {n} rows has the class indices data.stride keeps")
    kept = imgs[keep]
    images = shrink(kept, size) if size != FILE_SIZE else kept * np.uint8(255)
    return {"images": torch.from_numpy(images).unsqueeze(1), "factors": torch.from_numpy(factors[keep])}


class DSpritesDataModule(ShapesDataModule):
    """The dSprites grid at a per-factor stride, rendered (cached in root) or read from `path`; y is the shape."""

    FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")

    def __init__(self, root: str, path: str | None = None, image_size: int = 32, stride: dict[str, int] | None = None,
                 test_size: float = 0.2, **kwargs) -> None:
        super().__init__(root=root, image_size=image_size, channels=1, test_size=test_size, **kwargs)
        self.stride = self.check_stride(dict(stride or {}))
        self.path = Path(path) if path is not None else None
        if self.path is not None and FILE_SIZE % image_size:
            raise ConfigError(f"data.image_size must divide 64 to read the dSprites file (averaged blocks), "
                              f"got {image_size}")

    def check_stride(self, stride: dict[str, int]) -> tuple[int, ...]:
        """The stride of each factor in FACTOR_NAMES order; every factor named once, each a positive integer."""
        if set(stride) != set(self.FACTOR_NAMES):
            raise ConfigError(f"data.stride must name exactly {', '.join(self.FACTOR_NAMES)}, got {', '.join(stride)}")
        bad = {k: v for k, v in stride.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if bad:
            raise ConfigError(f"data.stride values must be positive integers, got {bad}")
        return tuple(stride[name] for name in self.FACTOR_NAMES)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """Values each factor takes here (in FACTOR_NAMES order)."""
        return tuple(len(range(0, n, s)) for n, s in zip(DSPRITES, self.stride))

    @property
    def n_images(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def cache_path(self) -> Path:
        return self.root / f"dsprites_{self.image_size}_stride{'-'.join(map(str, self.stride))}.pt"

    def render_grid(self) -> dict[str, torch.Tensor]:
        factors = subsampled_grid(self.stride)
        masks = render(factors, self.image_size, DSPRITES, SCALES, PERIODS)  # (N, S, S) uint8
        return {"images": torch.from_numpy(masks).unsqueeze(1), "factors": torch.from_numpy(factors),
                "version": torch.tensor(CACHE_VERSION)}

    def load(self) -> Splits:
        if self.path is not None:
            log.info("reading dSprites from %s (stride %s)", self.path, self.stride)
            data = read_npz(self.path, self.image_size, self.stride)
        else:
            data = self.grid()
        return self.split_grid(data["images"], data["factors"].long())  # uint8 kept: float per batch
