"""Fashion-MNIST (Xiao et al. 2017) from IDX files: data.root, then the Debian package, then a download."""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from aelab.core.errors import DataError
from aelab.data.base import InMemoryDataModule, Splits, to_float_images

log = logging.getLogger(__name__)

# MD5 of each file's *decompressed* bytes, so that upstream's archives and Debian's re-compressed ones both pass.
RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
HOW_TO_GET = "run `make data` (installs the Debian package dataset-fashion-mnist) or put the four IDX .gz files in data.root"


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file after checking its MD5; raise DataError naming the file when it is bad."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable gzip file ({err}): delete it and {HOW_TO_GET}") from err
    digest = hashlib.md5(raw).hexdigest()
    if digest != RAW_MD5[path.name]:
        raise DataError(f"{path} is corrupt (MD5 {digest}, expected {RAW_MD5[path.name]}): delete it and {HOW_TO_GET}")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class FashionMNISTDataModule(InMemoryDataModule):
    """70k 28x28 grayscale clothing images in 10 classes; 60k train pool, 10k official test."""

    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

    def __init__(self, root: str, system_dirs: list[str] = (DEBIAN_DIR,), download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.system_dirs, self.download = Path(root), [Path(d) for d in system_dirs], download

    def _find_dir(self) -> Path:
        for folder in [self.root, *self.system_dirs]:
            if all((folder / name).is_file() for name in RAW_MD5):
                return folder
        present = [str(folder / n) for folder in [self.root, *self.system_dirs] for n in RAW_MD5 if (folder / n).exists()]
        if present:  # a partial copy: name the first missing file there
            folder = Path(present[0]).parent
            missing = next(n for n in RAW_MD5 if not (folder / n).is_file())
            raise DataError(f"Fashion-MNIST file {folder / missing} is missing: {HOW_TO_GET}")
        if self.download:
            return self._download()
        raise DataError(f"Fashion-MNIST not found in {self._searched()}: {HOW_TO_GET}")

    def _searched(self) -> str:
        return " or ".join(str(d) for d in [self.root, *self.system_dirs])

    def _download(self) -> Path:
        from torchvision.datasets import FashionMNIST

        log.info("Fashion-MNIST not found locally; downloading into %s", self.root)
        try:
            FashionMNIST(str(self.root), train=True, download=True)
        except Exception as err:  # torchvision raises RuntimeError/URLError/OSError for network failures
            raise DataError(f"Fashion-MNIST not found in {self._searched()} and the download failed "
                            f"({type(err).__name__}): {HOW_TO_GET}") from err
        return self.root / "FashionMNIST" / "raw"

    def load(self) -> Splits:
        folder = self._find_dir()
        log.info("Fashion-MNIST from %s", folder)
        arrays = {name: torch.from_numpy(read_idx(folder / name).copy()) for name in RAW_MD5}
        return Splits(
            x_train=to_float_images(arrays["train-images-idx3-ubyte.gz"]),
            y_train=arrays["train-labels-idx1-ubyte.gz"].long(),
            x_test=to_float_images(arrays["t10k-images-idx3-ubyte.gz"]),
            y_test=arrays["t10k-labels-idx1-ubyte.gz"].long(),
        )
