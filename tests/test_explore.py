"""aelab-explore: the latent-space web app driven in a real headless browser (Debian's chromium through
playwright) against a real two-run sweep; what the page shows is read back and checked against the model."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import BIN, ROOT, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMALL = ["data=digits", "model/arch=mlp", "trainer.max_epochs=2", "callbacks.progress=null", "callbacks.embeddings.n=50",
         "eval=none"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep of two short runs (ae and vae on the 8x8 digits)."""
    folder = tmp_path_factory.mktemp("explore") / "sweep"
    out = run_cli("aelab-train", ["-m", *SMALL, "model=ae,vae", f"hydra.sweep.dir={folder}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return folder


def start_explorer(folder: Path) -> tuple[subprocess.Popen, list[str]]:
    """`aelab-explore <folder> --port 0` started as a process, and what it printed up to its URL line (the last)."""
    proc = subprocess.Popen([str(BIN / "aelab-explore"), str(folder), "--port", "0"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline, lines = time.time() + 300, []
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if " at http://127.0.0.1:" in line:
            break
        assert line or proc.poll() is None, "".join(lines)
    return proc, lines


@pytest.fixture(scope="module")
def app_url(sweep_dir: Path):
    """`aelab-explore <sweep> --port 0` started as a process; its URL is the line it prints."""
    proc, lines = start_explorer(sweep_dir)
    yield lines[-1].split(" at ")[1].split()[0]
    proc.terminate()
    proc.wait(30)


def page_image(page, selector: str) -> np.ndarray:
    """The pixels of the PNG data URI shown by the first <img> under `selector`."""
    from PIL import Image

    src = page.locator(f"{selector} img").first.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def as_pixels(x: torch.Tensor) -> np.ndarray:
    """A decoded (1, 1, H, W) image as the 8-bit pixels a PNG holds."""
    return x[0, 0].clamp(0, 1).mul(255).round().byte().numpy()


def run_model(run: Path):
    """The run's model (rebuilt from best.ckpt by the test itself) and the inputs of its first test examples."""
    from aelab.core.build import build
    from aelab.tracking.checkpoint import load_checkpoint, rebuild_model

    model, cfg = rebuild_model(load_checkpoint(run / "checkpoints" / "best.ckpt"))
    data = build(cfg.data, task=build(cfg.task))
    return model.eval(), data.fixed_batch("test", 500)["x"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it as root)")
def test_slider_and_map_click_show_the_decoded_code(app_url: str, sweep_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    from sklearn.decomposition import PCA

    model, x = run_model(sweep_dir / "0")
    with torch.no_grad():
        codes = model.encode(x).double()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        page.wait_for_selector("#decoded img", timeout=120_000)
        assert page.locator("#latent-map circle").count() == len(x)

        page.locator("#example input").fill("3")  # choose test example 3
        page.locator("#example input").press("Enter")
        page.wait_for_function("document.querySelector('#decoded figcaption').textContent.includes('example 3')")
        with torch.no_grad():
            unmoved = as_pixels(model.decode(codes[3:4].float()))
        assert np.abs(page_image(page, "#decoded").astype(int) - unmoved).max() <= 1

        k, slider = 1, page.locator("#slider-1 input[type=range]")  # code dimension 1
        start = round(float(codes[3, k]), 2)  # the slider starts at the example's code, to its 0.01 step
        ends = [float(slider.get_attribute(end)) for end in ("min", "max")]
        target = max(ends, key=lambda end: abs(end - start))  # the far end of the slider's range
        slider.evaluate("(r, v) => { r.value = v; r.dispatchEvent(new Event('input', {bubbles: true})); }", str(target))
        page.wait_for_function("document.querySelector('#decoded figcaption').textContent.includes('sliders')")
        z = codes[3].clone()
        z[k] += target - start  # the chosen example's code plus the slider's offset
        with torch.no_grad():
            expected = as_pixels(model.decode(z[None].float()))
        shown = page_image(page, "#decoded")
        assert np.abs(shown.astype(int) - expected).max() <= 1  # one 8-bit level: float rounding between processes
        assert np.abs(shown.astype(int) - unmoved).max() > 2  # the slider changed the picture beyond rounding

        svg = page.locator("#latent-map svg")
        box, (x0, y0, side) = svg.bounding_box(), json.loads(svg.get_attribute("data-box"))
        fx, fy = 0.3, 0.6
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_selector("#decoded [data-point]")
        point = np.array(json.loads(page.locator("#decoded [data-point]").get_attribute("data-point")))
        assert np.allclose(point, [x0 + fx * side, y0 + (1 - fy) * side], atol=2 * side / box["width"])
        pca = PCA(n_components=2, svd_solver="full").fit(codes.numpy())
        z = torch.from_numpy(pca.inverse_transform(point[None]))
        with torch.no_grad():
            expected = as_pixels(model.decode(z.float()))
        assert np.abs(page_image(page, "#decoded").astype(int) - expected).max() <= 1
        page.screenshot(path=tmp_path / "explorer.png", full_page=True)
        browser.close()
    assert (tmp_path / "explorer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it as root)")
def test_sweep_lists_its_runs_and_compares_two(app_url: str, sweep_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        page.wait_for_selector("#decoded img", timeout=120_000)
        page.get_by_role("tab", name="Compare runs").click()
        runs = page.locator("#compare-runs label")
        assert sorted(runs.all_inner_texts()) == ["0: model=ae", "1: model=vae"]
        page.locator("#compare").click()
        page.wait_for_selector("#comparison .compare[data-runs='2']", timeout=120_000)
        text = page.locator("#comparison").inner_text()
        assert "0: model=ae" in text and "1: model=vae" in text
        assert "test/mse" in text  # both runs' recorded test metrics side by side
        assert page.locator("#comparison .strip").count() == 4  # the inputs, each run's reconstructions, the maps
        browser.close()


def error_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_input_gets_one_line(tmp_path: Path, sweep_dir: Path) -> None:
    assert "holds no run" in error_line(run_cli("aelab-explore", [str(tmp_path)]))
    assert "is not a folder" in error_line(run_cli("aelab-explore", [str(tmp_path / "missing")]))
    broken = tmp_path / "broken_run"
    shutil.copytree(sweep_dir / "0", broken)
    (broken / "checkpoints" / "best.ckpt").unlink()
    assert "has no checkpoints/best.ckpt" in error_line(run_cli("aelab-explore", [str(broken)]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in error_line(run_cli("aelab-explore", [str(sweep_dir), "--port", str(port)]))


@pytest.mark.slow
def test_a_damaged_record_is_named_and_the_other_runs_served(tmp_path: Path, sweep_dir: Path) -> None:
    """A sweep with one job's result.json cut in half: the page serves both runs (the damaged one by its folder
    name) and the log names the damaged record, with no traceback."""
    sweep = tmp_path / "sweep"
    shutil.copytree(sweep_dir, sweep)
    damaged = sweep / "1" / "result.json"
    text = damaged.read_text()
    damaged.write_text(text[: len(text) // 2])
    proc, lines = start_explorer(sweep)
    try:
        url = lines[-1].split(" at ")[1].split()[0]
        with urllib.request.urlopen(f"{url}config", timeout=60) as response:
            config = json.load(response)
    finally:
        proc.terminate()
        proc.wait(30)
    log = "".join(lines)
    assert "Traceback" not in log and f"2 run(s) from {sweep}" in log
    assert f"aelab-explore: damaged result.json: {damaged} is not a readable record (" in log
    run_picker = next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "run")
    names = [choice[0] for choice in run_picker["choices"]]
    assert names[1] == "1" and names[0].startswith("0: ") and "model=ae" in names[0]  # its overrides: all of them


def train_run(folder: Path, args: list[str]) -> Path:
    out = run_cli("aelab-train", [*SMALL, *args, f"hydra.run.dir={folder}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return folder


def test_every_task_shows_what_it_means(tmp_path: Path) -> None:
    """Denoising shows noisy / restored / clean; an anomaly run its score against the stored threshold; data with
    factors traverse them; a deterministic AE samples from a code density; recognition names the probe's class."""
    from aelab.explore.runs import find_runs
    from aelab.explore.views import Explorer
    from aelab.tracking.checkpoint import APPLY_KEY, load_checkpoint

    denoise = train_run(tmp_path / "denoise", ["task=denoise"])
    one_class = train_run(tmp_path / "one_class", ["task=one_class", "data.normal_classes=[1]", "trainer.max_epochs=40"])
    shapes = train_run(tmp_path / "shapes", ["data=shapes", "trainer.max_epochs=3", "model.latent_dim=6"])
    runs = [find_runs(f)[0][0] for f in (denoise, one_class, shapes)]
    explorer = Explorer(runs, n=100)
    d, o, s = (explorer.session(r.name) for r in runs)

    view = d.task_view(4)
    assert list(view) == ["noisy input", "restored", "clean"]
    assert not torch.equal(view["noisy input"], view["clean"]) and torch.equal(view["clean"], d.test["target"][4:5])
    assert all(f">{name}<" in explorer.example(runs[0].name, 4)[0] for name in view)

    threshold = load_checkpoint(one_class / "checkpoints" / "best.ckpt")[APPLY_KEY]["threshold"]
    scores = [o.anomaly(i) for i in range(len(o.codes))]
    assert {sc["threshold"] for sc in scores} == {threshold["threshold"]}
    assert all(sc["flagged"] == (sc["score"] > threshold["threshold"]) for sc in scores)
    assert [sc["anomaly"] for sc in scores] == [int(y) != 1 for y in o.test["y"]]
    assert 0 < sum(sc["flagged"] for sc in scores) < len(scores)
    assert "against the stored threshold" in explorer.example(runs[1].name, 0)[0]

    assert s.factor_names == ["shape", "scale", "rotation", "x", "y"]
    images, captions = s.traverse(2, "x")
    own = int(s.test["factors"][2, 3])
    assert len(images) == 8 and captions[own] == f"x={own} (its own)"
    assert torch.allclose(images[own], s.decode(s.codes[2:3])[0], atol=1e-5)  # its own value: the code unmoved
    mass = torch.stack([s.traverse(i, "x")[0][:, 0].clamp(0, 1).sum(1) for i in range(10)])  # (10, V, W) per column
    centre = ((mass * torch.arange(32)).sum(2) / mass.sum(2)).mean(0)  # (V,): mean column of the shape
    assert centre[7] > centre[0] + 4  # over 10 examples, x=7 draws the shapes further right than x=0 (of 32 columns)

    samples, how = s.sample(8, seed=0)
    assert samples.shape == (8, 1, 32, 32) and how == "codes from the run's fitted LatentGMM"  # stored in best.ckpt
    found = d.recognise(d.test["x"][:1])
    assert abs(sum(p for _, p in found["top"]) - 1) < 0.5 and len(found["neighbours"]) == 5
    distances = [dist for _, dist, _ in found["neighbours"]]
    assert distances == sorted(distances)
    z = d.encode(d.test["x"][:1])
    assert np.isclose(distances[0], float((d.train_codes - z).norm(dim=1).min()), rtol=1e-5)

    from PIL import Image  # an uploaded image is recognised as its test example is (binary shapes: PNG is exact)
    upload = tmp_path / "shape.png"
    Image.fromarray(s.test["target"][3, 0].mul(255).round().byte().numpy()).save(upload)
    chosen, uploaded = explorer.recognition(runs[2].name, 3, None), explorer.recognition(runs[2].name, 0, str(upload))
    assert "the uploaded image" in uploaded
    assert chosen.split("<b>")[1] == uploaded.split("<b>")[1]  # the same classes and the same neighbours
