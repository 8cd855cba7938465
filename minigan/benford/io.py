"""Numbers from files for the digit tests: ``.npy`` arrays, CSV/TSV columns and plain text.

No pandas: CSV files go through the standard library's ``csv`` module, and each
cell through a parser that understands the ways people write numbers in
spreadsheets (currency signs, thousands separators, accounting negatives,
decimal commas).
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["is_image_file", "read_numbers"]

# The first bytes of the image formats Pillow reads most (PNG, JPEG, GIF, BMP, TIFF, WebP).
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an image file: an image suffix (``minigan.datasets.images.IMAGE_EXTENSIONS``)
    or the first bytes of a PNG, JPEG, GIF, BMP, TIFF or WebP file."""
    from ..datasets.images import IMAGE_EXTENSIONS

    path = Path(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")



def _parse_number(cell: str) -> int | float | None:
    """A number from a CSV/text cell, or None if it is not one.

    Accepts ``1e-3``, ``$12``, ``(45)`` (accounting for -45), ``1,234.5`` (thousands
    separators) and ``3,5`` (a decimal comma, when there is no dot).
    """
    text = cell.strip()
    if not text:
        return None
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = re.sub(r"[\s$€£¥%']", "", text)
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", text):
        text = text.replace(",", "")  # thousands separators
    elif text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")  # a decimal comma
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
    return -value if negative else value


def _numbers_array(values: list[int | float]) -> np.ndarray:
    """int64 when every value is an integer that fits (exact digits), else float64."""
    if values and all(isinstance(v, int) for v in values):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            pass
    return np.array(values, dtype=np.float64)


def read_numbers(path: str | os.PathLike, column: str | int | None = None) -> tuple[np.ndarray, int]:
    """Read numbers from a ``.npy`` file, a CSV file (with or without header) or plain text.

    Parameters
    ----------
    path : path-like
        ``.npy``: the array (flattened; ``column`` picks a column of a 2-D array).
        ``.csv`` / ``.tsv``: one column; a first row with a non-number in that
        column is a header. Other files: numbers separated by whitespace, commas
        or semicolons.
    column : str or int, optional
        CSV column by header name or 0-based index; required when the CSV has
        more than one column.

    Returns
    -------
    numbers : ndarray, shape (n,)
        int64 when every number is an integer that fits, else float64.
    n_skipped : int
        Cells that were not numbers (empty cells, text) and were skipped.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; unknown column; nothing numeric in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path} is not a readable .npy file ({exc})") from None
        if column is not None:
            if arr.ndim != 2:
                raise ValueError(f"--column needs a 2-D array, {path} holds shape {arr.shape}")
            index = _column_index(column, None, arr.shape[1], path)
            arr = arr[:, index]
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{path} holds dtype {arr.dtype}, not numbers")
        return arr.reshape(-1), 0
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise ValueError(f"{path} is a binary file, not numbers: give a .csv/.tsv, .npy or text file (or an image)")
    text = raw.decode("utf-8-sig", errors="replace")
    if suffix in (".csv", ".tsv"):
        return _read_csv(text, column, path, "\t" if suffix == ".tsv" else None)
    if column is not None:
        raise ValueError(f"--column applies to .csv/.tsv and .npy files, not {path.name}")
    tokens = [t for t in re.split(r"[\s;,]+", text) if t]
    parsed = [_parse_number(t) for t in tokens]
    values = [v for v in parsed if v is not None]
    if not values:
        raise ValueError(f"{path} holds no numbers")
    return _numbers_array(values), len(parsed) - len(values)


def _column_index(column: str | int, header: Sequence[str] | None, n_columns: int, path: Path) -> int:
    if header is not None and isinstance(column, str) and column in header:
        return list(header).index(column)
    try:
        index = int(column)
    except (TypeError, ValueError):
        names = ", ".join(header) if header else "none (no header row)"
        raise ValueError(f"{path} has no column {column!r}; columns: {names}") from None
    if not 0 <= index < n_columns:
        raise ValueError(f"column index {index} is out of range: {path} has {n_columns} column(s) (0-based)")
    return index


def _read_csv(text: str, column: str | int | None, path: Path, delimiter: str | None) -> tuple[np.ndarray, int]:
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path} is empty")
    n_columns = max(len(r) for r in rows)
    first = rows[0]
    if column is None:
        if n_columns > 1:
            raise ValueError(f"{path} has {n_columns} columns: choose one with --column NAME|INDEX")
        index = 0
        header = first if _parse_number(first[0]) is None else None
    else:
        # a header if the first row names the column or holds any non-number
        header = first if (isinstance(column, str) and column in first) or any(
            _parse_number(c) is None for c in first if c.strip()
        ) else None
        index = _column_index(column, header, n_columns, path)
    body = rows[1:] if header is not None else rows
    parsed = [_parse_number(r[index]) if index < len(r) else None for r in body]
    values = [v for v in parsed if v is not None]
    if not values:
        raise ValueError(f"{path} has no numbers in column {column if column is not None else 0!r}")
    return _numbers_array(values), len(parsed) - len(values)
