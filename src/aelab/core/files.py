"""Files written whole or not at all: into a temporary file beside the target, then renamed over it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` then `os.replace(tmp, path)`: a reader, in this process or another, sees the old file or the
    whole new one, never half of one. `tmp` is `.<name>.<pid>.tmp` in the same folder (one file system, so the
    rename is atomic): hidden, ending in .tmp, and its own for each process writing the same folder. A failed
    write leaves no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`path.write_text(text)`, atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_atomic(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj, path)`, atomically (see `atomic_write`)."""
    import torch  # here, not at the top: core stays importable without torch loaded (the CLI's instant --help)

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
