"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.

Layout (from the MNIST home page, http://yann.lecun.com/exdb/mnist/): two zero
bytes; one byte naming the element type; one byte with the number of
dimensions ``ndim``; ``ndim`` big-endian uint32 sizes; then the elements,
big-endian, in C order. A file is gzip-compressed when it starts with the gzip
signature ``1f 8b``, whatever its name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..serialization import FileFormatError, atomic_write_bytes

# IDX type code -> big-endian NumPy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_SIGNATURE = b"\x1f\x8b"


class IDXFormatError(FileFormatError):
    """A file is not a well-formed IDX file (wrong magic, type, dimensions or size)."""


def _open(path: Path):
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_SIGNATURE
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _read_exactly(handle, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining:
        chunk = handle.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-byte-order array.

    Parameters
    ----------
    path : path-like
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    ndarray
        Shape as stored, e.g. (60000, 28, 28) for MNIST images and (60000,) for
        labels; dtype uint8, int8, int16, int32, float32 or float64.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    IDXFormatError
        Bad magic number, unknown type code, zero dimensions, a truncated or
        over-long body, or a corrupt gzip stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such IDX file: {path}")
    try:
        with _open(path) as handle:
            header = _read_exactly(handle, 4)
            if len(header) < 4:
                raise IDXFormatError(f"{path} is too short to be an IDX file ({len(header)} header bytes of 4)")
            if header[0] != 0 or header[1] != 0:
                raise IDXFormatError(
                    f"{path} is not an IDX file: it starts with bytes {header[:2].hex()} instead of 0000"
                )
            code, ndim = header[2], header[3]
            if code not in IDX_DTYPES:
                known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
                raise IDXFormatError(f"{path} has unknown IDX type code 0x{code:02X} (known: {known})")
            if ndim == 0:
                raise IDXFormatError(f"{path} declares 0 dimensions")
            raw_dims = _read_exactly(handle, 4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise IDXFormatError(f"{path} is truncated inside its header ({ndim} dimensions declared)")
            dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            dtype = IDX_DTYPES[code]
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            # read one byte past the end: trailing data means the header lies about the size
            body = _read_exactly(handle, expected + 1)
    except IDXFormatError:
        raise
    except (EOFError, OSError, zlib.error) as exc:
        raise IDXFormatError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    if len(body) < expected:
        raise IDXFormatError(
            f"{path} is truncated: dimensions {dims} of {dtype.newbyteorder('=').name} need {expected} data bytes, "
            f"found {len(body)}"
        )
    if len(body) > expected:
        raise IDXFormatError(f"{path} has data past the {expected} bytes that dimensions {dims} declare")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically.

    Parameters
    ----------
    path : path-like
        Destination. Gzip-compressed when ``compress`` is true, or when it is
        None and the name ends in ``.gz``.
    array : ndarray
        Any shape with 1 to 255 dimensions; dtype uint8, int8, int16, int32,
        float32 or float64.
    compress : bool, optional
        Force compression on or off.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"array must have dtype uint8, int8, int16, int32, float32 or float64, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got shape {array.shape}")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
