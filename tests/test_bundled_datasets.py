"""Extra datasets: procedural shapes with known factors, photo patches for colorization, tabular CSV anomalies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.core.build import build
from aelab.core.errors import ConfigError, DataError
from aelab.data import shapes as shapes_mod
from aelab.data.photo_patches import PhotoPatchesDataModule, load_photo
from aelab.data.shapes import GRID, ShapesDataModule
from aelab.data.sklearn_tables import export_breast_cancer
from aelab.data.tabular import CSVDataModule
from helpers import compose_cfg

N_GRID = 3 * 4 * 8 * 8 * 8


def shapes(root: Path, channels: int = 1, **kwargs) -> ShapesDataModule:
    return ShapesDataModule(root=str(root), name="shapes", shape=[channels, 32, 32], num_classes=3,
                            channels=channels, **kwargs)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paths.data_dir shared by this module's tests, so each shapes grid is rendered once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def grid(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-channel grid before the split, as (images (N, 1, 32, 32) uint8, factors (N, 5)), in grid order."""
    data = shapes(data_dir / "shapes").grid()
    return data["images"], data["factors"]


# --- shapes -------------------------------------------------------------------------------------------------


def test_shapes_grid_holds_every_factor_combination_once(data_dir: Path, grid: tuple) -> None:
    module = shapes(data_dir / "shapes")
    splits = module.load()
    factors = torch.cat([splits.factors_train, splits.factors_test])
    assert factors.shape == (N_GRID, 5) and len(module.FACTOR_NAMES) == 5
    assert torch.equal(torch.unique(factors, dim=0), torch.from_numpy(shapes_mod.factor_grid()))
    assert [int(c.max()) + 1 for c in factors.T] == list(GRID) and int(factors.min()) == 0
    assert len(splits.x_test) == round(0.2 * N_GRID) and splits.x_train.shape[1:] == (1, 32, 32)
    assert torch.equal(splits.y_train, splits.factors_train[:, 0])
    assert torch.equal(splits.y_test, splits.factors_test[:, 0])
    assert set(torch.unique(splits.x_train).tolist()) == {0.0, 1.0}  # white on black, no anti-aliasing
    module.setup()
    assert len(module.train_set) + len(module.val_set) + len(module.test_set) == N_GRID


def test_shapes_are_rendered_deterministically_and_all_differ(grid: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, _ = grid
    again = shapes_mod.build_grid(32, 1)["images"]
    assert torch.equal(images, again)
    assert len(torch.unique(images.flatten(1), dim=0)) == N_GRID  # every factor combination gives its own image


def test_shapes_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = shapes(tmp_path).load()
    cache = tmp_path / "shapes_32.pt"
    assert cache.is_file() and not list(tmp_path.glob("*.tmp*"))  # written atomically, no leftovers
    assert set(torch.load(cache, weights_only=True)) == {"images", "factors", "version"}

    def no_render(*args: object) -> None:
        raise AssertionError("the second load must read the cache, not render")

    monkeypatch.setattr(shapes_mod, "build_grid", no_render)
    second = shapes(tmp_path).load()
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.factors_test, second.factors_test)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_shapes_cache_is_a_one_line_data_error(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "shapes_32.pt"
    if damage == "garbage":
        cache.write_bytes(b"this is not a torch file")
    else:
        shapes(tmp_path).load()
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    with pytest.raises(DataError, match=r"shapes_32\.pt is not a readable shapes cache .*: delete it") as err:
        shapes(tmp_path).setup()
    assert "\n" not in str(err.value)


def test_position_moves_the_centre_of_mass_and_scale_grows_the_area(grid: tuple) -> None:
    masks = grid[0][:, 0].double().view(*GRID, 32, 32)  # (shape, scale, rotation, x, y, H, W), grid order
    coords = torch.arange(32, dtype=torch.float64) + 0.5
    mass = masks.sum((-2, -1))
    col = (masks.sum(-2) * coords).sum(-1) / mass  # centre of mass, column
    row = (masks.sum(-1) * coords).sum(-1) / mass  # centre of mass, row
    assert bool((mass > 0).all())
    assert bool((col.diff(dim=3) > 1.0).all())  # x index -> further right, every combination
    assert bool((row.diff(dim=4) > 1.0).all())  # y index -> further down
    assert bool((mass.diff(dim=1) > 0).all())  # a larger scale lights more pixels
    assert bool((col.diff(dim=4).abs() < 0.5).all())  # y does not move the shape sideways


def test_rendering_follows_image_size(tmp_path: Path) -> None:
    module = ShapesDataModule(root=str(tmp_path), name="shapes", shape=[1, 16, 16], num_classes=3, image_size=16)
    module.setup()
    assert module.train_set.x.shape[1:] == (1, 16, 16) and (tmp_path / "shapes_16.pt").is_file()
    with pytest.raises(DataError, match=r"shape \[1, 16, 16\] but data.shape says \[1, 32, 32\]"):
        ShapesDataModule(root=str(tmp_path), name="shapes", shape=[1, 32, 32], num_classes=3, image_size=16).setup()
    with pytest.raises(ConfigError, match="data.channels must be 1"):
        shapes(tmp_path, channels=2)


def test_coloured_shapes_record_the_hue_as_a_sixth_factor(data_dir: Path, grid: tuple) -> None:
    module = shapes(data_dir / "shapes", channels=3)
    data = module.grid()
    images, factors = data["images"], data["factors"]
    assert module.factor_names == (*ShapesDataModule.FACTOR_NAMES, "color")
    assert (data_dir / "shapes" / "shapes_color_32.pt").is_file()
    assert images.shape == (N_GRID, 3, 32, 32) and factors.shape == (N_GRID, 6)
    assert torch.equal(factors[:, :5], grid[1])  # same grid, one hue per image
    assert torch.bincount(factors[:, 5]).tolist() == [N_GRID // 6] * 6
    assert len(torch.unique(factors[:, [0, 5]], dim=0)) == 18  # every shape appears in every colour
    hues = torch.tensor(shapes_mod.HUES, dtype=torch.uint8)[factors[:, 5]]  # (N, 3)
    lit = grid[0][:, 0] > 0  # (N, H, W)
    assert torch.equal(images, torch.where(lit[:, None], hues[:, :, None, None], torch.zeros((), dtype=torch.uint8)))
    assert len(module.load().factors_train) == N_GRID - round(0.2 * N_GRID)


# --- photo patches ------------------------------------------------------------------------------------------


def patches(**kwargs) -> PhotoPatchesDataModule:
    return PhotoPatchesDataModule(**{"name": "photo_patches", "shape": [3, 32, 32], "num_classes": 2, "train_patches": 400,
                                     "test_patches": 100, **kwargs})


def test_photo_patches_are_colour_crops_in_range() -> None:
    module = patches()
    module.setup()
    x = module.train_set.x
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (360, 40, 100)
    assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    assert float((x[:, 0] - x[:, 1]).abs().mean()) > 0.05 and float((x[:, 1] - x[:, 2]).abs().mean()) > 0.05
    assert torch.bincount(module.test_set.y).tolist() == [50, 50]
    other = patches(split_seed=1)
    other.setup()
    again = patches()
    again.setup()
    assert torch.equal(again.test_set.x, module.test_set.x) and not torch.equal(other.test_set.x, module.test_set.x)


@pytest.mark.parametrize("names", [["china", "flower"], ["chelsea", "astronaut", "coffee"]])
def test_test_crops_come_from_the_right_fifth_of_each_photo(names: list[str]) -> None:
    module = patches(photos=names, num_classes=None)
    splits = module.load()
    photos = [load_photo(name) for name in names]  # scikit-learn's (427, 640, 3); scikit-image's of other sizes
    assert module.num_classes == len(names) and torch.bincount(splits.y_test).tolist() == [100 // len(names) + (k < 100 % len(names)) for k in range(len(names))]
    for k, photo in enumerate(photos):
        height, width = photo.shape[:2]
        boundary = round(0.8 * width)
        test, train = module.origins_test[module.origins_test[:, 0] == k], module.origins_train[module.origins_train[:, 0] == k]
        assert bool((test[:, 2] >= boundary).all()) and bool((test[:, 2] + 32 <= width).all())
        assert bool((train[:, 2] + 32 <= boundary).all())  # no train pixel in the test strip
        assert bool((test[:, 1] + 32 <= height).all()) and bool((train[:, 1] + 32 <= height).all())
    for k in (0, 1, 2, 57):
        for origins, x in ((module.origins_test, splits.x_test), (module.origins_train, splits.x_train)):
            photo, top, left = origins[k].tolist()
            expected = torch.from_numpy(photos[photo][top:top + 32, left:left + 32]).permute(2, 0, 1).float() / 255
            assert torch.equal(x[k], expected)
    assert torch.equal(splits.y_test, module.origins_test[:, 0])


def test_unknown_photo_and_wrong_class_count_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown photo 'lena'; bundled are china, flower, astronaut"):
        patches(photos=["china", "lena"], num_classes=None).setup()
    with pytest.raises(ConfigError, match=r"data.num_classes=2, but y is the photo and data.photos names 3"):
        patches(photos=["china", "flower", "coffee"])


def test_patch_larger_than_the_test_strip_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"patch_size=200 does not fit"):
        PhotoPatchesDataModule(name="p", shape=[3, 200, 200], num_classes=2, patch_size=200).setup()


# --- tabular CSV --------------------------------------------------------------------------------------------


def breast_cancer(path: Path, **kwargs) -> CSVDataModule:
    return CSVDataModule(path=str(path), label_column="diagnosis", anomaly_labels=["malignant"], name="breast_cancer",
                         shape=[30], num_classes=2, val_size=0.15, **kwargs)


def test_exported_breast_cancer_reads_back_standardised(tmp_path: Path) -> None:
    path = export_breast_cancer(tmp_path / "sub" / "bc.csv")
    assert path.read_text().splitlines()[0].endswith("worst fractal dimension,diagnosis")
    module = breast_cancer(path)
    module.setup()
    train = module.train_set.x  # the train split, the only rows the statistics came from
    y = torch.cat([module.train_set.y, module.val_set.y, module.test_set.y])
    assert len(y) == 569 and train.shape[1] == 30 and int(y.sum()) == 212
    assert torch.bincount(module.test_set.y).tolist() == [round(0.3 * 357), round(0.3 * 212)]  # stratified
    assert torch.allclose(train.mean(0), torch.zeros(30), atol=1e-5)
    assert torch.allclose(train.std(0, correction=0), torch.ones(30), atol=1e-5)
    for held_out in (module.val_set.x, module.test_set.x):  # val and test rows not in the stats
        assert not torch.allclose(held_out.mean(0), torch.zeros(30), atol=1e-3)
    assert module.feature_names[0] == "mean radius" and module.feature_mean.shape == (30,)


def test_the_real_config_writes_the_bundled_table_on_first_use(tmp_path: Path) -> None:
    module = build(compose_cfg(["data=breast_cancer", f"paths.data_dir={tmp_path}"], tmp_path).data)
    module.setup()
    assert module.train_set.x.shape[1:] == (30,) and len(module.test_set) == 171
    assert (tmp_path / "breast_cancer.csv").is_file()


def small_csv(path: Path, lines: list[str] | None = None) -> Path:
    """A valid 20-row table (a, b, label), 5 anomalies, or the given lines verbatim."""
    rows = ["a,b,label"] + [f"{i},{i % 3}.5,{'bad' if i % 4 == 0 else 'ok'}" for i in range(20)]
    path.write_text("\n".join(rows if lines is None else lines) + "\n")
    return path


def test_feature_subset_and_constant_column(tmp_path: Path) -> None:
    path = small_csv(tmp_path / "t.csv", ["a,b,label"] + [f"{i},7,{'bad' if i % 4 == 0 else 'ok'}" for i in range(20)])
    module = CSVDataModule(path=str(path), label_column="label", anomaly_labels=["bad"], feature_columns=["b"],
                           name="t", shape=[1], num_classes=2, val_size=2)
    module.setup()
    assert torch.equal(module.train_set.x, torch.zeros(len(module.train_set), 1))  # constant: centred, not NaN
    assert module.feature_names == ["b"]


BAD_INPUTS = {
    "bad number": (["a,b,label", "1,2,ok", "", "3,abc,bad"], {}, r"t\.csv line 4, column 'b': 'abc' is not a number"),
    "not finite": (["a,b,label", "1,nan,ok"], {}, r"line 2, column 'b': 'nan' is not a finite number"),
    "no label column": (None, {"label_column": "diagnosis"},
                        r"label column 'diagnosis' is not in the header; columns present: 'a', 'b', 'label'"),
    "no feature column": (None, {"feature_columns": ["zzz"]}, r"feature column\(s\) 'zzz' not in the header"),
    "field count": (["a,b,label", "1,2,ok", "3,ok"], {}, r"t\.csv line 3: 2 fields but the header has 3"),
    "missing file": ("absent", {}, r"t\.csv not found: set data.path to an existing CSV file"),
    "empty file": ([""], {}, r"t\.csv is empty: expected a header line"),
    "no rows": (["a,b,label"], {}, r"t\.csv has a header but no data rows"),
    "no anomalies": (["a,b,label"] + ["1,2,ok"] * 10, {}, r"no anomalous rows .* column 'label' holds 'ok'"),
    "no normal rows": (["a,b,label"] + ["1,2,bad"] * 10, {}, r"no normal rows"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_malformed_csv_is_a_one_line_data_error(tmp_path: Path, case: str) -> None:
    lines, overrides, message = BAD_INPUTS[case]
    path = tmp_path / "t.csv"
    if lines != "absent":
        small_csv(path, lines)
    kwargs = {"label_column": "label", "anomaly_labels": ["bad"], **overrides}
    module = CSVDataModule(path=str(path), name="t", shape=[2], num_classes=2, **kwargs)
    with pytest.raises(DataError, match=message) as err:
        module.setup()
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("option", ["shapes", "shapes_color", "photo_patches"])
def test_image_configs_build(tmp_path: Path, data_dir: Path, option: str) -> None:
    module = build(compose_cfg([f"data={option}", f"paths.data_dir={data_dir}"], tmp_path).data)
    module.setup()
    assert list(module.train_set.x.shape[1:]) == module.shape
    assert module.num_classes == len(torch.unique(module.test_set.y))
    assert np.isclose(len(module.test_set) / (len(module.train_set) + len(module.val_set) + len(module.test_set)),
                      0.2 if option.startswith("shapes") else 1 / 9, atol=1e-3)
