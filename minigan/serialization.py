"""Pickle-free files: arrays in ``.npz`` plus JSON metadata, written atomically.

A minigan file is one ``.npz`` archive. Its arrays are stored under their own
names; the metadata dict is stored as JSON text in the array ``__meta__`` (a
uint8 array of UTF-8 bytes), so that one file carries both and one
``os.replace`` publishes both at once. Every load uses ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import numpy as np

META_KEY = "__meta__"
FORMAT_KEY = "minigan_format"


class FileFormatError(ValueError):
    """A file is not a readable minigan file of the expected kind."""


def _default_mode() -> int:
    # mkstemp creates 0600 files; published files get the usual 0666 & ~umask.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``
    (``os.replace``, atomic), on any error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *, kind: str,
    compress: bool = True,
) -> None:
    """Save ``arrays`` and JSON-serialisable ``meta`` to one ``.npz`` file atomically.

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if needed. Nothing at ``path`` changes
        unless the whole file was written.
    arrays : mapping of str to ndarray
        Numeric arrays (object arrays are refused: they would need pickle).
    meta : mapping
        JSON-serialisable metadata.
    kind : str
        What the file holds (e.g. ``"checkpoint"``); :func:`load_npz` checks it.
    compress : bool
        Deflate the arrays (trained float weights barely compress: checkpoints skip it).
    """
    payload: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name == META_KEY:
            raise ValueError(f"array name {META_KEY!r} is reserved")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
        payload[name] = value
    meta = dict(meta)
    meta[FORMAT_KEY] = kind
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    payload[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_file(path) as handle:
        (np.savez_compressed if compress else np.savez)(handle, **payload)


def load_npz(path: str | os.PathLike, *, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`save_npz`, checking that it holds ``kind``.

    Returns
    -------
    arrays : dict of str to ndarray
    meta : dict
        The JSON metadata.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FileFormatError
        The file is truncated, corrupt, not a minigan file, or holds another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if not magic:
        raise FileFormatError(f"{path} is an empty file (corrupt or truncated), not a minigan {kind} file")
    if not magic.startswith(b"PK") and not magic.startswith(b"\x93NUMPY"):
        # A text file or another format: say so, instead of NumPy's remark about pickled data.
        kind_of_file = "a text file" if _looks_like_text(path) else "not an .npz archive"
        raise FileFormatError(f"{path} is not a minigan {kind} file: it is {kind_of_file} (minigan files are "
                              ".npz archives written by minigan)")
    try:
        # Open the file ourselves: np.load(path) leaks the handle when the zip is unreadable.
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise FileFormatError(f"{path} holds a bare .npy array, not a minigan {kind} file")
            names = list(archive.files)
            if META_KEY not in names:
                raise FileFormatError(
                    f"{path} is not a minigan {kind} file (it has no {META_KEY!r} entry; arrays found: {names[:5]})"
                )
            raw = archive[META_KEY]
            arrays = {name: archive[name] for name in names if name != META_KEY}
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib_error()) as exc:
        raise FileFormatError(f"{path} is corrupt or truncated, or not an .npz file ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path} has unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get(FORMAT_KEY) != kind:
        found = meta.get(FORMAT_KEY) if isinstance(meta, dict) else None
        raise FileFormatError(f"{path} holds a minigan {found!r} file, expected a {kind!r} file")
    return arrays, meta


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def zlib_error() -> type:
    import zlib

    return zlib.error
