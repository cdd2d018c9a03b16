"""Slider to new image, measured in a real browser: `aelab-explore <folder>` driven by headless chromium.

    .venv/bin/python scripts/explore_latency.py <run or sweep folder> [--moves 40] [--screenshot docs/explore/explorer.png]

For every move a slider's value is set and its input event dispatched (what a drag does); the time runs until the
new image is decoded by the browser and the next frame is drawn. Also reported: the server's share, the model's
decode plus PNG encoding of the same code in this process. Writes outputs/bench/explore_latency.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
MOVE = """([k, v]) => new Promise((done) => {
  const host = document.querySelector('#decoded');
  const before = host.querySelector('img').src;
  const seen = new MutationObserver(() => {
    const img = host.querySelector('img');
    if (!img || img.src === before) return;
    seen.disconnect();
    img.decode().then(() => requestAnimationFrame(() => done(performance.now() - start)));
  });
  seen.observe(host, {subtree: true, childList: true, attributes: true});
  const range = document.querySelector(`#slider-${k} input[type=range]`);
  const start = performance.now();
  range.value = v;
  range.dispatchEvent(new Event('input', {bubbles: true}));
})"""


def start_app(folder: str) -> tuple[subprocess.Popen, str]:
    """aelab-explore on a free port; returns the process and the URL it printed."""
    proc = subprocess.Popen([str(Path(sys.executable).parent / "aelab-explore"), folder, "--port", "0"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    for line in proc.stdout:
        if " at http://" in line:
            return proc, line.split(" at ")[1].split()[0]
    raise SystemExit(f"aelab-explore exited with {proc.wait()} before serving the page")


def server_share(folder: str, moves: int) -> float:
    """Median ms of decode + PNG encoding of one code, in this process (the server's part of a move)."""
    from aelab.explore.render import png
    from aelab.explore.runs import find_runs
    from aelab.explore.session import Session

    s = Session(find_runs(folder)[0][0], 500)
    times = []
    for i in range(moves):
        start = time.perf_counter()
        png(s.decode(s.codes[i % len(s.codes)][None])[0])
        times.append(1000 * (time.perf_counter() - start))
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    proc, url = start_app(args.folder)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("#decoded img", timeout=300_000)
            ranges = [[float(page.locator(f"#slider-{k} input[type=range]").get_attribute(end)) for end in ("min", "max")]
                      for k in (0, 1)]
            times = []
            for i in range(args.moves + 3):  # sliders 0 and 1 in turn, each to 20%, 35%, ... 80% of its range
                k, (low, high) = i % 2, ranges[i % 2]
                times.append(page.evaluate(MOVE, [k, round(low + (high - low) * (0.2 + 0.15 * (i // 2 % 5)), 2)]))
            times = times[3:]  # after 3 warm-up moves
            if args.screenshot:
                svg = page.locator("#latent-map svg").bounding_box()
                page.mouse.click(svg["x"] + 0.3 * svg["width"], svg["y"] + 0.55 * svg["height"])
                page.wait_for_selector("#decoded [data-point]")
                dot = page.locator("#latent-map circle").nth(5).bounding_box()
                page.mouse.move(dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2)
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.screenshot, clip={"x": 0, "y": 0, "width": 1400, "height": 800})
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    times.sort()
    result = {"folder": args.folder, "moves": len(times), "median_ms": median(times),
              "p90_ms": times[int(0.9 * (len(times) - 1))], "max_ms": times[-1],
              "server_decode_png_ms": server_share(args.folder, args.moves)}
    out = ROOT / "outputs" / "bench" / "explore_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
