"""Every kind of image file Pillow reads, made from a known array, gives the known tensor in training (the image
folder datamodule), in aelab-apply and in the explorer's upload (both `apply.image_inputs`); one mixed folder
through the CLI: files that are not images counted and named, an undecodable image refused or skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.data.image_folder import image_files, read_folder
from aelab.data.images import LUMA, ImageRule, check_background, image_extensions, read_image
from aelab.data.inputs import image_inputs
from helpers import compose_cfg, read_result, run_cli

S = 16  # every test image is S x S
ALPHA_NOTE = "had alpha, composited over white"


def pixels(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(S, S, *shape), dtype=np.uint8)


def blocks(seed: int, channels: int) -> np.ndarray:
    """Constant 8x8 blocks (JPEG survives them nearly unchanged), uint8 (S, S, channels)."""
    return np.kron(pixels(seed, channels)[:2, :2], np.ones((8, 8, 1), np.uint8))


def gray(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=-1)


def write_kinds(folder: Path) -> dict[str, tuple[np.ndarray, float]]:
    """One file of each kind; file name -> (expected RGB float (S, S, 3) over a white background, tolerance)."""
    folder.mkdir(parents=True, exist_ok=True)
    want: dict[str, tuple[np.ndarray, float]] = {}
    c, a = pixels(1, 3) / 255, pixels(2) / 255
    Image.fromarray(np.dstack([pixels(1, 3), pixels(2)]), "RGBA").save(folder / "rgba.png")
    want["rgba.png"] = (c * a[..., None] + (1 - a[..., None]), 1e-6)
    Image.fromarray(np.dstack([pixels(3), pixels(2)]), "LA").save(folder / "la.png")
    want["la.png"] = (gray(pixels(3) / 255 * a + 1 - a), 1e-6)
    index = np.random.default_rng(4).integers(0, 4, (S, S)).astype(np.uint8)
    palette = pixels(5, 3)[0, :4]
    image = Image.fromarray(index, "P")
    image.putpalette(palette.flatten().tolist())
    image.save(folder / "palette.png", transparency=0)  # index 0 is transparent
    want["palette.png"] = (np.where(index[..., None] == 0, 1.0, palette[index] / 255), 1e-6)
    deep = np.random.default_rng(6).integers(0, 65536, (S, S)).astype(np.uint16)
    Image.fromarray(deep).save(folder / "gray16.png")
    want["gray16.png"] = (gray(deep / 65535), 1e-6)
    cmyk = pixels(7, 4)
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.tif")
    want["cmyk.tif"] = ((1 - cmyk[..., :3] / 255) * (1 - cmyk[..., 3:] / 255), 1e-6)  # R = (1 - C)(1 - K)
    cmyk = blocks(8, 4)
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.jpg", quality=95)
    want["cmyk.jpg"] = ((1 - cmyk[..., :3] / 255) * (1 - cmyk[..., 3:] / 255), 0.04)
    stored = blocks(9, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(folder / "rotated.jpg", quality=95, subsampling=0, exif=exif)
    want["rotated.jpg"] = (np.rot90(stored, k=-1) / 255, 0.04)
    for name, kw in (("lossless.webp", {"lossless": True}), ("plain.bmp", {}), ("plain.tif", {})):
        Image.fromarray(pixels(10 + len(name), 3)).save(folder / name, **kw)
        want[name] = (pixels(10 + len(name), 3) / 255, 1e-6)
    frames = [Image.fromarray((pixels(20 + i) // 16 * 16).astype(np.uint8)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    want["anim.gif"] = (gray(pixels(20) // 16 * 16 / 255), 1e-6)
    return want


def datamodule(folder: Path, *extra: str):
    dm = build(compose_cfg(["data=image_folder", f"data.path={folder}", f"data.size={S}", "data.cache_dir=null",
                            *extra]).data)
    dm.setup()
    return dm


@pytest.mark.parametrize("channels", [1, 3])
def test_every_kind_gives_the_known_tensor_in_training_apply_and_the_explorer(channels: int, tmp_path: Path) -> None:
    want = write_kinds(tmp_path / "kinds")
    dm = datamodule(tmp_path / "kinds", f"data.channels={channels}")
    files = image_files(tmp_path / "kinds")[0]
    read = read_folder(tmp_path / "kinds", files, dm.rule)  # what training loads (then splits)
    rows = torch.cat([dm.split(s).x for s in ("train", "val", "test")]).flatten(1)
    assert len(rows) == len(files) and all((read["x"].flatten(1) == r).all(1).any() for r in rows)
    applied = image_inputs(files, tmp_path / "kinds", dm.preprocessing(), colorize=False)  # apply and the explorer
    assert torch.equal(applied.x, read["x"]) and applied.names == read["files"] and not applied.skipped
    for name, x in zip(read["files"], read["x"]):
        expected, tolerance = want[name]
        expected = expected @ LUMA[:, None] if channels == 1 else expected  # ITU-R 601 luma
        assert x.dtype == torch.float32 and x.shape == (channels, S, S)
        assert np.abs(x.numpy().transpose(1, 2, 0) - expected).max() <= tolerance, name
    converted = {k: v["count"] for k, v in dm.file_report["converted"].items()}
    assert converted[ALPHA_NOTE] == 3 and converted["multi-frame, first frame used"] == 1
    assert converted["EXIF orientation applied"] == 1 and converted["16-bit or more, read at full precision"] == 1
    assert converted["CMYK converted to RGB by R = (1 - C)(1 - K)"] == 2
    assert converted.get("colour converted to gray (ITU-R 601 luma)", 0) == (8 if channels == 1 else 0)
    assert converted.get("gray repeated to RGB", 0) == (3 if channels == 3 else 0)


def test_the_stated_rules_agree_with_pillow_where_pillow_is_exact(tmp_path: Path) -> None:
    """CMYK -> RGB and colour -> gray as Pillow's convert, up to its 8-bit rounding; the rotation is not a no-op."""
    want = write_kinds(tmp_path)
    for name, mode, channels in (("cmyk.tif", "RGB", 3), ("plain.bmp", "L", 1)):
        ours = read_image(tmp_path / name, ImageRule(channels))[0].transpose(1, 2, 0)
        pillow = np.asarray(Image.open(tmp_path / name).convert(mode), np.float32).reshape(S, S, channels) / 255
        assert np.abs(ours - pillow).max() <= 0.5 / 255 + 1e-6
    unrotated = np.asarray(Image.open(tmp_path / "rotated.jpg")) / 255
    assert np.abs(unrotated - want["rotated.jpg"][0]).mean() > 0.1


def test_alpha_kept_as_a_channel_and_coloured_backgrounds(tmp_path: Path) -> None:
    write_kinds(tmp_path)
    a = pixels(2) / 255
    kept = read_image(tmp_path / "rgba.png", ImageRule(1, alpha="keep"))[0]
    assert kept.shape == (2, S, S) and np.abs(kept[1] - a).max() < 1e-6
    assert np.abs(kept[0] - pixels(1, 3) / 255 @ LUMA).max() < 1e-6  # not composited
    opaque = read_image(tmp_path / "plain.bmp", ImageRule(3, alpha="keep"))[0]
    assert opaque.shape == (4, S, S) and (opaque[3] == 1).all()
    red = read_image(tmp_path / "rgba.png", ImageRule(3, background=(1.0, 0.0, 0.0)))[0]
    expected = pixels(1, 3) / 255 * a[..., None] + np.array([1.0, 0.0, 0.0]) * (1 - a[..., None])
    assert np.abs(red.transpose(1, 2, 0) - expected).max() < 1e-6
    assert ImageRule.from_preprocessing({"kind": "image", "shape": [2, 8, 8], "alpha": "keep", "channels": 1,
                                         "background": [1.0]}) == ImageRule(1, (8, 8), "keep")
    assert ImageRule.from_preprocessing({"kind": "image", "shape": [1, 12, 12]}) == ImageRule(1, (12, 12))  # old ckpt


def test_resizing_keeps_16_bit_precision(tmp_path: Path) -> None:
    Image.fromarray(np.full((2 * S, 2 * S), 1000, np.uint16)).save(tmp_path / "flat16.png")
    x = read_image(tmp_path / "flat16.png", ImageRule(1, (S, S)))[0]
    assert x.shape == (1, S, S) and np.abs(x - 1000 / 65535).max() < 1e-7  # 8 bits would give 4/255 = 0.0157


def test_bad_settings_and_which_extensions_are_read() -> None:
    extensions = image_extensions()
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= extensions
    assert not {".svg", ".txt", ".pdf", ".h5", ".csv"} & extensions
    for bad in (2.0, [1.0, 0.0], "white"):
        with pytest.raises(ConfigError, match="data.background"):
            check_background(bad)
    with pytest.raises(ConfigError, match="data.alpha"):
        ImageRule(3, alpha="drop")


def test_symbolic_icons_keep_their_shape(tmp_path: Path) -> None:
    """Black glyphs whose shape lives only in alpha: over white, luminance = 1 - alpha and no icon is blank."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((S, S))
    alphas = []
    for i in range(120):
        cy, cx, r = rng.uniform(4, 12, 2).tolist() + [rng.uniform(2, 6)]
        alpha = np.clip(r - np.hypot(rows - cy, cols - cx), 0, 1)  # an antialiased disc
        alphas.append(np.round(alpha * 255).astype(np.uint8))
        Image.fromarray(np.dstack([np.zeros((S, S, 3), np.uint8), alphas[-1]]), "RGBA").save(tmp_path / f"{i:03d}.png")
    dm = datamodule(tmp_path, "data.channels=1")
    x = torch.cat([dm.split(s).x for s in ("train", "val", "test")])
    assert (x.flatten(1).std(1) == 0).float().mean() < 0.01  # blank icons (one value everywhere)
    read = read_folder(tmp_path, image_files(tmp_path)[0], dm.rule)["x"][:, 0].numpy()
    assert np.abs(read - (1 - np.stack(alphas) / 255)).max() < 1e-6


def test_cache_key_holds_the_alpha_rule_and_background(tmp_path: Path) -> None:
    write_kinds(tmp_path / "kinds")
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    white = datamodule(tmp_path / "kinds", cache, "data.channels=1")
    black = datamodule(tmp_path / "kinds", cache, "data.channels=1", "data.background=0.0")
    kept = datamodule(tmp_path / "kinds", cache, "data.channels=1", "data.alpha=keep")
    assert len(list((tmp_path / "cache").glob("image_folder-*.pt"))) == 3 and kept.shape == [2, S, S]
    assert float(white.split("train").x.sum()) > float(black.split("train").x.sum())


@pytest.mark.slow
def test_a_mixed_folder_through_train_and_apply(tmp_path: Path) -> None:
    """Icons (RGBA) with files that are not images and an undecodable PNG: refused, then skipped; apply on the same
    files with the channels=1 model composites them as training did and records it."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(10):
        glyph = np.kron(pixels(30 + i)[:4, :4] > 128, np.ones((4, 4), np.uint8)) * 255
        Image.fromarray(np.dstack([np.zeros((S, S, 3), np.uint8), glyph]), "RGBA").save(folder / f"icon{i}.png")
    (folder / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    args = ["data=image_folder", f"data.path={folder}", "data.channels=1", f"data.size={S}", "data.cache_dir=null",
            "logger=none", "callbacks.progress=null", "model/arch=mlp", "model.latent_dim=2", "trainer.max_epochs=1",
            "eval=none", "callbacks.embeddings=null", "callbacks.samples=null", "callbacks.reconstructions=null"]
    refused = run_cli("aelab-train", [*args, f"hydra.run.dir={tmp_path / 'refused'}"], env={"HYDRA_FULL_ERROR": ""})
    text = refused.stdout + refused.stderr
    errors = [line for line in text.splitlines() if "ERROR" in line or "broken.png" in line]
    assert refused.returncode == 1 and len(errors) == 1 and "Traceback" not in text, text[-3000:]
    assert f"{folder / 'broken.png'} is not a readable image" in errors[0] and "data.on_bad_file=skip" in errors[0]
    run = tmp_path / "run"
    out = run_cli("aelab-train", [*args, "data.on_bad_file=skip", f"hydra.run.dir={run}"])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    skipped = [".DS_Store (hidden)", "logo.svg (not a file read here: ending .svg)",
               "notes.txt (not a file read here: ending .txt)"]
    assert f"3 file(s) are not images Pillow reads, skipped ({', '.join(skipped)})" in log
    files = read_result(run)["files"]  # the run's record says what reading did, as the log does
    assert files["not_images"] == {"count": 3, "first": skipped} and files["bad_files"]["count"] == 1
    assert "1 image file(s) could not be decoded, skipped (broken.png)" in log and f"10 file(s) {ALPHA_NOTE}" in log
    result = run_cli("aelab-apply", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={folder}",
                                     f"output={tmp_path / 'out'}", "mode=encode"])
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "apply.json").read_text())
    assert record["read"]["converted"][ALPHA_NOTE]["count"] == 10 and record["read"]["images"] == 10
    assert record["other_files"] == {"count": 3, "first": skipped}
    assert len(record["skipped"]) == 1 and "broken.png" in record["skipped"][0]
    assert np.load(tmp_path / "out" / "codes.npy").shape == (10, 2)
