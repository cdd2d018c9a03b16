"""Scikit-learn's bundled breast-cancer table (Wisconsin diagnostic, 569 rows) as a CSV for `data=breast_cancer`.

`data=breast_cancer` writes it on first use (`data.bundled: breast_cancer`), from any folder, so it travels with the
package. By hand: `python -m aelab.data.sklearn_tables [out.csv]` (default data/breast_cancer.csv). The header
holds the 30 feature names (with their spaces) and a `diagnosis` column, `malignant` (212 rows) or `benign` (357).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sklearn.datasets import load_breast_cancer

from aelab.core.files import atomic_write

DEFAULT = Path("data/breast_cancer.csv")


def export_breast_cancer(path: str | Path = DEFAULT) -> Path:
    """Write the table to `path` atomically (temporary file, then rename) and return the path."""
    path = Path(path)
    bunch = load_breast_cancer()
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*bunch.feature_names, "diagnosis"])
            for features, target in zip(bunch.data, bunch.target):
                writer.writerow([repr(float(v)) for v in features] + [bunch.target_names[target]])  # repr round-trips

    return atomic_write(path, write)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(DEFAULT), help=f"output CSV (default {DEFAULT})")
    path = export_breast_cancer(parser.parse_args(argv).out)
    print(f"wrote {path}")


BUNDLED = {"breast_cancer": export_breast_cancer}  # data.bundled -> the function that writes that table


if __name__ == "__main__":
    main()
