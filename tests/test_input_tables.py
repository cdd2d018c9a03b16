"""Messy real tables in (semicolons, tabs, BOM, Latin-1, UTF-16, text and empty cells, constant columns): each
parsed and standardised tensor is checked against one computed with numpy from the numbers written; statistics come
from the normal training rows alone; `aelab-apply` reads the same files to the same tensors; the small-data warnings."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.stats
import torch

from aelab.core.errors import ConfigError, DataError
from aelab.data.inputs import table_inputs
from aelab.data.tabular import CSVDataModule
from aelab.evals.anomaly import calibrate_threshold, fpr_interval, threshold_warning
from helpers import compose_cfg, read_result, run_cli

HEADER = ["id", "Temperatur (°C)", "druck"]  # a non-ASCII header; id (a feature too) identifies each row
FORMATS = {  # name -> delimiter, encoding written, line end, what the reader should name
    "comma": (",", "utf-8", "\n", "UTF-8 text, comma"),
    "semicolon": (";", "utf-8", "\n", "UTF-8 text, semicolon"),
    "tab": ("\t", "utf-8", "\n", "UTF-8 text, tab"),
    "excel_bom": (",", "utf-8-sig", "\r\n", "UTF-8 with BOM text, comma"),
    "latin1": (";", "latin-1", "\r\n", "Latin-1 text, semicolon"),
    "utf16": ("\t", "utf-16", "\n", "UTF-16 text, tab"),
}


def raw_table(n_normal: int = 40, n_anomaly: int = 12, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """(N, 3) numbers (id, temperature, pressure) and labels; anomalies on a scale ~100x the normal rows'."""
    g = np.random.default_rng(seed)
    normal = g.normal([20.0, 1000.0], [3.0, 5.0], size=(n_normal, 2))
    anomaly = g.normal([500.0, -1e4], [100.0, 900.0], size=(n_anomaly, 2))
    values = np.vstack([normal, anomaly])
    return np.column_stack([np.arange(len(values)), values]), ["ok"] * n_normal + ["bad"] * n_anomaly


def write(path: Path, x: np.ndarray, kinds: list[str], fmt: str = "comma", cells: dict | None = None,
          header: list[str] = HEADER) -> Path:
    """The table as text in format `fmt`; `cells` {(row, col): text} replaces numbers (text, empty cells)."""
    delimiter, encoding, end = FORMATS[fmt][:3]
    lines = [delimiter.join([*header, "kind"])]
    for i, (row, kind) in enumerate(zip(x, kinds)):
        fields = [(cells or {}).get((i, j), repr(float(v))) for j, v in enumerate(row)]
        lines.append(delimiter.join([*fields, kind]))
    path.write_bytes((end.join(lines) + end).encode(encoding))
    return path


def module(path: Path, **kwargs) -> CSVDataModule:
    """One-class data (normal = 'ok') read and split, without a cache."""
    data = CSVDataModule(path=str(path), label_column="kind", anomaly_labels=["bad"], name="t", shape=None,
                         num_classes=None, normal_classes=[0], **{"val_size": 0.2, **kwargs})
    data.setup()
    return data


def keys(data: CSVDataModule, x: torch.Tensor) -> np.ndarray:
    """The id of each standardised row, undoing the run's own standardisation of the id column."""
    return np.rint(x[:, 0].double().numpy() * float(data.feature_std[0]) + float(data.feature_mean[0])).astype(int)


def check_standardised(data: CSVDataModule, x: np.ndarray) -> np.ndarray:
    """Every split equals (rows - mean) / std with numpy's mean and std of the normal training rows; their ids."""
    train = keys(data, data.train_set.x)
    mean, std = np.mean(x[train], axis=0), np.std(x[train], axis=0)
    assert np.allclose(data.feature_mean.numpy(), mean, rtol=1e-12) and np.allclose(data.feature_std.numpy(), std, rtol=1e-12)
    for split in (data.train_set, data.val_set, data.test_set):
        rows = keys(data, split.x)
        assert np.allclose(split.x.numpy(), (x[rows] - mean) / std, atol=1e-5)
    return train


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_messy_formats_read_the_numbers_written_and_apply_reads_them_alike(fmt: str, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    x, kinds = raw_table()
    path = write(tmp_path / "t.csv", x, kinds, fmt)
    with caplog.at_level(logging.INFO):
        data = module(path)
    said = [r.getMessage() for r in caplog.records if "read as" in r.getMessage()]
    assert len(said) == 1 and f"{FORMATS[fmt][3]}-separated (both detected)" in said[0]
    assert data.feature_names == HEADER
    train = check_standardised(data, x)
    inputs = table_inputs([path], data.preprocessing())  # aelab-apply's reader on the same file
    assert inputs.names == [f"t.csv:{i + 2}" for i in range(len(x))] and not inputs.skipped
    assert torch.equal(inputs.x[torch.from_numpy(train)], data.train_set.x)  # bit for bit what training saw


def test_statistics_come_from_the_normal_training_rows_alone(tmp_path: Path) -> None:
    x, kinds = raw_table()
    data = module(write(tmp_path / "t.csv", x, kinds))
    train, val = keys(data, data.train_set.x), keys(data, data.val_set.x)
    assert all(kinds[i] == "ok" for i in train) and not set(train) & set(val) and len(val) > 0
    assert np.allclose(data.preprocessing()["mean"].numpy(), np.mean(x[train], axis=0), rtol=1e-12)
    assert np.allclose(data.preprocessing()["std"].numpy(), np.std(x[train], axis=0), rtol=1e-12)
    pool = np.concatenate([train, val, np.flatnonzero(np.array(kinds) == "bad")])
    assert abs(np.std(x[pool], axis=0)[1] / float(data.feature_std[1])) > 10  # what fitting on the pool would give
    anomalies = data.test_set.x[data.is_anomaly(data.test_set.y)]
    assert float(anomalies[:, 1].abs().min()) > 50  # far out on the normal rows' scale, not squashed in


def test_forced_settings_and_a_wrong_encoding(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x, kinds = raw_table()
    path = write(tmp_path / "t.csv", x, kinds, "latin1")
    with caplog.at_level(logging.INFO):
        data = module(path, delimiter=";", encoding="latin-1")
    assert any("latin-1 text, semicolon-separated (both set)" in r.getMessage() for r in caplog.records)
    check_standardised(data, x)
    with pytest.raises(DataError, match=r"t\.csv is not utf-8 text .*: set data.encoding") as err:
        module(path, encoding="utf-8")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="data.delimiter='::' must be one character"):
        module(path, delimiter="::")
    assert module(write(tmp_path / "tab.csv", x, kinds, "tab"), delimiter="tab").feature_names == HEADER


def test_text_and_empty_cells_stop_the_run_or_are_skipped_and_listed(tmp_path: Path) -> None:
    x, kinds = raw_table()
    cells = {(3, 2): "n/a", (7, 1): " ", (45, 2): "1,5"}  # rows 3 and 7 normal, 45 an anomaly
    path = write(tmp_path / "t.csv", x, kinds, "semicolon", cells)
    with pytest.raises(DataError) as err:
        module(path)
    assert str(err.value).startswith(f"{path} line 5, column 'druck': 'n/a' is not a number") and "\n" not in str(err.value)
    data = module(path, on_bad_row="skip")
    assert data.skipped_rows == ["line 5, column 'druck': 'n/a' is not a number",
                                 "line 9, column 'Temperatur (°C)': the cell is empty (a missing value)",
                                 "line 47, column 'druck': '1,5' is not a number"]
    assert len(data.notes) == 1 and "skipped 3 row(s)" in data.notes[0] and "line 47" in data.notes[0]
    kept = np.setdiff1d(np.arange(len(x)), [3, 7, 45])
    check_standardised(data, x)
    seen = np.concatenate([keys(data, split.x) for split in (data.train_set, data.val_set, data.test_set)])
    assert set(seen) <= set(kept) and len(set(seen)) == len(seen)  # the bad rows in no split
    inputs = table_inputs([path], data.preprocessing())
    assert inputs.skipped == [f"t.csv {m}" for m in data.skipped_rows]
    assert inputs.names == [f"t.csv:{i + 2}" for i in kept]
    assert np.allclose(inputs.x.numpy(), (x[kept] - data.feature_mean.numpy()) / data.feature_std.numpy(), atol=1e-5)


def test_a_constant_column_is_centred_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x, kinds = raw_table()
    x = np.column_stack([x, np.where(np.array(kinds) == "ok", 7.0, 7.5)])  # constant on the normal rows only
    path = write(tmp_path / "t.csv", x, kinds, header=[*HEADER, "const"])
    with caplog.at_level(logging.WARNING):
        data = module(path)
    assert any("constant column(s)" in r.getMessage() and "'const'" in r.getMessage() for r in caplog.records)
    assert float(data.feature_std[3]) == 1.0 and torch.equal(data.train_set.x[:, 3], torch.zeros(len(data.train_set)))
    rows = keys(data, data.test_set.x)
    assert np.allclose(data.test_set.x[:, 3].numpy(), x[rows, 3] - 7.0)  # centred, not scaled
    assert any("'const'" in note for note in data.notes)


def test_the_fpr_interval_is_clopper_pearson() -> None:
    assert fpr_interval(0, 4) == [0.0, pytest.approx(1 - 0.025 ** (1 / 4))]  # closed form at k = 0
    low, high = fpr_interval(3, 40)
    assert scipy.stats.binom.cdf(3, 40, high) == pytest.approx(0.025) and scipy.stats.binom.sf(2, 40, low) == pytest.approx(0.025)


class SquaredNorm(torch.nn.Module):
    """A stand-in model whose only anomaly score is the squared norm of the input."""

    device = torch.device("cpu")

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recon": x.pow(2).sum(1)}


def test_a_threshold_calibrated_on_a_few_rows_says_how_loose_it_is(tmp_path: Path) -> None:
    x, kinds = raw_table()
    data = module(write(tmp_path / "t.csv", x, kinds), val_size=4)
    threshold = calibrate_threshold(SquaredNorm(), data, 0.05)
    scores = data.val_set.x.pow(2).sum(1).double().numpy()  # task reconstruct: the inputs are the rows
    n = len(scores)
    assert threshold["calibrated_on"] == n <= 4 and threshold["threshold"] == pytest.approx(np.quantile(scores, 0.95))
    assert threshold["flagged"] == int((scores > threshold["threshold"]).sum())
    warning = threshold_warning(threshold)
    low, high = fpr_interval(threshold["flagged"], n)
    assert f"calibrated on {n} normal validation rows" in warning and f"{100 * low:.1f}-{100 * high:.1f}%" in warning
    assert threshold_warning({**threshold, "calibrated_on": 5000, "flagged": 250, "fpr_interval": fpr_interval(250, 5000)}) is None


def test_few_optimizer_steps_are_named(tmp_path: Path) -> None:
    from aelab.commands.train import warn_few_steps

    x, kinds = raw_table()
    data = module(write(tmp_path / "t.csv", x, kinds))
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    per_epoch = math.ceil(len(data.train_set) / data.batch_size)
    (few,) = warn_few_steps(pl.Trainer(max_epochs=3, **quiet), data)
    assert f"only {3 * per_epoch} optimizer steps" in few
    assert "only 100 optimizer steps" in warn_few_steps(pl.Trainer(max_epochs=1000, max_steps=100, **quiet), data)[0]
    assert warn_few_steps(pl.Trainer(max_epochs=500, **quiet), data) == []


def test_the_code_is_narrower_than_the_table_unless_the_user_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aelab.commands.train import infer_data_shape
    from aelab.core.build import build

    x, kinds = raw_table()
    path = write(tmp_path / "t.csv", x, kinds)
    # 16 >= 3 columns: 3 // 2, unless given, or the model cannot take it (vq_vae: code_dim 4 must divide it)
    for model, given, want in (("ae", [], 1), ("ae", ["model.latent_dim=16"], 16), ("vq_vae", [], 16)):
        monkeypatch.setattr("aelab.commands.train.job_overrides", lambda given=given: given)
        cfg = compose_cfg(["data=csv", f"data.path={path}", "data.label_column=kind", "data.cache_dir=null",
                           f"model={model}", "model/arch=mlp"], tmp_path)
        infer_data_shape(cfg, build(cfg.data, task=build(cfg.task), seed=0))
        assert cfg.data.shape == [3] and cfg.model.latent_dim == want


@pytest.mark.slow
def test_a_one_class_run_on_a_messy_table_records_its_warnings(tmp_path: Path) -> None:
    """One real run: Latin-1, semicolons, a skipped row, 4 val rows; the notes, the code size, apply's reading."""
    x, kinds = raw_table()
    path = write(tmp_path / "t.csv", x, kinds, "latin1", {(5, 1): "?"})
    run = tmp_path / "run"
    out = run_cli("aelab-train", ["data=csv", f"data.path={path}", "data.label_column=kind", "data.anomaly_labels=[bad]",
                                  "data.normal_classes=[0]", "data.val_size=4", "data.on_bad_row=skip", "data.cache_dir=null",
                                  "logger=none", "model/arch=mlp", "trainer.max_epochs=1", "eval=none",
                                  "callbacks.progress=null", "callbacks.reconstructions=null", "callbacks.embeddings=null",
                                  "callbacks.samples=null", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    notes = read_result(run)["notes"]
    assert any("only 1 optimizer steps" in n for n in notes) and any("normal validation rows" in n for n in notes)
    assert any("skipped 1 row(s)" in n and "line 7, column 'Temperatur (°C)'" in n for n in notes)
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["aelab_config"]["model"]["latent_dim"] == 1  # 3 columns, model.latent_dim not given
    state = ckpt["aelab_apply"]
    assert state["threshold"]["calibrated_on"] <= 4 and state["threshold"]["fpr_interval"][1] > 0.5
    inputs = table_inputs([path], state["preprocessing"])
    kept = np.setdiff1d(np.arange(len(x)), [5])
    assert inputs.names == [f"t.csv:{i + 2}" for i in kept]
    prep = state["preprocessing"]
    assert np.allclose(inputs.x.numpy(), (x[kept] - prep["mean"].numpy()) / prep["std"].numpy(), atol=1e-5)
