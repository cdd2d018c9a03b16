"""Any CSV table with a header as a dataset: `data=csv data.path=<file> data.label_column=<name>`.

Numeric feature columns (every column but the label, or `feature_columns`) become x; the label column, when
named, becomes y: with `anomaly_labels`, y = 1 for rows whose label (as text, surrounding spaces ignored) is one
of them, else 0 (one-class anomaly data); without, y = the index of the label among its values in name order.
A seeded `test_size` share of each label is held out as the test set; the rest is the train pool, which the base
class later splits into train and val. Features are standardised with the mean and std of that whole train pool
(val rows included, test rows never): x' = (x - mean_pool) / std_pool, a constant column (std ~ 0) only centred.
The statistics travel in the checkpoint, so `aelab-apply` standardises new rows the same way.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np
import torch

from aelab.data.base import InMemoryDataModule, Splits
from aelab.data.cache import cached
from aelab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Rows = list[tuple[int, list[str]]]  # (1-based line number in the file, fields) of each data row


def read_csv(path: Path) -> tuple[list[str], Rows]:
    """Header and non-blank rows of a CSV file; DataError for a missing, unreadable or empty file."""
    if not path.is_file():
        raise DataError(f"{path} not found: set data.path to an existing CSV file")
    reader = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if row]  # blank lines are skipped
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num if reader else 1}: not valid CSV ({err})") from err
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror})") from err
    if header is None or not any(name.strip() for name in header):
        raise DataError(f"{path} is empty: expected a header line naming the columns, then one row per example")
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: the header names column(s) {', '.join(map(repr, duplicates))} more than once")
    return header, rows


def column_indices(path: Path, header: list[str], label: str | None,
                   features: list[str] | None) -> tuple[int | None, list[int]]:
    """Index of the label column (None without one) and of the feature columns (default: every other column)."""
    present = ", ".join(map(repr, header))
    if label is not None and label not in header:
        raise DataError(f"{path}: label column {label!r} is not in the header; columns present: {present}")
    if features is None:
        features = [name for name in header if name != label]
    missing = [name for name in features if name not in header]
    if missing:
        raise DataError(f"{path}: feature column(s) {', '.join(map(repr, missing))} not in the header; "
                        f"columns present: {present}")
    if not features:
        raise DataError(f"{path}: no feature columns besides the label column {label!r}")
    return (header.index(label) if label is not None else None), [header.index(name) for name in features]


def parse_rows(path: Path, header: list[str], rows: Rows, label: int | None,
               features: list[int]) -> tuple[np.ndarray, list[str]]:
    """Features (N, F) float64 and label strings; DataError naming the line and column of any bad value."""
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    labels = []
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise DataError(f"{path} line {line}: {len(row)} fields but the header has {len(header)}")
        for j, col in enumerate(features):
            value = row[col]
            try:
                x[i, j] = number = float(value)
            except ValueError:
                raise DataError(f"{path} line {line}, column {header[col]!r}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise DataError(f"{path} line {line}, column {header[col]!r}: {value!r} is not a finite number")
        labels.append(row[label].strip() if label is not None else "")
    return x, labels


def stratified_split(path: Path, y: np.ndarray, test_size: float, seed: int,
                     names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (test, pool), sorted: a `test_size` share of each class (named by `names`) is held out."""
    gen = torch.Generator().manual_seed(seed)
    test = []
    for cls, kind in enumerate(names):
        idx = np.flatnonzero(y == cls)
        n_test = int(round(test_size * len(idx)))
        if not 0 < n_test < len(idx):
            raise DataError(f"{path}: {len(idx)} rows labelled {kind!r} are too few to hold out a test share of {test_size}")
        test.append(idx[torch.randperm(len(idx), generator=gen).numpy()[:n_test]])
    test_idx = np.sort(np.concatenate(test))
    return test_idx, np.setdiff1d(np.arange(len(y)), test_idx)


class CSVDataModule(InMemoryDataModule):
    """A CSV table as (N, F) standardised float features; y from the label column (see the module docstring)."""

    def __init__(self, path: str, label_column: str | None = None, anomaly_labels: list[str] | None = None,
                 feature_columns: list[str] | None = None, test_size: float = 0.3, bundled: str | None = None,
                 cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        if anomaly_labels is not None and not anomaly_labels:
            raise ConfigError("data.anomaly_labels must name at least one label value (or be null)")
        if anomaly_labels is not None and label_column is None:
            raise ConfigError("data.anomaly_labels needs data.label_column: the column that holds the labels")
        if feature_columns is not None and label_column in feature_columns:
            raise ConfigError(f"data.feature_columns includes the label column {label_column!r}")
        self.path, self.label_column = Path(path).expanduser(), label_column
        self.anomaly_labels = None if anomaly_labels is None else [str(v) for v in anomaly_labels]  # compare as text
        self.feature_columns = None if feature_columns is None else list(feature_columns)
        self.test_size, self.cache_dir = test_size, cache_dir
        self.bundled = bundled  # a table aelab ships (aelab.data.sklearn_tables), written to `path` when missing
        self.feature_names: list[str] = []
        self.classes: list[str] = []  # the label value of each y
        self.feature_mean: torch.Tensor | None = None  # (F,) train-pool statistics, to undo the standardisation
        self.feature_std: torch.Tensor | None = None

    def _labels(self, labels: list[str]) -> np.ndarray:
        """y (N,) from the label strings; sets `classes`, the name of each value of y."""
        if self.anomaly_labels is None:
            self.classes = sorted(set(labels))
            index = {name: i for i, name in enumerate(self.classes)}
            return np.array([index[label] for label in labels], dtype=np.int64)
        self.classes = ["normal", "anomaly"]
        y = np.array([label in self.anomaly_labels for label in labels], dtype=np.int64)
        if y.all() or not y.any():
            kind = "normal" if y.all() else "anomalous"
            seen = sorted(set(labels))
            shown = ", ".join(map(repr, seen[:10])) + (f" ... ({len(seen)} values)" if len(seen) > 10 else "")
            raise DataError(f"{self.path}: no {kind} rows (data.anomaly_labels={self.anomaly_labels}); "
                            f"column {self.label_column!r} holds {shown}")
        return y

    def load(self) -> Splits:
        if self.bundled is not None and not self.path.is_file():
            from aelab.data.sklearn_tables import BUNDLED

            log.info("writing the bundled %s table to %s", self.bundled, BUNDLED[self.bundled](self.path))
        if not self.path.is_file():
            raise DataError(f"{self.path} not found: set data.path to an existing CSV file")
        settings = {"kind": "csv", "label": self.label_column, "features": self.feature_columns}
        table = cached([self.path], settings, self.cache_dir, self._read)
        x, labels, self.feature_names = table["x"].numpy(), list(table["labels"]), list(table["names"])
        y = self._labels(labels)
        if self.num_classes is None:
            self.num_classes = len(self.classes)
        test, pool = stratified_split(self.path, y, self.test_size, self.split_seed + 1, self.classes)
        mean, std = x[pool].mean(axis=0), x[pool].std(axis=0)
        std = np.where(std <= 1e-12 * (1.0 + np.abs(mean)), 1.0, std)  # constant column: centre only
        x = (x - mean) / std
        self.feature_mean, self.feature_std = torch.from_numpy(mean), torch.from_numpy(std)
        log.info("%s: %d rows, %d features, labels %s", self.path, len(y), x.shape[1],
                 {name: int((y == i).sum()) for i, name in enumerate(self.classes)})
        xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
        pool_t, test_t = torch.from_numpy(pool), torch.from_numpy(test)
        return Splits(x_train=xt[pool_t], y_train=yt[pool_t], x_test=xt[test_t], y_test=yt[test_t])

    def preprocessing(self) -> dict:
        """The feature columns and their train-pool mean and std, for `aelab-apply` on new rows."""
        return {**super().preprocessing(), "columns": list(self.feature_names), "mean": self.feature_mean,
                "std": self.feature_std, "label_column": self.label_column}

    def _read(self) -> dict:
        """The parsed table: features (N, F) float64, label strings (empty without a label column), column names."""
        header, rows = read_csv(self.path)
        label, features = column_indices(self.path, header, self.label_column, self.feature_columns)
        x, labels = parse_rows(self.path, header, rows, label, features)
        return {"x": torch.from_numpy(x), "labels": labels, "names": [header[j] for j in features]}
