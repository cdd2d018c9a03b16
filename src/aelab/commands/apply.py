"""`aelab-apply`: a trained run applied to new files, doing what its task means.

    aelab-apply ckpt_path=<run>/checkpoints/best.ckpt input=<file or folder> output=<folder> [mode=...]

Modes: `reconstruct`, `restore` and `colorize` write one PNG per input image (tables: reconstructions.csv);
`encode` writes codes.npy and codes.csv (one row per input, its file name first); `score` writes scores.csv with
the anomaly score and the flag from the threshold stored at training time; `sample` writes `n` new examples;
`export` writes the encoder, decoder and autoencoder as torch.export programs (.pt2) and ONNX files, checked
against PyTorch with onnxruntime. `auto` picks by the run: an anomaly run (it stored a threshold) scores, else by
its task (denoise: restore, colorize: colorize, else reconstruct). Inputs go through the run's own preprocessing
(best.ckpt carries it: a table's columns and standardisation, audio's rate and clip length; for images the reading
rule of aelab.data.images, so files are read exactly as training read them). `apply.json` says what reading did
(`read`). Audio runs restore or reconstruct files of any length in any format training reads (`aelab.commands.apply_audio`:
the band above the model's Nyquist by `high_band`, scores against the `clean` originals). A file that does not fit
(undecodable, missing columns) gets one line and is skipped; the rest are done; `apply.json` lists both, and counts
the other files of an input folder (hidden, other endings) under `other_files`.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from aelab import CONF_DIR
from aelab.commands.job import guarded
from aelab.core.errors import ConfigError, DataError
from aelab.data.inputs import Inputs, image_inputs, input_files, table_inputs
from aelab.tracking.console import quiet_libraries

log = logging.getLogger(__name__)

MODES = ("reconstruct", "restore", "colorize", "encode", "score", "sample", "export")
AUTO = {"denoise": "restore", "colorize": "colorize", "one_class": "score"}  # task -> mode; others: reconstruct


def write_images(images: Any, names: list[str], out: Path) -> list[str]:
    """One PNG per image (C, H, W) in [0, 1], at the input's relative path (suffix .png), grayscale for C = 1."""
    from PIL import Image

    from aelab.data.base import to_pixels

    written = []
    for image, name in zip(images, names):
        target = (out / name).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_pixels(image)).save(target)
        written.append(str(target.relative_to(out)))
    return written


def write_table(path: Path, header: list[str], rows: list[list[Any]]) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path.name


def apply(cfg: DictConfig) -> dict[str, Any]:
    """Load the run, read the inputs, do the mode; return what apply.json records."""
    from aelab.tracking.checkpoint import check_file

    check_file(cfg.ckpt_path)  # before the heavy imports: a wrong file is refused at once
    if cfg.mode == "export":
        from aelab.commands.export import require_onnx

        require_onnx()  # the export extra, before the run is opened
    import torch

    from aelab.data.base import counted
    from aelab.evals.base import batched
    from aelab.tracking.trained import open_run

    quiet_libraries()
    run = open_run(cfg.ckpt_path)
    model, state, task = run.model, run.apply_state, run.task
    if state is None:
        raise ConfigError(f"{cfg.ckpt_path} carries no apply state (written into best.ckpt after testing; "
                          f"last.ckpt and runs with test=false have none): use the run's best.ckpt")
    mode = ("score" if "threshold" in state else AUTO.get(task, "reconstruct")) if cfg.mode == "auto" else cfg.mode
    if mode not in MODES:
        raise ConfigError(f"mode={mode} is not one of auto, {', '.join(MODES)}")
    if state["preprocessing"]["kind"] == "audio":
        from aelab.data.audio_io import audio_library

        audio_library("aelab-apply on an audio run")  # the audio extra, before anything is written
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    prep = state["preprocessing"]
    record: dict[str, Any] = {"checkpoint": str(cfg.ckpt_path), "mode": mode, "task": task, "written": [], "skipped": []}
    if mode == "export":
        from aelab.commands.export import export

        record["written"], record["checks"] = export(model, prep["shape"], out)
        return record
    if mode == "sample":
        with torch.no_grad():
            samples = model.sample(cfg.n).cpu()
        record["written"] = write_outputs(samples, [f"sample_{i:04d}" for i in range(cfg.n)], prep, out, "samples.csv")
        return record
    if cfg.input is None:
        raise ConfigError(f"mode={mode} needs input=<file or folder>")
    root = Path(cfg.input).expanduser()
    files, others = input_files(root, prep["kind"])
    record["other_files"] = counted(others)
    if prep["kind"] == "audio":
        from aelab.commands.apply_audio import restore_audio

        if mode not in ("reconstruct", "restore"):
            raise ConfigError(f"mode={mode} is not available for audio runs (reconstruct, restore, sample, export are)")
        clean = Path(cfg.clean).expanduser() if cfg.get("clean") else None
        if clean is not None and not clean.exists():
            raise DataError(f"clean={clean} does not exist: give the clean file or folder of the inputs")
        record.update(restore_audio(model, files, root if root.is_dir() else root.parent, prep, out, cfg.batch_size,
                                    cfg.get("high_band", "auto"), task, clean))
        return record
    if prep["kind"] == "table":
        inputs = table_inputs(files, prep)
    else:
        inputs = image_inputs(files, root if root.is_dir() else root.parent, prep, colorize=mode == "colorize")
        record["read"] = inputs.report
    record["skipped"] = inputs.skipped
    if not inputs.names:
        raise DataError(f"none of the {len(files)} input file(s) fit the run (see the lines above)")
    if mode in ("reconstruct", "restore", "colorize"):
        recon = batched(model.reconstruct, inputs.x, device=model.device, size=cfg.batch_size)
        record["written"] = write_outputs(recon, inputs.names, prep, out, "reconstructions.csv")
    elif mode == "encode":
        codes = batched(model.encode, inputs.x, device=model.device, size=cfg.batch_size).numpy()
        import numpy as np

        np.save(out / "codes.npy", codes)
        rows = [[name, *map(float, z)] for name, z in zip(inputs.names, codes)]
        record["written"] = ["codes.npy", write_table(out / "codes.csv", ["file", *[f"z{i}" for i in range(codes.shape[1])]], rows)]
    else:  # score
        record.update(score(model, inputs, state.get("threshold"), out, cfg.batch_size))
    return record


def write_outputs(x: Any, names: list[str], prep: dict, out: Path, table_name: str) -> list[str]:
    """Images as PNGs; audio clips as WAVs at the run's rate; table rows back on the data's scale in one CSV."""
    if prep["kind"] == "image":
        return write_images(x, names, out)
    if prep["kind"] == "audio":
        from aelab.data.audio_io import write_audio

        return [str(write_audio((out / n).with_suffix(".wav"), clip, prep["sample_rate"]).relative_to(out))
                for clip, n in zip(x, names)]
    raw = x.double() * prep["std"] + prep["mean"]
    return [write_table(out / table_name, ["file", *prep["columns"]], [[n, *map(float, r)] for n, r in zip(names, raw)])]


def score(model: Any, inputs: Inputs, threshold: dict | None, out: Path, size: int) -> dict[str, Any]:
    """scores.csv: every anomaly score of each input, and `flag` = the stored threshold's score above it."""
    from aelab.evals.anomaly import SCORE_SEED, all_scores

    scores = all_scores(model, inputs.x, inputs.x, size, seed=SCORE_SEED)  # -ELBO's posterior sample as at calibration
    names = list(scores)
    header = ["file", *names, "flag"]
    rows = []
    for i, name in enumerate(inputs.names):
        flag = "" if threshold is None else int(float(scores[threshold["score"]][i]) > threshold["threshold"])
        rows.append([name, *(float(scores[k][i]) for k in names), flag])
    result: dict[str, Any] = {"written": [write_table(out / "scores.csv", header, rows)], "threshold": threshold}
    if threshold is None:
        log.warning("this run stored no threshold (not an anomaly run): scores.csv has no flags")
    else:
        result["flagged"] = sum(int(r[-1]) for r in rows)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="apply")
def main(cfg: DictConfig) -> None:
    from aelab.tracking.run import write_json

    record = guarded(apply, cfg)
    if record is None:
        return
    write_json(Path(cfg.output) / "apply.json", record)
    done = len(record["written"])
    print(f"{record['mode']}: wrote {done} file(s) into {cfg.output}"
          + (f"; skipped {len(record['skipped'])} (listed in apply.json)" if record["skipped"] else "")
          + (f"; {record['flagged']} flagged as anomalies" if "flagged" in record else ""))
