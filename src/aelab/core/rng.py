"""Seeded blocks that leave torch's global random state as they found it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global RNG seeded with `seed` inside the block, restored after it: for draws that cannot take a
    `torch.Generator` (a module that samples inside its forward). The draws are those after `torch.manual_seed(seed)`;
    the CUDA generators are forked and seeded too once CUDA is in use (`fork_rng(devices=[])` alone would leave
    them reseeded), and not touched before (a lazy seed would fire when CUDA starts later)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed_all(seed)
        yield
