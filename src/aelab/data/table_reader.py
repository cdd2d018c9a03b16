"""Reading a messy CSV table: one reader for training (`data=csv`) and `aelab-apply`.

Encoding: UTF-8, UTF-8 with a byte-order mark (Excel's "CSV UTF-8"), UTF-16 with a BOM, else Latin-1 (every
byte is a character there, so it never fails). Delimiter: the one of comma, semicolon and tab that splits the
header into the most columns with the first rows agreeing on the count; comma when none splits it. Both are
named in one log line; `data.encoding` / `data.delimiter` force them (null: detect). A bad row (a field count
other than the header's, an empty cell, text or nan/inf in a feature column) stops the read with one line naming
the line and column, or with `on_bad_row="skip"` is dropped and listed.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aelab.core.errors import ConfigError, DataError

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}  # the candidates, in order of preference on a tie
ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}  # data.delimiter=tab is easier to type
ON_BAD_ROW = ("error", "skip")
SNIFF_ROWS = 20  # rows after the header that must agree with the header's field count


@dataclass
class Table:
    """A CSV file's header, its non-blank rows as (1-based line number, fields), and how it was read."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]
    encoding: str
    delimiter: str
    detected: list[str] = field(default_factory=list)  # which of "encoding", "delimiter" were detected

    def describe(self) -> str:
        """E.g. "Latin-1 text, semicolon-separated (both detected)" for a log line."""
        how = "both detected" if len(self.detected) == 2 else f"{self.detected[0]} detected" if self.detected else "both set"
        return f"{self.encoding} text, {DELIMITERS.get(self.delimiter, repr(self.delimiter))}-separated ({how})"


def check_settings(delimiter: str | None, encoding: str | None, on_bad_row: str) -> str | None:
    """The delimiter as one character (aliases resolved); ConfigError for settings that cannot work."""
    delimiter = ALIASES.get(delimiter, delimiter) if delimiter is not None else None
    if delimiter is not None and len(delimiter) != 1:
        raise ConfigError(f"data.delimiter={delimiter!r} must be one character (',', ';', tab) or null to detect it")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"data.encoding={encoding!r} is not a known encoding (e.g. utf-8, utf-8-sig, latin-1, "
                              f"cp1252) or null to detect it") from None
    if on_bad_row not in ON_BAD_ROW:
        raise ConfigError(f"data.on_bad_row={on_bad_row!r} must be one of {list(ON_BAD_ROW)}")
    return delimiter


def decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text and the name of its encoding (the given one, or detected)."""
    if encoding is not None:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not {encoding} text ({err.reason} at byte {err.start}): set data.encoding "
                            f"to the file's encoding, or null to detect it") from None
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError as err:
            raise DataError(f"{path} starts with a UTF-8 byte-order mark but is not UTF-8 text ({err.reason} at "
                            f"byte {err.start + 3}): set data.encoding to the file's encoding") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), "UTF-16"
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "Latin-1"


def sniff_delimiter(text: str) -> str:
    """The candidate splitting the header into the most fields with the next rows agreeing; comma by default."""
    lines = [line for line in text.splitlines() if line.strip()][: SNIFF_ROWS + 1]
    best, best_score = ",", (0.0, 1)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if not counts or counts[0] < 2:
            continue
        agree = sum(count == counts[0] for count in counts) / len(counts)
        if (agree, counts[0]) > best_score:
            best, best_score = delimiter, (agree, counts[0])
    return best


def read_csv(path: Path, delimiter: str | None = None, encoding: str | None = None) -> Table:
    """Header and non-blank rows of a CSV file; DataError for a missing, unreadable, empty or malformed file."""
    if not path.is_file():
        raise DataError(f"{path} not found: set data.path to an existing CSV file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror})") from err
    text, used = decode(path, raw, encoding)
    sep = delimiter if delimiter is not None else sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader, None)
        rows = [(reader.line_num, row) for row in reader if any(f.strip() for f in row)]  # blank lines skipped
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num or 1}: not valid CSV ({err})") from err
    if header is None or not any(name.strip() for name in header):
        raise DataError(f"{path} is empty: expected a header line naming the columns, then one row per example")
    header = [name.strip().lstrip("\ufeff") for name in header]  # a BOM left by a forced plain utf-8
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: the header names column(s) {', '.join(map(repr, duplicates))} more than once")
    detected = [kind for kind, given in (("encoding", encoding), ("delimiter", delimiter)) if given is None]
    return Table(path, header, rows, used, sep, detected)


def parse_row(header: list[str], line: int, row: list[str], features: list[int]) -> list[float]:
    """The feature values of one row; ValueError naming the line and column of a bad one."""
    if len(row) > len(header) and not any(f.strip() for f in row[len(header):]):
        row = row[: len(header)]  # trailing delimiters (e.g. "1;2;3;") are not extra columns
    if len(row) != len(header):
        raise ValueError(f"line {line}: {len(row)} fields but the header has {len(header)}")
    values = []
    for col in features:
        text = row[col]
        if not text.strip():
            raise ValueError(f"line {line}, column {header[col]!r}: the cell is empty (a missing value)")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"line {line}, column {header[col]!r}: {text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"line {line}, column {header[col]!r}: {text!r} is not a finite number")
        values.append(number)
    return values


@dataclass
class Parsed:
    """A table's usable rows: features (N, F) float64, label strings, line numbers, and the bad rows skipped."""

    x: np.ndarray
    labels: list[str]
    lines: list[int]
    skipped: list[str]  # "line L, column C: why" of each bad row dropped


def parse_rows(table: Table, label: int | None, features: list[int], skip: bool = False) -> Parsed:
    """The rows' features and labels; a bad row is dropped and listed with `skip`, else a DataError naming the
    file, line and column."""
    if not table.rows:
        raise DataError(f"{table.path} has a header but no data rows")
    values, labels, lines, skipped = [], [], [], []
    for line, row in table.rows:
        try:
            values.append(parse_row(table.header, line, row, features))
        except ValueError as err:
            if not skip:
                raise DataError(f"{table.path} {err} (data.on_bad_row=skip drops such rows)") from None
            skipped.append(str(err))
            continue
        labels.append(row[label].strip() if label is not None else "")
        lines.append(line)
    if not values:
        raise DataError(f"{table.path}: all {len(table.rows)} data rows are bad (first: {skipped[0]})")
    return Parsed(np.asarray(values, dtype=np.float64).reshape(len(values), len(features)), labels, lines, skipped)
