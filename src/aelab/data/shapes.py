"""dSprites-like 2D shapes with known generative factors (Matthey et al. 2017, "dSprites: disentanglement testing
sprites dataset"), rendered with numpy: the full grid shape x scale x rotation x x-position x y-position.

Rotations span each shape's symmetry period (square pi/2, ellipse pi, heart 2 pi), so unlike dSprites every
rotation index gives a different image. x moves the shape right (column), y moves it down (row). A pixel is lit
when its centre is inside the shape (no anti-aliasing). With `channels: 3` each image also gets one of six hues,
drawn by a seeded balanced permutation independent of the other factors and recorded as a 6th factor "color".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from aelab.core.errors import ConfigError, DataError, positive_int
from aelab.core.files import save_atomic
from aelab.data.base import InMemoryDataModule, Splits

log = logging.getLogger(__name__)

GRID = (3, 4, 8, 8, 8)  # values per factor: shape, scale, rotation, x, y -> 6144 images
SCALES = np.linspace(0.5, 1.0, GRID[1])  # times the largest radius
PERIODS = (np.pi / 2, np.pi, 2 * np.pi)  # rotational symmetry of square, ellipse, heart
RADIUS = 0.2  # radius of the circle around a scale-1 shape, as a share of the image side
HUES = ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255))  # colour factor
COLOR_SEED = 1234  # fixed, so the cache is a function of (image_size, channels) only
HEART_CENTRE, HEART_RADIUS = 0.118, 1.337  # centre height and radius of (x^2+y^2-1)^3 <= x^2 y^3
CACHE_VERSION = 1  # bump when the rendering changes: older caches are rebuilt
CHUNK = 512  # images rendered at once, bounds the (chunk, S, S) float64 temporaries


def inside(shape: int, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Mask of points (p right, q down) inside the unit-radius shape `shape` (0 square, 1 ellipse, 2 heart)."""
    if shape == 0:
        return np.maximum(np.abs(p), np.abs(q)) <= 1 / np.sqrt(2)
    if shape == 1:
        return p**2 + (q / 0.5) ** 2 <= 1.0
    x, y = p * HEART_RADIUS, -q * HEART_RADIUS + HEART_CENTRE  # y up, heart centred in its unit circle
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def factor_grid() -> np.ndarray:
    """Every combination of the five factors once, shape slowest: (6144, 5) int64."""
    return np.indices(GRID).reshape(len(GRID), -1).T.astype(np.int64)


def render(factors: np.ndarray, size: int, grid: tuple[int, ...] = GRID, scales: np.ndarray = SCALES,
           periods: tuple[float, ...] = PERIODS) -> np.ndarray:
    """White-on-black masks (N, size, size) uint8 for rows of (shape, scale, rotation, x, y) indices into `grid`;
    rotation index r of shape k is the angle r / grid[2] * periods[k], scale index s the radius scales[s] * RADIUS."""
    radius = RADIUS * size
    centre_x = np.linspace(radius, size - radius, grid[3])  # pixel units, the shape never leaves the image
    centre_y = np.linspace(radius, size - radius, grid[4])
    pixels = np.arange(size, dtype=np.float64) + 0.5  # pixel centres
    out = np.zeros((len(factors), size, size), dtype=np.uint8)
    for start in range(0, len(factors), CHUNK):
        f = factors[start:start + CHUNK]
        r = (radius * scales[f[:, 1]])[:, None, None]
        angle = (f[:, 2] / grid[2] * np.take(periods, f[:, 0]))[:, None, None]
        dx = (pixels[None, None, :] - centre_x[f[:, 3]][:, None, None]) / r  # (n, 1, S): columns
        dy = (pixels[None, :, None] - centre_y[f[:, 4]][:, None, None]) / r  # (n, S, 1): rows
        p = np.cos(angle) * dx + np.sin(angle) * dy  # rotate the grid by -angle: (n, S, S)
        q = -np.sin(angle) * dx + np.cos(angle) * dy
        for shape in range(grid[0]):
            rows = f[:, 0] == shape
            out[start:start + CHUNK][rows] = inside(shape, p[rows], q[rows]) * np.uint8(255)
    return out


def build_grid(size: int, channels: int) -> dict[str, torch.Tensor]:
    """The dataset as tensors: images (N, C, S, S) uint8 and factors (N, K) int64."""
    factors = factor_grid()
    masks = torch.from_numpy(render(factors, size)).unsqueeze(1)  # (N, S, S) -> (N, 1, S, S)
    factors_t = torch.from_numpy(factors)
    if channels == 3:
        n = len(factors)
        color = torch.randperm(n, generator=torch.Generator().manual_seed(COLOR_SEED)) % len(HUES)  # balanced
        hue = torch.tensor(HUES, dtype=torch.int32)[color]  # (N, 3)
        masks = (masks.int() * hue[:, :, None, None] // 255).to(torch.uint8)  # (N, 1, S, S) -> (N, 3, S, S)
        factors_t = torch.cat([factors_t, color[:, None]], dim=1)
    return {"images": masks.contiguous(), "factors": factors_t, "version": torch.tensor(CACHE_VERSION)}


class ShapesDataModule(InMemoryDataModule):
    """The full factor grid, a seeded `test_size` share held out; y is the shape index (3 classes)."""

    FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")

    def __init__(self, root: str, image_size: int = 32, channels: int = 1, test_size: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.image_size, self.channels = Path(root), positive_int("data.image_size", image_size), channels
        if image_size < 16:
            raise ConfigError(f"data.image_size must be at least 16 for shapes, got {image_size}")
        if channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 (white shapes) or 3 (coloured shapes), got {channels!r}")
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        self.test_size = test_size

    @property
    def factor_names(self) -> tuple[str, ...]:
        """Names of the columns of `factors_train`/`factors_test`."""
        return self.FACTOR_NAMES + (("color",) if self.channels == 3 else ())

    @property
    def cache_path(self) -> Path:
        stem = "shapes" if self.channels == 1 else "shapes_color"
        return self.root / f"{stem}_{self.image_size}.pt"

    def _read_cache(self) -> dict[str, torch.Tensor] | None:
        path = self.cache_path
        if not path.is_file():
            return None
        try:
            data = torch.load(path, weights_only=True)
            images, factors, version = data["images"], data["factors"], int(data["version"])
        except Exception as err:  # torch.load raises RuntimeError, UnpicklingError, EOFError ... on bad bytes
            raise DataError(f"{path} is not a readable shapes cache ({type(err).__name__}): delete it and it "
                            f"will be rebuilt") from err
        want = (self.n_images, self.channels, self.image_size, self.image_size)
        bad_factors = tuple(factors.shape) != (want[0], len(self.factor_names))
        if images.dtype != torch.uint8 or tuple(images.shape) != want or bad_factors:
            raise DataError(f"{path} holds images {tuple(images.shape)} but {want} were expected: delete it and it "
                            f"will be rebuilt")
        if version != CACHE_VERSION:
            log.info("%s was rendered by an older version; rebuilding it", path)
            return None
        return data

    def _write_cache(self, data: dict[str, torch.Tensor]) -> None:
        path = self.cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(data, path)  # a concurrent reader sees the old file or the whole new one

    @property
    def n_images(self) -> int:
        """Images in the grid (the cache must hold this many)."""
        return int(np.prod(GRID))

    def render_grid(self) -> dict[str, torch.Tensor]:
        """The grid rendered anew, as the cache holds it."""
        return build_grid(self.image_size, self.channels)

    def grid(self) -> dict[str, torch.Tensor]:
        """The whole grid before the split, from the cache or rendered (and cached) on first use."""
        data = self._read_cache()
        if data is None:
            log.info("rendering %d shapes at %dx%d into %s", self.n_images, self.image_size, self.image_size,
                     self.cache_path)
            data = self.render_grid()
            self._write_cache(data)
        return data

    def load(self) -> Splits:
        data = self.grid()
        return self.split_grid(data["images"].float().div_(255.0), data["factors"].long())  # uint8 -> [0, 1]

    def split_grid(self, x: torch.Tensor, factors: torch.Tensor) -> Splits:
        """Images (N, C, S, S) and factors (N, K) split into the train pool and a seeded `test_size` share."""
        y = factors[:, 0].clone()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 1))
        n_test = int(round(self.test_size * len(x)))
        test, pool = perm[:n_test], perm[n_test:]
        return Splits(x_train=x[pool], y_train=y[pool], x_test=x[test], y_test=y[test],
                      factors_train=factors[pool], factors_test=factors[test])
