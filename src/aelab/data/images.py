"""One way to read an image file into float (C, H, W) in [0, 1]: training (data=image_folder), aelab-apply and the
explorer's upload all call `read_image` with the run's `ImageRule`, so a file gives the same tensor everywhere.

The rules, per kind of file (every Pillow mode is decoded on purpose, at full precision, never through uint8):
- 8-bit (1, L, P, RGB, ...) divide by 255; 16-bit (I;16*) by 65535; 32-bit integers (I) by 65535, clipped;
  float (F) is taken as it is, clipped to [0, 1].
- Palette images are expanded to RGB (RGBA when they declare transparency); CMYK becomes RGB by
  R = (1 - C)(1 - K) (as Pillow); YCbCr, HSV and LAB go through Pillow's conversion to RGB.
- Colour -> gray is ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B (as Pillow's convert("L"), without its rounding);
  gray -> RGB repeats the channel.
- Alpha (RGBA, LA, PA, palette transparency) is composited over `background` (alpha="composite") or kept as one
  more, last channel (alpha="keep": a file without alpha gets an opaque one).
- The EXIF orientation is applied; multi-frame files (GIF, TIFF, ...) give their first frame.
- Resizing (bilinear, Pillow's antialiasing) is done per channel in float, after compositing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from aelab.core.errors import ConfigError, DataError
from aelab.data.base import counted, named

log = logging.getLogger(__name__)

ALPHA = ("composite", "keep")  # data.alpha choices
ON_BAD_FILE = ("error", "skip")  # data.on_bad_file choices
SHOWN = 5  # files named in a log line or a record; the rest are counted
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, the weights of Pillow's convert("L")
NAMED = {(1.0,): "white", (0.0,): "black", (1.0, 1.0, 1.0): "white", (0.0, 0.0, 0.0): "black"}


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """The file extensions Pillow can decode: its registered extensions, without write-only formats and the stub
    formats that need an outside decoder (BUFR, GRIB, HDF5, WMF). MPO opens through the JPEG opener."""
    from PIL import Image, ImageFile

    Image.init()
    stubs = {f for f, (opener, _) in Image.OPEN.items()
             if isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile)}
    decodable = (set(Image.OPEN) | {"MPO"}) - stubs
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in decodable)


def check_background(value: Any) -> tuple[float, ...]:
    """`data.background` as a gray (g,) or an RGB (r, g, b) tuple in [0, 1]; ConfigError otherwise."""
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else list(value or [None])
    if len(values) not in (1, 3) or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in values):
        raise ConfigError(f"data.background must be a gray value in [0, 1] or an RGB triple [r, g, b] in [0, 1] "
                          f"(1.0 is white), got {value!r}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class ImageRule:
    """How files become a model's input: `channels` (1 gray, 3 RGB), `size` (H, W; None keeps the file's), the
    `alpha` rule and the `background` that alpha is composited over."""

    channels: int = 3
    size: tuple[int, int] | None = None
    alpha: str = "composite"
    background: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.alpha not in ALPHA:
            raise ConfigError(f"data.alpha must be one of {list(ALPHA)}, got {self.alpha!r}")
        object.__setattr__(self, "background", check_background(self.background))

    @classmethod
    def from_preprocessing(cls, prep: dict[str, Any]) -> ImageRule:
        """The rule a checkpoint's preprocessing stored; older checkpoints (no such keys) get the defaults."""
        shape = list(prep["shape"])
        alpha = prep.get("alpha", "composite")
        channels = prep.get("channels", shape[0] - (alpha == "keep"))
        return cls(channels, (shape[1], shape[2]), alpha, tuple(np.atleast_1d(prep.get("background", 1.0)).tolist()))

    def settings(self) -> dict[str, Any]:
        """The rule as plain values (the checkpoint's preprocessing, the cache key)."""
        return {"channels": self.channels, "size": list(self.size) if self.size else None, "alpha": self.alpha,
                "background": list(self.background)}

    def alpha_note(self) -> str:
        """What was done to a file's alpha, e.g. 'had alpha, composited over white'."""
        if self.alpha == "keep":
            return "had alpha, kept as the last channel"
        return f"had alpha, composited over {NAMED.get(self.background, 'background ' + str(list(self.background)))}"


@dataclass
class ReadReport:
    """What reading did to a set of files: conversion -> files, the files that are not images, the bad ones."""

    images: int = 0
    converted: dict[str, list[str]] = field(default_factory=dict)
    not_images: list[str] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)

    def add(self, name: str, notes: list[str]) -> None:
        self.images += 1
        for note in notes:
            self.converted.setdefault(note, []).append(name)

    def record(self) -> dict[str, Any]:
        """JSON-ready: counts and the first SHOWN names of each group."""
        return {"images": self.images, "converted": {k: counted(v, SHOWN) for k, v in self.converted.items()},
                "not_images": counted(self.not_images, SHOWN), "bad_files": counted(self.bad_files, SHOWN)}

    def lines(self) -> list[str]:
        """One sentence per group, e.g. '3 files had alpha, composited over white (a.png, b.png, c.png)'."""
        out = [f"{len(v)} file(s) {k} ({named(v)})" for k, v in self.converted.items()]
        if self.not_images:
            out.append(f"{len(self.not_images)} file(s) are not images Pillow reads, skipped ({named(self.not_images)})")
        if self.bad_files:
            out.append(f"{len(self.bad_files)} image file(s) could not be decoded, skipped ({named(self.bad_files)})")
        return out

    def log(self, where: str) -> None:
        for line in self.lines():
            log.info("%s: %s", where, line)


def standard_mode(image: Any) -> Any:
    """The image in one of L, LA, RGB, RGBA, RGBX, I, I;16*, F: palettes expanded (with alpha when they declare
    transparency), premultiplied alpha undone, other colour spaces (YCbCr, HSV, LAB, ...) converted to RGB."""
    mode, transparent = image.mode, "transparency" in image.info
    if mode in ("P", "PA"):
        return image.convert("RGBA" if mode == "PA" or transparent else "RGB")
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper())
    if mode in ("1", "L") and (mode == "1" or transparent):
        return image.convert("LA" if transparent else "L")
    if mode == "RGB" and transparent:
        return image.convert("RGBA")
    if mode in ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F") or mode.startswith("I;16"):
        return image
    return image.convert("RGB")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Pixels of any depth as float32 in [0, 1]: 8-bit / 255, 16-bit / 65535, 32-bit integers / 65535 clipped,
    float clipped."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255
    if pixels.dtype.kind == "u":  # I;16, I;16B, ...
        return pixels.astype(np.float32) / 65535
    if pixels.dtype.kind == "i":  # I: 32-bit integers, most often 16-bit data
        return np.clip(pixels.astype(np.float64) / 65535, 0, 1).astype(np.float32)
    return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0, 1)


def decode(image: Any) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """A PIL image's pixels as float32 (H, W, 1 or 3) in [0, 1], its alpha (H, W) or None, and notes on the mode."""
    if image.mode == "CMYK":
        cmyk = np.asarray(image, np.float32) / 255
        return (1 - cmyk[..., :3]) * (1 - cmyk[..., 3:]), None, ["CMYK converted to RGB by R = (1 - C)(1 - K)"]
    standard = standard_mode(image)
    pixels = np.asarray(standard)
    values = to_float(pixels)
    values = values.reshape(*values.shape[:2], -1)  # (H, W) -> (H, W, 1)
    notes = ["16-bit or more, read at full precision"] if pixels.dtype.itemsize > 1 else []
    alpha = values[..., -1] if "A" in standard.getbands() else None
    colour = values[..., :-1] if alpha is not None else values[..., :3]
    if image.mode in ("P", "PA") and (colour == colour[..., :1]).all():  # a gray palette: gray
        colour = colour[..., :1]
    return colour, alpha, notes


def to_channels(values: np.ndarray, channels: int) -> tuple[np.ndarray, list[str]]:
    """(H, W, k) -> (H, W, channels): colour to gray by ITU-R 601 luma, gray to RGB by repetition."""
    if values.shape[-1] == channels:
        return values, []
    if channels == 1:
        return values @ LUMA[:, None], ["colour converted to gray (ITU-R 601 luma)"]
    return np.repeat(values, 3, axis=-1), ["gray repeated to RGB"]


def resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) float32 -> (size[0], size[1], C): bilinear per channel, in float (Pillow mode F)."""
    from PIL import Image

    if values.shape[:2] == tuple(size):
        return values
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(values[..., c]), mode="F")
                         .resize((size[1], size[0]), Image.Resampling.BILINEAR)) for c in range(values.shape[-1])]
    return np.stack(planes, axis=-1)


def open_first_frame(path: Path) -> tuple[Any, list[str]]:
    """The file's first frame, EXIF orientation applied (loaded, file closed), and notes on what was done."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        image.seek(0)
        rotated = image.getexif().get(0x0112, 1) not in (0, 1)  # 0x0112: the orientation tag
        upright = ImageOps.exif_transpose(image)
        upright.load()
    notes = ["multi-frame, first frame used"] if frames > 1 else []
    if rotated:
        notes.append("EXIF orientation applied")
    return upright, notes


def read_image(path: Path, rule: ImageRule) -> tuple[np.ndarray, list[str]]:
    """One file as float32 (C, H, W) in [0, 1] under `rule`, and notes on what was done to it; DataError naming
    the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        image, notes = open_first_frame(path)
        colour, alpha, more = decode(image)
    except UnidentifiedImageError as err:
        raise DataError(f"{path} is not a readable image (Pillow cannot identify its format)") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise DataError(f"{path} is not a readable image ({type(err).__name__}: {first})") from err
    colour, converted = to_channels(colour, rule.channels)
    notes += more + converted
    if alpha is not None:
        notes.append(rule.alpha_note())
    if rule.alpha == "keep":
        alpha = np.ones(colour.shape[:2], np.float32) if alpha is None else alpha
        colour = np.concatenate([colour, alpha[..., None]], axis=-1)
    elif alpha is not None:
        background = to_channels(np.array([[rule.background]], np.float32), rule.channels)[0]  # (1, 1, channels)
        colour = colour * alpha[..., None] + background * (1 - alpha[..., None])
    if rule.size is not None:
        colour = resize(colour.astype(np.float32), rule.size)
    return np.ascontiguousarray(colour.transpose(2, 0, 1), np.float32), notes  # (H, W, C) -> (C, H, W)
