"""One table cell: the values of one metric over the seeds of one row, as mean ± sample std (n)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Cell:
    """The values of one metric of one row, one per completed seed."""

    values: list[float] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)

    def add(self, value: float, seed: int | None) -> None:
        self.values.append(float(value))
        self.seeds.append(seed)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def text(self, pm: str = "±") -> str:
        return f"{self.mean:.4g} {pm} {self.std:.2g} (n={self.n})" if self.values else "–"
