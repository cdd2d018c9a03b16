"""data=dsprites: the subsampled dSprites grid, the renderer's known answers, the published-file loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.core.build import build
from aelab.core.errors import ConfigError, DataError
from aelab.data import dsprites as dsprites_mod
from aelab.data.dsprites import DSPRITES, DSpritesDataModule, read_npz, subsampled_grid
from aelab.data.shapes import RADIUS, render
from helpers import compose_cfg, read_result, run_cli

DEFAULT = {"shape": 1, "scale": 1, "orientation": 4, "x": 4, "y": 4}  # conf/data/dsprites.yaml
COARSE = {"shape": 1, "scale": 5, "orientation": 20, "x": 16, "y": 16}  # 3 x 2 x 2 x 2 x 2 = 48 combinations


def dsprites(root: Path, size: int = 32, stride: dict | None = None, **kwargs) -> DSpritesDataModule:
    return DSpritesDataModule(root=str(root), name="dsprites", shape=[1, size, size], num_classes=3, image_size=size,
                              stride=stride or DEFAULT, **kwargs)


def combinations(factors: torch.Tensor, stride: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The expected set of kept class-index rows."""
    assert len(torch.unique(factors, dim=0)) == len(factors)  # no row twice
    return {tuple(row) for row in subsampled_grid(stride).tolist()}


def test_default_grid_has_the_stated_size_and_every_combination_once(tmp_path: Path) -> None:
    module = build(compose_cfg(["data=dsprites", f"paths.data_dir={tmp_path}"], tmp_path).data)
    assert module.factor_sizes == (3, 6, 10, 8, 8) and module.n_images == 11520 == 3 * 6 * 10 * 8 * 8
    splits = module.load()
    factors = torch.cat([splits.factors_train, splits.factors_test])
    assert {tuple(r) for r in factors.tolist()} == combinations(factors, module.stride) and len(factors) == 11520
    assert [sorted(set(c.tolist())) for c in factors.T] == [list(range(0, n, s)) for n, s in zip(DSPRITES, module.stride)]
    assert splits.x_train.dtype == torch.uint8 and len(splits.x_test) == round(0.2 * 11520)  # stored as bytes
    module.setup()
    batch = module.split("train")[[0, 1, 2]]
    assert batch["x"].dtype == torch.float32 and set(torch.unique(batch["x"]).tolist()) <= {0.0, 1.0}
    assert batch["factors"].shape == (3, 5) and module.factor_names == ("shape", "scale", "orientation", "x", "y")
    assert (tmp_path / "dsprites" / "dsprites_32_stride1-1-4-4-4.pt").is_file()


def test_x_moves_the_centroid_right_y_down_and_scale_grows_the_area() -> None:
    size, stride = 32, (1, 1, 8, 4, 4)
    factors = subsampled_grid(stride)
    masks = torch.from_numpy(render(factors, size, DSPRITES, dsprites_mod.SCALES, dsprites_mod.PERIODS)).double()
    masks = masks.view(3, 6, 5, 8, 8, size, size)  # (shape, scale, orientation, x, y, H, W), grid order
    coords = torch.arange(size, dtype=torch.float64) + 0.5
    mass = masks.sum((-2, -1))
    col = (masks.sum(-2) * coords).sum(-1) / mass
    row = (masks.sum(-1) * coords).sum(-1) / mass
    step = (size - 2 * RADIUS * size) / (DSPRITES[3] - 1) * stride[3]  # centre spacing of kept x values, pixels
    assert bool((mass > 0).all())
    # an upright square's edges snap to whole pixels, so its centroid moves 2 or 3 pixels for a 2.48 step
    assert bool(((col.diff(dim=3) - step).abs() < 0.53).all()) and bool(((row.diff(dim=4) - step).abs() < 0.53).all())
    assert bool((col.diff(dim=4).abs() < 0.5).all())  # y does not move the shape sideways
    assert abs(float(col.diff(dim=3).mean()) - step) < 0.05
    assert bool((mass.diff(dim=1) >= 0).all())  # a larger scale never lights fewer pixels (at 32x32 some steps tie)
    area = mass[:, -1] / mass[:, 0]  # scale 1 vs 0.5: four times the area, up to the pixel grid
    assert bool((area > 3.2).all() and (area < 5.1).all()) and abs(float(area.mean()) - 4.0) < 0.2


def test_orientation_spans_two_pi_for_every_shape() -> None:
    turns = np.array([[k, 5, o, 16, 16] for k in range(3) for o in (0, 10, 20, 40)])  # 40 = one full turn
    masks = render(turns, 64, (*DSPRITES[:2], 40, *DSPRITES[3:]), dsprites_mod.SCALES, dsprites_mod.PERIODS)
    square, ellipse, heart = (masks[4 * k:4 * k + 4] for k in range(3))
    for images in (square, ellipse, heart):
        assert np.array_equal(images[0], images[3])  # a full turn returns the same mask
    assert np.array_equal(square[0], square[1])  # a quarter turn is the square's symmetry (dSprites repeats it)
    assert np.array_equal(ellipse[0], ellipse[2]) and not np.array_equal(ellipse[0], ellipse[1])
    assert not np.array_equal(heart[0], heart[2])  # a heart upside down differs


def write_npz(path: Path, stride: tuple[int, ...] = (1, 1, 10, 8, 8)) -> tuple[np.ndarray, np.ndarray]:
    """A file in the published layout (same keys, dtypes, columns; fewer rows), 64x64 random 0/1 masks."""
    factors = subsampled_grid(stride)  # (N, 5)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 2, size=(len(factors), 64, 64), dtype=np.uint8)
    classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)  # column 0: colour
    values = classes.astype(np.float64) / 10
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=values,
                        metadata=np.array({"date": "test"}, dtype=object))
    return imgs, factors


def test_npz_loader_round_trips_the_file_after_subsampling(tmp_path: Path) -> None:
    imgs, factors = write_npz(tmp_path / "d.npz")
    keep = np.all(factors % np.array([1, 5, 20, 16, 16]) == 0, axis=1)
    full = read_npz(tmp_path / "d.npz", 64, (1, 5, 20, 16, 16))
    assert torch.equal(full["factors"], torch.from_numpy(factors[keep]))
    assert torch.equal(full["images"][:, 0], torch.from_numpy(imgs[keep] * 255))
    small = read_npz(tmp_path / "d.npz", 32, (1, 5, 20, 16, 16))["images"][:, 0].double()  # 2x2 block means
    blocks = torch.from_numpy(imgs[keep]).double().view(-1, 32, 2, 32, 2).mean((2, 4)) * 255
    assert torch.allclose(small, blocks, atol=0.5)
    module = dsprites(tmp_path, stride=COARSE, path=str(tmp_path / "d.npz"))
    module.setup()
    assert len(module.train_set) + len(module.val_set) + len(module.test_set) == 48 == module.n_images
    test = module.whole("test")
    assert test["x"].dtype == torch.float32 and test["factors"].shape[1] == 5
    assert not list(tmp_path.glob("dsprites_*.pt"))  # read, not rendered


def broken(path: Path, case: str) -> None:
    """Write a wrong file for `case`."""
    imgs = np.zeros((4, 64, 64), np.uint8)
    classes = np.zeros((4, 6), np.int64)
    arrays = {"imgs": imgs, "latents_classes": classes, "latents_values": classes.astype(float)}
    if case == "not an npz":
        path.write_bytes(b"not a zip archive at all")
    elif case == "a .npy":
        with open(path, "wb") as f:
            np.save(f, imgs)
    elif case == "missing key":
        np.savez(path, imgs=imgs)
    else:
        arrays.update({"image size": {"imgs": np.zeros((4, 32, 32), np.uint8)},
                       "row count": {"latents_classes": np.zeros((3, 6), np.int64)},
                       "class range": {"latents_classes": np.full((4, 6), 40, np.int64)},
                       "not masks": {"imgs": np.full((4, 64, 64), 255, np.uint8)}}[case])
        np.savez(path, **arrays)


BAD_FILES = {
    "absent": r"d\.npz not found: set data.path to the dSprites file .*github.com/deepmind/dsprites-dataset",
    "not an npz": r"d\.npz is not an npz archive \(\w+\): expected dsprites_ndarray_co1sh3sc6or40x32y32_64x64\.npz",
    "a .npy": r"d\.npz is a single \.npy array, not an npz archive",
    "missing key": r"d\.npz has no latents_classes, latents_values \(it holds imgs\)",
    "image size": r"d\.npz: imgs is uint8 \(4, 32, 32\), expected uint8 \(N, 64, 64\)",
    "row count": r"d\.npz: latents_classes has shape \(3, 6\), expected \(4, 6\) for 4 images",
    "class range": r"d\.npz: latents_classes column 1 \(shape\) holds 40\.\.40, expected 0\.\.2",
    "not masks": r"d\.npz: imgs holds values up to 255, expected 0/1 masks",
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_wrong_file_is_a_one_line_data_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "d.npz"
    if case != "absent":
        broken(path, case)
    with pytest.raises(DataError, match=BAD_FILES[case]) as err:
        dsprites(tmp_path, stride=COARSE, path=str(path)).setup()
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_bad_stride_and_image_size_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.stride must name exactly shape, scale, orientation, x, y, got shape"):
        dsprites(tmp_path, stride={"shape": 1})
    with pytest.raises(ConfigError, match=r"data.stride values must be positive integers, got \{'x': 0\}"):
        dsprites(tmp_path, stride={**DEFAULT, "x": 0})
    with pytest.raises(ConfigError, match=r"data.image_size must divide 64 to read the dSprites file"):
        dsprites(tmp_path, size=24, path=str(tmp_path / "d.npz"))


@pytest.mark.slow
def test_cli_trains_a_vae_on_a_tiny_dsprites_grid(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = run_cli("aelab-train", ["data=dsprites", "model=vae", "trainer.max_epochs=1", "logger=csv",
                                  "callbacks.progress=null", "data.stride={shape:1,scale:2,orientation:10,x:8,y:8}",
                                  "eval=[disentanglement]", f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = read_result(run)
    assert result["state"] == "completed" and result["run"]["data"] == "dsprites"
    assert 0.0 <= result["metrics"]["test/mig"] <= 1.0  # scored against the five dSprites factors
    assert (tmp_path / "data" / "dsprites" / "dsprites_32_stride1-2-10-8-8.pt").is_file()
