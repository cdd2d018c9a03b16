"""Tensors parsed from a user's files, cached after the first read: `cached(files, settings, cache_dir, read)`.

The key hashes every file's path, size and modification time with the settings that shape the tensors (image
size, channels, alpha rule, background, columns), so an edited file or a new setting reads the files again.
Written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from aelab.core.files import save_atomic

log = logging.getLogger(__name__)


def cache_key(files: list[Path], settings: dict[str, Any]) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha1(json.dumps([stats, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(files: list[Path], settings: dict[str, Any], cache_dir: str | Path | None,
           read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`read()` (a dict of tensors and lists), or its copy cached in cache_dir under a key of files + settings."""
    if cache_dir is None:
        return read()
    path = Path(cache_dir) / f"{settings.get('kind', 'files')}-{cache_key(files, settings)}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            log.info("read %d files from the cache %s", len(files), path)
            return blob
        except Exception as err:  # a damaged cache file: read the files again
            log.warning("cache %s unreadable (%s); reading the files again", path, type(err).__name__)
    blob = read()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(blob, path)
    log.info("cached %d files as tensors in %s", len(files), path)
    return blob
