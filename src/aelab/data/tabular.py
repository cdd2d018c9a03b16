"""Any CSV table with a header as a dataset: `data=csv data.path=<file> data.label_column=<name>`.

Numeric feature columns (every column but the label, or `feature_columns`) become x; the label column, when
named, becomes y: with `anomaly_labels`, y = 1 for rows whose label (as text, surrounding spaces ignored) is one
of them, else 0 (one-class anomaly data); without, y = the index of the label among its values in name order.
A seeded `test_size` share of each label is held out as the test set; the rest is the train pool, which the base
class later splits into train and val. Features are standardised with the mean and std of the train split alone
(after the val split; with `normal_classes`, its normal rows only): x' = (x - mean_train) / std_train for every
split, so no val, test or anomalous row shapes the statistics; a constant column (std ~ 0) is only centred and
named in the log. The statistics travel in the checkpoint, so `aelab-apply` standardises new rows the same way.
Encoding and delimiter are detected (`aelab.data.table_reader`; `encoding` / `delimiter` force them); a bad row
stops the run with one line, or with `on_bad_row: skip` is dropped, counted and listed (`skipped_rows`, the notes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from aelab.core.errors import ConfigError, DataError
from aelab.data.base import InMemoryDataModule, Splits
from aelab.data.cache import cached
from aelab.data.table_reader import check_settings, parse_rows, read_csv

log = logging.getLogger(__name__)
SHOWN = 3  # bad rows named in the log line and the note (all are in `skipped_rows`)


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std in float64, as float32: training and `aelab-apply` both call this, so they agree exactly."""
    return ((x.double() - mean) / std).float()


def fit_standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std (1 for a constant column, which is then only centred) and the constant columns' mask of (N, F)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    constant = std <= 1e-12 * (1.0 + np.abs(mean))
    return mean, np.where(constant, 1.0, std), constant



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
                 cache_dir: str | None = None, delimiter: str | None = None, encoding: str | None = None,
                 on_bad_row: str = "error", **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        if anomaly_labels is not None and not anomaly_labels:
            raise ConfigError("data.anomaly_labels must name at least one label value (or be null)")
        if anomaly_labels is not None and label_column is None:
            raise ConfigError("data.anomaly_labels needs data.label_column: the column that holds the labels")
        if feature_columns is not None and label_column in feature_columns:
            raise ConfigError(f"data.feature_columns includes the label column {label_column!r}")
        self.delimiter, self.encoding, self.on_bad_row = check_settings(delimiter, encoding, on_bad_row), encoding, on_bad_row
        self.path, self.label_column = Path(path).expanduser(), label_column
        self.anomaly_labels = None if anomaly_labels is None else [str(v) for v in anomaly_labels]  # compare as text
        self.feature_columns = None if feature_columns is None else list(feature_columns)
        self.test_size, self.cache_dir = test_size, cache_dir
        self.bundled = bundled  # a table aelab ships (aelab.data.sklearn_tables), written to `path` when missing
        self.feature_names: list[str] = []
        self.classes: list[str] = []  # the label value of each y
        self.skipped_rows: list[str] = []  # with on_bad_row=skip: "line L, column C: why" of each row dropped
        self.notes: list[str] = []  # what the run record should say about the input (skipped rows, constant columns)
        self.feature_mean: torch.Tensor | None = None  # (F,) train-split statistics, to undo the standardisation
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
        settings = {"kind": "csv", "label": self.label_column, "features": self.feature_columns,
                    "delimiter": self.delimiter, "encoding": self.encoding, "on_bad_row": self.on_bad_row}
        table = cached([self.path], settings, self.cache_dir, self._read)
        x, labels, self.feature_names = table["x"], list(table["labels"]), list(table["names"])
        self.skipped_rows = list(table["skipped"])
        y = self._labels(labels)
        if self.num_classes is None:
            self.num_classes = len(self.classes)
        test, pool = stratified_split(self.path, y, self.test_size, self.split_seed + 1, self.classes)
        log.info("%s: %d rows, %d features, labels %s; read as %s", self.path, len(y), x.shape[1],
                 {name: int((y == i).sum()) for i, name in enumerate(self.classes)}, table["read_as"])
        self._note_skipped()
        yt, pool_t, test_t = torch.from_numpy(y), torch.from_numpy(pool), torch.from_numpy(test)
        return Splits(x_train=x[pool_t], y_train=yt[pool_t], x_test=x[test_t], y_test=yt[test_t])  # float64, raw

    def _note_skipped(self) -> None:
        """Log and note the rows `on_bad_row=skip` dropped, the first few named."""
        if not self.skipped_rows:
            return
        shown = "; ".join(self.skipped_rows[:SHOWN]) + (" ..." if len(self.skipped_rows) > SHOWN else "")
        note = f"{self.path}: skipped {len(self.skipped_rows)} row(s) with a bad value (data.on_bad_row=skip): {shown}"
        log.warning(note)
        self.notes.append(note)

    def fit_preprocessing(self, x_train: torch.Tensor) -> None:
        """Mean and std of the train split's rows only; constant columns (std ~ 0) are centred only, and named."""
        mean, std, constant = fit_standardisation(x_train.double().numpy())
        self.feature_mean, self.feature_std = torch.from_numpy(mean), torch.from_numpy(std)
        if constant.any():
            names = ", ".join(repr(n) for n, c in zip(self.feature_names, constant) if c)
            note = f"{self.path}: constant column(s) in the {len(x_train)} training rows, centred but not scaled: {names}"
            log.warning(note)
            self.notes.append(note)
        log.info("%s: standardised with the mean and std of the %d training rows only", self.path, len(x_train))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return standardise(x, self.feature_mean, self.feature_std)

    def preprocessing(self) -> dict:
        """The feature columns, their train-split mean and std, and the reader's settings, for `aelab-apply`."""
        return {**super().preprocessing(), "columns": list(self.feature_names), "mean": self.feature_mean,
                "std": self.feature_std, "label_column": self.label_column, "delimiter": self.delimiter,
                "encoding": self.encoding}

    def _read(self) -> dict:
        """The parsed table: features (N, F) float64, label strings (empty without a label column), column names,
        the bad rows skipped, and how the file was read."""
        table = read_csv(self.path, self.delimiter, self.encoding)
        label, features = column_indices(self.path, table.header, self.label_column, self.feature_columns)
        rows = parse_rows(table, label, features, skip=self.on_bad_row == "skip")
        return {"x": torch.from_numpy(rows.x), "labels": rows.labels, "names": [table.header[j] for j in features],
                "skipped": rows.skipped, "read_as": table.describe()}
