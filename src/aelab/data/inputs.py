"""A user's files read for a trained model exactly as its training read them (the rule stored in best.ckpt):
images, table rows, the files of a folder. Used by aelab-apply and the explorer's upload. A file that does not
fit gets one line and is skipped; the rest are read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aelab.core.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Model inputs read from the user's files: (N, *shape) tensor, a name per row, the files skipped, and for
    images what reading did to them (ReadReport.record())."""

    x: Any
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def skip(skipped: list[str], message: str) -> None:
    log.warning("skipped %s", message)
    skipped.append(message)


def image_inputs(paths: list[Path], root: Path, prep: dict[str, Any], colorize: bool) -> Inputs:
    """Each image read as the run's training read its files (aelab.data.images, the rule stored in `prep`); a file
    that does not decode is skipped. Colorize reads any file in colour and gives the model its luminance."""
    import numpy as np
    import torch

    from aelab.data.images import ImageRule, ReadReport, read_image
    from aelab.data.tasks import Colorize

    rule = ImageRule.from_preprocessing(prep)
    arrays, names, skipped, report = [], [], [], ReadReport()
    for path in paths:
        name = str(path.relative_to(root)) if path != root else path.name
        try:
            array, notes = read_image(path, rule)
        except DataError as err:
            skip(skipped, str(err))
            report.bad_files.append(name)
            continue
        arrays.append(array)
        names.append(name)
        report.add(name, notes)
    report.log(f"input={root}")
    x = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0, *prep["shape"])  # (N, C, H, W)
    return Inputs(Colorize().inputs(x) if colorize and arrays else x, names, skipped, report.record())


def table_inputs(paths: list[Path], prep: dict) -> Inputs:
    """Rows of CSV files with the run's feature columns (any order, extra columns ignored), read by the training
    reader (encoding and delimiter detected unless the run forced them) and standardised with the run's
    statistics; a file missing a column, or a row with a bad value, gets one line and is skipped."""
    import torch

    from aelab.data.table_reader import parse_rows, read_csv
    from aelab.data.tabular import standardise

    columns, blocks, names, skipped = prep["columns"], [], [], []
    for path in paths:
        try:
            table = read_csv(path, prep.get("delimiter"), prep.get("encoding"))
            missing = [c for c in columns if c not in table.header]
            if missing:
                raise DataError(f"{path.name}: no column(s) {', '.join(map(repr, missing))} (the run used {len(columns)} columns)")
            rows = parse_rows(table, None, [table.header.index(c) for c in columns], skip=True)
        except DataError as err:
            skip(skipped, str(err))
            continue
        log.info("%s: read as %s", path, table.describe())
        for message in rows.skipped:
            skip(skipped, f"{path.name} {message}")
        names += [f"{path.name}:{line}" for line in rows.lines]
        blocks.append(torch.from_numpy(rows.x))
    raw = torch.cat(blocks) if blocks else torch.empty(0, len(columns), dtype=torch.float64)
    return Inputs(standardise(raw, prep["mean"], prep["std"]), names, skipped)


def input_files(path: Path, kind: str) -> tuple[list[Path], list[str]]:
    """The input file, or the files of the run's kind under a folder (any depth), and the others skipped (named,
    with why: hidden, another ending): images every ending Pillow reads, audio every ending libsndfile reads."""
    from aelab.data.audio_io import audio_extensions
    from aelab.data.base import folder_scan, named
    from aelab.data.images import image_extensions

    suffixes = {"table": (".csv",), "audio": audio_extensions()}.get(kind) or image_extensions()
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise DataError(f"input={path} does not exist")
    files, skipped = folder_scan(path, suffixes, depth=None)
    if skipped:
        log.info("input=%s: skipped %d file(s) not read here: %s", path, len(skipped), named(skipped))
    if not files:
        raise DataError(f"input={path} holds no {kind} input files ({named(sorted(suffixes), 6)})")
    return files, skipped
