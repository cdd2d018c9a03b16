"""A researcher's own files: an image folder and CSV tables in, `aelab-apply` on files the run never saw, export
checked with onnxruntime, and the bad-file cases (one line each; the other files still done). Real files only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import fails_cleanly, read_result, run_cli

COMMON = ["logger=none", "callbacks.progress=null", "model/arch=mlp", "model.latent_dim=4"]


def stripes(kind: int, i: int, size: int = 12) -> np.ndarray:
    """A small grayscale picture of class `kind` (horizontal, vertical or diagonal stripes), shifted by i."""
    rows, cols = np.indices((size, size))
    lines = {0: rows, 1: cols, 2: rows + cols}[kind]
    return (((lines + i) % 4 < 2) * 200 + 30).astype(np.uint8)


def image_folder(root: Path, per_class: int = 30, start: int = 0) -> Path:
    for kind in range(3):
        (root / f"class{kind}").mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            Image.fromarray(stripes(kind, i)).save(root / f"class{kind}" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("images")
    image_folder(tmp / "train")
    run = tmp / "run"
    out = run_cli("aelab-train", ["data=image_folder", f"data.path={tmp / 'train'}", "data.channels=1", "data.size=12",
                                  f"data.cache_dir={tmp / 'cache'}", "model=rae", "trainer.max_epochs=3",
                                  "eval=[probe]", *COMMON, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.mark.slow
def test_image_folder_run_infers_shape_and_classes_and_writes_a_preview(image_run: Path) -> None:
    record = read_result(image_run)
    assert record["state"] == "completed" and "test/probe_acc" in record["metrics"]  # the labels came from the folders
    ckpt = torch.load(image_run / "checkpoints" / "best.ckpt", weights_only=True)
    data = ckpt["aelab_config"]["data"]
    assert data["shape"] == [1, 12, 12] and data["num_classes"] == 3  # read from the files, recorded in the run
    state = ckpt["aelab_apply"]
    assert state["preprocessing"]["classes"] == ["class0", "class1", "class2"] and state["density"]["kind"] == "LatentGMM"
    preview = Image.open(image_run / "data_preview.png")
    assert preview.size[0] > 12 * 8  # a grid of training images


def apply(run: Path, out: Path, *args: str) -> tuple[object, dict]:
    result = run_cli("aelab-apply", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"output={out}", *args])
    record = json.loads((out / "apply.json").read_text()) if (out / "apply.json").is_file() else {}
    return result, record


@pytest.mark.slow
def test_apply_reconstructs_new_images_and_skips_the_files_that_do_not_fit(image_run: Path, tmp_path: Path) -> None:
    new = image_folder(tmp_path / "new", per_class=4, start=100)  # never seen in training
    (new / "class0" / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8) + 90).save(new / "class1" / "colour.png")  # RGB for a gray model
    result, record = apply(image_run, tmp_path / "out", f"input={new}", "mode=reconstruct")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(record["written"]) == 13 and len(record["skipped"]) == 1
    assert "broken.png" in record["skipped"][0] and "not a readable image" in record["skipped"][0]
    gray = record["read"]["converted"]["colour converted to gray (ITU-R 601 luma)"]  # as training converts
    assert gray == {"count": 1, "first": ["class1/colour.png"]}
    from aelab.tracking.checkpoint import load_checkpoint, rebuild_model

    model = rebuild_model(load_checkpoint(image_run / "checkpoints" / "best.ckpt"))[0].eval()
    x = torch.from_numpy(stripes(2, 100)).float().div(255).view(1, 1, 12, 12)  # the file as the run's input
    with torch.no_grad():
        want = model.reconstruct(x)[0, 0].numpy() * 255
    got = np.asarray(Image.open(tmp_path / "out" / "class2" / "100.png").convert("L"), dtype=np.float64)
    assert got.shape == (12, 12) and np.abs(got - want).max() <= 1.0  # the model's output, up to 8-bit rounding


@pytest.mark.slow
def test_apply_encodes_samples_and_refuses_a_missing_input(image_run: Path, tmp_path: Path) -> None:
    new = image_folder(tmp_path / "new", per_class=2, start=200)
    result, record = apply(image_run, tmp_path / "codes", f"input={new}", "mode=encode")
    assert result.returncode == 0, result.stderr[-2000:]
    codes = np.load(tmp_path / "codes" / "codes.npy")
    rows = list(csv.reader(open(tmp_path / "codes" / "codes.csv")))
    assert codes.shape == (6, 4) and rows[0] == ["file", "z0", "z1", "z2", "z3"] and rows[1][0] == "class0/200.png"
    assert np.allclose(codes[0], [float(v) for v in rows[1][1:]], atol=1e-6)
    result, record = apply(image_run, tmp_path / "samples", "mode=sample", "n=5")  # through the stored GMM
    assert result.returncode == 0 and len(list((tmp_path / "samples").glob("sample_*.png"))) == 5
    fails_cleanly([f"ckpt_path={image_run / 'checkpoints' / 'best.ckpt'}", f"input={tmp_path / 'absent'}", "mode=encode",
                   f"output={tmp_path / 'none'}"], f"input={tmp_path / 'absent'} does not exist", tmp_path / "none",
                  command="aelab-apply")


@pytest.mark.slow
def test_export_runs_outside_aelab_and_matches_pytorch(image_run: Path, tmp_path: Path) -> None:
    result, record = apply(image_run, tmp_path / "exported", "mode=export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(v < 1e-4 for v in record["checks"].values()) and set(record["checks"]) == {"encoder", "decoder", "autoencoder"}
    from aelab.tracking.checkpoint import load_checkpoint, rebuild_model

    model = rebuild_model(load_checkpoint(image_run / "checkpoints" / "best.ckpt"))[0].eval()
    x = torch.rand(7, 1, 12, 12)
    program = torch.export.load(tmp_path / "exported" / "autoencoder.pt2").module()
    with torch.no_grad():
        assert torch.allclose(program(x), model.reconstruct(x), atol=1e-5)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "exported" / "encoder.onnx"))
    codes = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(codes, model.encode(x).numpy(), atol=1e-5)


# ---- tables --------------------------------------------------------------------------------------------------
def table(path: Path, n_normal: int, n_anomaly: int, seed: int) -> Path:
    """Normal rows near a 2-d plane in 6-d, anomalies off it; a label column and a text column to ignore."""
    g = np.random.default_rng(seed)
    basis = np.array([[1.0, 0.5, -0.3, 0.8, 0.0, 0.2], [0.0, 1.0, 0.7, -0.4, 0.9, -0.5]])
    normal = g.normal(size=(n_normal, 2)) @ basis + 0.05 * g.normal(size=(n_normal, 6))
    anomaly = g.normal(size=(n_anomaly, 6)) * 1.5
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *[f"f{i}" for i in range(6)], "kind"])
        for i, (row, kind) in enumerate([(r, "ok") for r in normal] + [(r, "fraud") for r in anomaly]):
            writer.writerow([f"r{i}", *map(float, row), kind])
    return path


@pytest.mark.slow
def test_table_threshold_gives_its_false_positive_rate_on_new_normal_rows(tmp_path: Path) -> None:
    train = table(tmp_path / "train.csv", 3000, 200, seed=0)
    run = tmp_path / "run"
    out = run_cli("aelab-train", ["data=csv", f"data.path={train}", "data.label_column=kind", "data.anomaly_labels=[fraud]",
                                  "data.feature_columns=[f0,f1,f2,f3,f4,f5]", "data.normal_classes=[0]",
                                  f"data.cache_dir={tmp_path / 'cache'}", "eval=[anomaly]", "trainer.max_epochs=15",
                                  "callbacks.reconstructions=null", "callbacks.embeddings=null", "callbacks.samples=null",
                                  "threshold_fpr=0.1", *COMMON, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "data_preview.txt").read_text().count("\n") > 6 and read_result(run)["metrics"]["test/auroc"] > 0.9
    fresh = table(tmp_path / "fresh.csv", 2000, 0, seed=1)  # new normal rows, columns in the same order plus extras
    result, record = apply(run, tmp_path / "scores", f"input={fresh}")
    assert result.returncode == 0 and record["mode"] == "score", result.stderr[-2000:]
    flags = [int(r["flag"]) for r in csv.DictReader(open(tmp_path / "scores" / "scores.csv"))]
    calibrated_on = record["threshold"]["calibrated_on"]  # normal validation rows the quantile came from
    tolerance = 3 * np.sqrt(0.1 * 0.9 / len(flags)) + 3 * np.sqrt(0.1 * 0.9 / calibrated_on)
    assert len(flags) == 2000 and abs(np.mean(flags) - 0.1) < tolerance  # the calibrated false-positive rate
    bad = tmp_path / "bad.csv"
    bad.write_text("id,f0,f1\nr1,1,2\n")  # missing columns: skipped with one line, the good file still scored
    result, record = apply(run, tmp_path / "mixed", f"input={tmp_path}", "mode=score")
    assert result.returncode == 0 and any("bad.csv" in s and "'f2'" in s for s in record["skipped"])


@pytest.mark.slow
def test_csv_multiclass_infers_classes_and_bad_values_name_the_line(tmp_path: Path) -> None:
    path = table(tmp_path / "t.csv", 200, 100, seed=2)
    run = tmp_path / "run"
    out = run_cli("aelab-train", ["data=csv", f"data.path={path}", "data.label_column=kind", "data.feature_columns=[f0,f1,f2,f3,f4,f5]",
                                  "data.cache_dir=null", "eval=[probe]", "trainer.max_epochs=2", "callbacks.reconstructions=null",
                                  "callbacks.embeddings=null", "callbacks.samples=null", *COMMON, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    data = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["aelab_config"]["data"]
    assert data["shape"] == [6] and data["num_classes"] == 2
    text = path.read_text().splitlines()
    text[5] = text[5].replace(text[5].split(",")[3], "n/a")
    path.write_text("\n".join(text) + "\n")
    fails_cleanly(["data=csv", f"data.path={path}", "data.label_column=kind", "data.cache_dir=null", *COMMON],
                  f"{path} line 2, column 'id': 'r0' is not a number", tmp_path / "text")  # a text column named
    fails_cleanly(["data=csv", f"data.path={path}", "data.label_column=kind", "data.feature_columns=[f0,f1,f2,f3,f4,f5]",
                   "data.cache_dir=null", *COMMON], f"{path} line 6, column 'f2': 'n/a' is not a number", tmp_path / "bad")


@pytest.mark.parametrize("case", ["empty", "unreadable", "mixed_sizes"])
@pytest.mark.slow
def test_bad_image_folders_stop_with_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    if case != "empty":
        for i in range(6):
            Image.fromarray(stripes(0, i)).save(folder / f"{i}.png")
    if case == "unreadable":
        (folder / "3.png").write_bytes(b"\x89PNG truncated")
    if case == "mixed_sizes":
        Image.fromarray(np.zeros((20, 16), np.uint8)).save(folder / "9.png")
    expected = {"empty": f"{folder} holds no images Pillow reads", "unreadable": f"{folder / '3.png'} is not a readable image",
                "mixed_sizes": f"{folder / '9.png'} is 16x20 but"}[case]
    fails_cleanly(["data=image_folder", f"data.path={folder}", "data.size=null", "data.cache_dir=null", *COMMON],
                  expected, tmp_path / "run")


def test_decoded_images_are_cached_and_read_back(tmp_path: Path) -> None:
    from aelab.core.build import build
    from helpers import compose_cfg

    image_folder(tmp_path / "imgs", per_class=5)
    overrides = ["data=image_folder", f"data.path={tmp_path / 'imgs'}", "data.size=10", "data.channels=3",
                 f"data.cache_dir={tmp_path / 'cache'}"]
    first = build(compose_cfg(overrides).data)
    first.setup()
    cached = list((tmp_path / "cache").glob("image_folder-*.pt"))
    assert len(cached) == 1 and first.shape == [3, 10, 10]
    torch.save({"x": torch.zeros(15, 3, 10, 10), "y": torch.zeros(15, dtype=torch.long), "classes": ["c"],
                "files": ["f"] * 15, "converted": {}, "bad_files": []}, cached[0])  # what a second read uses
    second = build(compose_cfg(overrides).data)
    second.setup()
    assert float(second.split("train").x.abs().sum()) == 0.0
    Image.fromarray(stripes(1, 7)).save(tmp_path / "imgs" / "class0" / "new.png")  # a changed folder: read again
    third = build(compose_cfg(overrides).data)
    third.setup()
    assert float(third.split("train").x.abs().sum()) > 0 and len(list((tmp_path / "cache").glob("*.pt"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("task", ["colorize", "denoise"])
def test_apply_follows_the_runs_task(task: str, tmp_path: Path) -> None:
    """auto: a colorize run turns any image's luminance into colour; a denoise run restores its inputs."""
    data = ["data=shapes_color", "task=colorize"] if task == "colorize" else ["data=digits", "task=denoise"]
    run = tmp_path / "run"
    out = run_cli("aelab-train", [*data, "debug=limit", "eval=none", *COMMON, f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    new = tmp_path / "new"
    new.mkdir()
    size = 32 if task == "colorize" else 8
    Image.fromarray(stripes(0, 1, size)).save(new / "gray.png")
    if task == "colorize":
        Image.fromarray(np.stack([stripes(1, 2, size)] * 3, axis=-1)).save(new / "colour.jpg")  # its luminance is used
    result, record = apply(run, tmp_path / "out", f"input={new}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert record["mode"] == {"colorize": "colorize", "denoise": "restore"}[task] and not record["skipped"]
    written = [Image.open(tmp_path / "out" / name) for name in record["written"]]
    assert len(written) == (2 if task == "colorize" else 1)
    assert all(im.size == (size, size) and len(im.getbands()) == (3 if task == "colorize" else 1) for im in written)
