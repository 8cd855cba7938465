"""Full MNIST and Fashion-MNIST: a verified download, a cache folder, and the readers.

Checksums
---------
SHA-256 digests and sizes of the IDX archives are those published by
TensorFlow Datasets (``tensorflow_datasets/url_checksums/mnist.txt`` and
``fashion_mnist.txt``); Keras lists the same Fashion-MNIST digests
(``keras/src/datasets/fashion_mnist.py``) and the digest of its ``mnist.npz``
(``keras/src/datasets/mnist.py``). A file is used only if its SHA-256 matches.

Cache
-----
``cache_dir`` argument, else ``$MINIGAN_DATA``, else ``$XDG_CACHE_HOME/minigan``,
else ``~/.cache/minigan``; one subfolder per dataset (``mnist/``,
``fashion-mnist/``). To work offline, copy the four ``.gz`` files (or Keras'
``mnist.npz`` for MNIST) into that subfolder.

Mirrors
-------
Each dataset lists base URLs tried in order. ``$MINIGAN_DATA_MIRROR`` or the
``mirror`` argument replaces them with one base URL holding the same file
names (the checksums still apply).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._validation import check_choice, check_real, describe
from ..serialization import FileFormatError
from .idx import read_idx

CHUNK = 1 << 16
SPLITS = ("train", "test")


class DownloadError(OSError):
    """A download failed: HTTP error, network error, truncated transfer or wrong checksum."""


class ChecksumError(DownloadError):
    """Downloaded or cached bytes do not have the expected SHA-256."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, SHA-256 and size in bytes (None if unpublished)."""

    filename: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's files live and what they must hash to.

    ``files`` maps ``"{split}_images"`` and ``"{split}_labels"`` to IDX archives;
    ``keras_npz`` is an alternative single file accepted from the cache.
    """

    name: str
    mirrors: tuple[str, ...]
    files: dict[str, RemoteFile]
    license: str
    keras_npz: RemoteFile | None = None


# Sources: see the module docstring. The MNIST mirrors are those used by TensorFlow Datasets
# (cvdf-datasets) and torchvision (ossci-datasets); yann.lecun.com itself often refuses downloads.
SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        name="mnist",
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
        files={
            "train_images": RemoteFile(
                "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                9912422,
            ),
            "train_labels": RemoteFile(
                "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                28881,
            ),
            "test_images": RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                1648877,
            ),
            "test_labels": RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                4542,
            ),
        },
        license="MNIST: Yann LeCun, Corinna Cortes, Christopher J. C. Burges; CC BY-SA 3.0",
        keras_npz=RemoteFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    ),
    "fashion-mnist": DatasetSource(
        name="fashion-mnist",
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        files={
            "train_images": RemoteFile(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                26421880,
            ),
            "train_labels": RemoteFile(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                29515,
            ),
            "test_images": RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                4422102,
            ),
            "test_labels": RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                5148,
            ),
        },
        license="Fashion-MNIST: Zalando SE; MIT license",
    ),
}


def default_cache_dir() -> Path:
    """The data cache: ``$MINIGAN_DATA``, else ``$XDG_CACHE_HOME/minigan``, else ``~/.cache/minigan``."""
    explicit = os.environ.get("MINIGAN_DATA")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says relative paths in these variables are invalid and must be ignored
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "minigan"
    return Path.home() / ".cache" / "minigan"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(sha256: object) -> str:
    if not isinstance(sha256, str) or re.fullmatch(r"[0-9a-fA-F]{64}", sha256) is None:
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {describe(sha256)}")
    return sha256.lower()


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    *,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, publishing it only once its SHA-256 matches.

    The bytes stream into a temporary file in ``dest``'s folder, which is
    renamed onto ``dest`` with ``os.replace`` after the checksum and the
    length check pass. On any failure (or Ctrl-C) the temporary file is
    removed and an existing ``dest`` is left untouched.

    Parameters
    ----------
    url : str
        An ``http://``, ``https://`` or ``file://`` URL.
    dest : path-like
        Final location; its folder is created if needed.
    sha256 : str
        Expected SHA-256 of the whole file (64 hex digits).
    timeout : float
        Seconds to wait for the connection and for each read.
    progress : callable(bytes_so_far, total_or_None), optional
        Called after each chunk.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        HTTP error status, network failure or timeout, or fewer bytes than the
        server announced.
    ChecksumError
        The bytes arrived but their SHA-256 differs from ``sha256``.
    """
    import http.client
    import socket
    import urllib.error
    import urllib.request

    if not isinstance(url, str) or not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"url must be an http://, https:// or file:// URL, got {describe(url)}")
    sha256 = _check_sha256(sha256)
    timeout = check_real(timeout, "timeout", minimum=0.0, min_inclusive=False)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:
                raise DownloadError(f"cannot reach {url}: {exc.reason}") from None
            except http.client.IncompleteRead as exc:
                raise DownloadError(
                    f"download of {url} is truncated: the connection closed after {received + len(exc.partial)} bytes"
                ) from None
            except (socket.timeout, TimeoutError) as exc:
                raise DownloadError(f"download of {url} timed out after {timeout} s ({exc})") from None
            except (http.client.HTTPException, ConnectionError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                raise DownloadError(f"download of {url} failed after {received} bytes ({reason})") from None
            if total is not None and received != total:
                raise DownloadError(
                    f"download of {url} is truncated: received {received} of the {total} bytes announced"
                )
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise ChecksumError(
                f"download of {url} has the wrong checksum ({received} bytes): SHA-256 {actual}, "
                f"expected {sha256}; the file was discarded"
            )
        # mkstemp creates a private file; a cached dataset should get the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _mirrors(source: DatasetSource, mirror: str | None) -> tuple[str, ...]:
    chosen = mirror or os.environ.get("MINIGAN_DATA_MIRROR")
    bases = (chosen,) if chosen else source.mirrors
    return tuple(base if base.endswith("/") else base + "/" for base in bases)


def fetch_file(
    source: DatasetSource,
    remote: RemoteFile,
    folder: Path,
    *,
    allow_download: bool = True,
    mirror: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Return the path of a verified copy of ``remote`` in ``folder``, downloading it if needed.

    A cached copy whose SHA-256 is wrong is replaced by a fresh download (or
    reported, when downloads are not allowed).
    """
    path = folder / remote.filename
    if path.is_file():
        actual = file_sha256(path)
        if actual == remote.sha256:
            return path
        if not allow_download:
            raise ChecksumError(
                f"the cached file {path} has SHA-256 {actual}, expected {remote.sha256}; "
                "delete it, or allow the download to replace it"
            )
    elif not allow_download:
        raise FileNotFoundError(
            f"{source.name}: {remote.filename} is not in the cache folder {folder} and downloads are off; "
            f"download it from {source.mirrors[0]}{remote.filename} into that folder, or pass download=True"
        )
    errors = []
    for base in _mirrors(source, mirror):
        try:
            return download(base + remote.filename, path, remote.sha256, timeout=timeout)
        except DownloadError as exc:
            errors.append(str(exc))
    raise DownloadError(
        f"could not download {source.name} file {remote.filename}:\n  " + "\n  ".join(errors)
        + f"\nWithout network, copy {remote.filename} into the folder {folder}"
    )


def read_keras_mnist_npz(path: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read one split of Keras' ``mnist.npz`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``).

    Parameters
    ----------
    path : path-like
    split : {"train", "test"}

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
    labels : ndarray of uint8, shape (n,)
    """
    check_choice(split, "split", SPLITS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        # numpy leaks its own file handle when the zip is unreadable, so it gets ours
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise FileFormatError(f"{path} is a single .npy array, not Keras' mnist.npz archive")
            missing = [key for key in (f"x_{split}", f"y_{split}") if key not in archive.files]
            if missing:
                raise FileFormatError(
                    f"{path} is not Keras' mnist.npz: it lacks {', '.join(missing)} (has {', '.join(archive.files)})"
                )
            images, labels = archive[f"x_{split}"], archive[f"y_{split}"]
    except FileFormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise FileFormatError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    return check_image_label_pair(images, labels, f"{path} ({split})")


def check_image_label_pair(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Require MNIST-like arrays: uint8 images (n, h, w), uint8 labels (n,) with classes 0..9."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise FileFormatError(f"{where}: images must be uint8 of shape (n, h, w), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != (images.shape[0],):
        raise FileFormatError(
            f"{where}: labels must be uint8 of shape ({images.shape[0]},) to match {images.shape[0]} images, "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise FileFormatError(f"{where}: labels must be classes 0..9, found {int(labels.max())}")
    return images, labels


def load_remote(
    name: str,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirror: str | None = None,
    timeout: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST or Fashion-MNIST from the cache, downloading the missing files.

    For MNIST a verified Keras ``mnist.npz`` in the cache folder is used when
    the IDX files are absent.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test"}
    cache_dir : path-like, optional
        Default: :func:`default_cache_dir`.
    download : bool
        Fetch missing files from the network.
    mirror : str, optional
        Base URL replacing the official ones (also ``$MINIGAN_DATA_MIRROR``).
    timeout : float
        Seconds, per connection and per read.

    Returns
    -------
    images : ndarray of uint8, shape (60000, 28, 28) for train, (10000, 28, 28) for test
    labels : ndarray of uint8, shape (n,)
    """
    check_choice(name, "name", tuple(SOURCES))
    check_choice(split, "split", SPLITS)
    source = SOURCES[name]
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / name
    image_file, label_file = source.files[f"{split}_images"], source.files[f"{split}_labels"]
    have_idx = (folder / image_file.filename).is_file() and (folder / label_file.filename).is_file()
    if not have_idx and source.keras_npz is not None and (folder / source.keras_npz.filename).is_file():
        npz = folder / source.keras_npz.filename
        actual = file_sha256(npz)
        if actual != source.keras_npz.sha256:
            raise ChecksumError(f"the cached file {npz} has SHA-256 {actual}, expected {source.keras_npz.sha256}")
        return read_keras_mnist_npz(npz, split)
    paths = [
        fetch_file(source, remote, folder, allow_download=download, mirror=mirror, timeout=timeout)
        for remote in (image_file, label_file)
    ]
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    return check_image_label_pair(images, labels, f"{name} {split} ({folder})")
