"""Screen folders of image files with a detector: streaming, in bounded memory, on Dask if asked.

:func:`scan` walks the paths lazily and scores the files in chunks; each file gives
one :class:`ScanRow`, scored or with the reason it was not (unreadable, too small,
the wrong size for a pixel model): a bad file is reported, never fatal. Memory
stays bounded whatever the corpus and the images: a chunk holds at most
``chunk_files`` files, their pixels are featurized in groups of about
``CHUNK_PIXELS`` pixels, and a photo larger than that is scored through its luma
block row by block row (:func:`~minigan.benford.image.image_features`).

With a ``dask.distributed`` client the chunks run on its workers (the detector
travels as its ``.npz`` bytes, read once per worker); a chunk whose worker died is
run again, and every file still gives exactly one row. The chunks and the order of
the files in them are the same as in one process, so are the batches the network
sees: the scores are identical, only the order of the rows may differ.

:class:`CsvLog` appends rows to a CSV file as they come (flushed after every
chunk) and, to resume, reads which files a previous run already scored.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .._validation import check_int, check_real, describe

__all__ = ["CSV_COLUMNS", "CsvLog", "ScanRow", "count_image_files", "iter_image_files", "scan", "score_files"]

#: Columns of the CSV written by :class:`CsvLog` (and ``minigan detect predict --csv``).
CSV_COLUMNS = ("file", "p_fake", "verdict", "status")
#: Pixels featurized together inside a chunk (about 4 MB of 8-bit luma).
CHUNK_PIXELS = 1 << 22
DEFAULT_CHUNK_FILES = 512
#: A chunk also closes once its files hold this many bytes (a proxy for pixels, known without decoding).
CHUNK_BYTES = 16 << 20
_BENFORD_MIN_SIDE = 8


@dataclass(frozen=True)
class ScanRow:
    """The outcome for one file.

    Attributes
    ----------
    file : str
        The path as the scan found it.
    p_fake : float or None
        Probability that the image is GAN-generated; None when it was not scored.
    verdict : str
        ``"fake"`` (``p_fake >= threshold``), ``"real"``, or ``""`` when not scored.
    status : str
        ``"ok"``, or why the file was not scored, starting with one of ``"missing"``,
        ``"unreadable"``, ``"too small"``, ``"wrong size"``, ``"error"``.
    note : str or None
        For a scored image far from the detector's training images, why
        (:meth:`~minigan.benford.BenfordDetector.domain_gap`); not written to the CSV.
    """

    file: str
    p_fake: float | None
    verdict: str
    status: str
    note: str | None = None

    @property
    def scored(self) -> bool:
        return self.p_fake is not None

    @property
    def reason(self) -> str:
        """The kind of status: ``"ok"``, ``"missing"``, ``"unreadable"``, ``"too small"``, ..."""
        return self.status.split(":", 1)[0]

    def csv_fields(self) -> list[str]:
        return [self.file, "" if self.p_fake is None else f"{self.p_fake:.6f}", self.verdict, self.status]


# ---------------------------------------------------------------------------
# files


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """The files to scan, lazily: each path that is not a folder as it is (a missing or
    non-image file gets its row too), and under each folder every file whose suffix is
    in :data:`minigan.datasets.images.IMAGE_EXTENSIONS`, depth first, in name order."""
    from ..datasets.images import IMAGE_EXTENSIONS

    def walk(folder: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            try:
                if entry.is_dir():
                    yield from walk(entry.path)
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    yield entry.path
            except OSError:
                continue

    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            yield from walk(p)
        else:
            yield p


def count_image_files(paths: Iterable[str | os.PathLike]) -> int:
    """How many files :func:`iter_image_files` gives (one walk, nothing kept)."""
    return sum(1 for _ in iter_image_files(paths))


def _chunks(files: Iterable[str], chunk_files: int) -> Iterator[list[str]]:
    """Consecutive files, at most ``chunk_files`` or about ``CHUNK_BYTES`` bytes of them at a time."""
    chunk: list[str] = []
    size = 0
    for f in files:
        chunk.append(f)
        try:
            size += os.stat(f).st_size
        except OSError:
            pass
        if len(chunk) >= chunk_files or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# ---------------------------------------------------------------------------
# scoring one chunk


def _read(path: str, detector: Any) -> tuple[np.ndarray | None, str]:
    """The image as the detector takes it, or None and the reason."""
    from ..datasets.images import ImageReadError, read_image
    from .detector import PixelDetector

    pixel = isinstance(detector, PixelDetector)
    color = ("rgb" if len(detector.image_shape_) == 3 else "grey") if pixel else "auto"
    try:
        image = read_image(path, color)
    except FileNotFoundError:
        return None, "missing: no such file"
    except ImageReadError as exc:
        message = str(exc).replace(f"cannot read image {path}: ", "").replace(f"{path}: ", "")
        return None, f"unreadable: {_short(message)}"
    except (OSError, ValueError, MemoryError) as exc:  # a folder given as a file, an unreadable disk, ...
        return None, f"unreadable: {type(exc).__name__}: {_short(exc)}"
    h, w = image.shape[:2]
    if pixel:
        if image.shape != tuple(detector.image_shape_):
            expected = "x".join(map(str, detector.image_shape_[:2]))
            kind = " colour" if len(detector.image_shape_) == 3 else ""
            return None, f"wrong size: {h}x{w}, the model expects {expected}{kind} images"
    elif min(h, w) < _BENFORD_MIN_SIDE:
        return None, f"too small: {h}x{w}, the Benford features need at least 8x8 (one DCT block)"
    return image, "ok"


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def score_files(files: Sequence[str], detector: Any, threshold: float = 0.5) -> list[ScanRow]:
    """Score one chunk of files in this process: one :class:`ScanRow` per file, in order.

    Files are read one at a time; the readable ones are featurized and scored in
    groups of about ``CHUNK_PIXELS`` pixels, so memory stays bounded. A group
    that fails as a whole (which only a bug should cause) marks its files
    ``"error: ..."`` instead of stopping the scan.
    """
    from .detector import BenfordDetector

    results: dict[int, ScanRow] = {}
    pending: list[tuple[int, np.ndarray]] = []
    pixels = 0

    def flush() -> None:
        nonlocal pending, pixels
        if not pending:
            return
        try:
            raw = detector.features([image for _, image in pending])
            p_fake = _probabilities(detector.decision_function_of_features(raw))
        except Exception as exc:  # noqa: BLE001 - one bad group must not end a scan of millions
            for i, _ in pending:
                results[i] = ScanRow(files[i], None, "", f"error: {type(exc).__name__}: {_short(exc)}")
        else:
            for (i, image), p in zip(pending, p_fake):
                note = detector.domain_gap(image) if isinstance(detector, BenfordDetector) else None
                results[i] = ScanRow(files[i], float(p), "fake" if p >= threshold else "real", "ok", note)
        pending, pixels = [], 0

    for i, path in enumerate(files):
        image, status = _read(path, detector)
        if image is None:
            results[i] = ScanRow(path, None, "", status)
            continue
        pending.append((i, image))
        pixels += image.shape[0] * image.shape[1]
        if pixels >= CHUNK_PIXELS:
            flush()
    flush()
    return [results[i] for i in range(len(files))]


def _probabilities(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow (as predict_proba)


# ---------------------------------------------------------------------------
# the scan


def scan(
    paths: Iterable[str | os.PathLike],
    detector: Any,
    *,
    threshold: float = 0.5,
    skip: Callable[[str], bool] | None = None,
    chunk_files: int = DEFAULT_CHUNK_FILES,
    client: Any = None,
    max_retries: int = 3,
) -> Iterator[list[ScanRow]]:
    """Score every image file under ``paths``, one chunk of rows at a time.

    Parameters
    ----------
    paths : iterable of path-like
        Image files and folders (searched recursively, :func:`iter_image_files`).
    detector : BenfordDetector or PixelDetector
        A fitted detector.
    threshold : float in [0, 1]
        ``p_fake`` from which the verdict is ``"fake"``.
    skip : callable file -> bool, optional
        Files for which it is true are left out (those a previous scan did: resume).
    chunk_files : int
        Files per chunk (the unit of work sent to a Dask worker); a chunk also
        closes at about 16 MB of files.
    client : dask.distributed.Client, optional
        Run the chunks on this cluster; by default they run in this process. The
        scores are the same to the last bit when this process and the workers run
        the same number of BLAS threads (the thread count changes the last bits of
        matrix products; ``minigan detect`` runs one everywhere).
    max_retries : int
        With a client: how often a chunk whose worker died is submitted again
        before its files get ``"error: ..."`` rows.

    Yields
    ------
    list of ScanRow
        The rows of one chunk: one per file, every file exactly once over the scan.
        In one process chunks come in the order of the files; with a client, as they
        finish. Closing the iterator early (``break``, Ctrl-C) cancels what is left.

    Examples
    --------
    >>> for rows in scan(["uploads/"], load_detector("model.npz")):  # doctest: +SKIP
    ...     for row in rows:
    ...         print(row.file, row.p_fake, row.status)
    """
    from .detector import _NetworkDetector

    if not isinstance(detector, _NetworkDetector):
        raise TypeError(f"detector must be a BenfordDetector or PixelDetector, got {describe(detector)}")
    detector._check_fitted()
    threshold = check_real(threshold, "threshold", minimum=0.0, maximum=1.0)
    chunk_files = check_int(chunk_files, "chunk_files", minimum=1)
    max_retries = check_int(max_retries, "max_retries", minimum=0)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: Iterable[str] = iter_image_files(paths)
    if skip is not None:
        files = (f for f in files if not skip(f))
    chunks = _chunks(files, chunk_files)
    if client is None:
        return (score_files(chunk, detector, threshold) for chunk in chunks)
    return _scan_on_dask(chunks, detector, threshold, client, max_retries)


# ---------------------------------------------------------------------------
# Dask

_WORKER_DETECTORS: dict[str, Any] = {}


def detector_bytes(detector: Any) -> bytes:
    """The detector's ``.npz`` file as bytes (what travels to Dask workers: no pickle of our objects)."""
    with tempfile.TemporaryDirectory(prefix="minigan-") as folder:
        path = Path(folder) / "model.npz"
        detector.save(path)
        return path.read_bytes()


def _detector_from_bytes(data: bytes) -> Any:
    from .detector import load_detector

    with tempfile.TemporaryDirectory(prefix="minigan-") as folder:
        path = Path(folder) / "model.npz"
        path.write_bytes(data)
        return load_detector(path)


def _score_on_worker(files: list[str], model: bytes, token: str, threshold: float) -> list[tuple]:
    """A Dask task: score a chunk with the detector ``model`` (loaded once per worker process)."""
    detector = _WORKER_DETECTORS.get(token)
    if detector is None:
        _WORKER_DETECTORS.clear()
        detector = _WORKER_DETECTORS[token] = _detector_from_bytes(model)
    return [(r.file, r.p_fake, r.verdict, r.status, r.note) for r in score_files(files, detector, threshold)]


#: Dask settings of the local cluster a scan starts: no dashboard, so none of the sampling that feeds one
#: (the workers' statistical profiler runs every 10 ms by default), the resource monitors at a slower pace,
#: and glibc's own trimming of freed memory: Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``
#: (freed memory goes back to the system at once, against fragmentation in long-lived workers), and the
#: large temporaries of a big image (the float64 blocks of a 512x512 photo: 2 MB) then fault their pages
#: in again for every image. A value already in the environment still wins.
LOCAL_CLUSTER_CONFIG = {
    # the event-loop tick monitor of every server (scheduler, nannies, client: all in this process) runs every
    # 20 ms by default, and work stealing every 100 ms: on a machine whose cores the workers fill they take
    # from them (this process used 0.45-0.75 s of CPU per 3,000-file scan, 0.23-0.38 s with these)
    "distributed.admin.tick.interval": "1s",
    "distributed.scheduler.work-stealing-interval": "500ms",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


def start_local_cluster(n_workers: int, silence_logs: int) -> tuple[Any, Any]:
    """A Dask LocalCluster of ``n_workers`` single-threaded worker processes on 127.0.0.1 and its client.

    Dask's nannies start each worker with one BLAS thread (``OPENBLAS_NUM_THREADS`` and friends
    1, unless this process's environment sets them): a process per core. They write that
    environment into this process's ``os.environ`` before they spawn; it is put back once the
    workers are up, so that what this process starts later sees the environment it had.
    Logs below ``silence_logs`` are dropped.
    """
    import dask
    from distributed import Client, LocalCluster

    environ = dict(os.environ)
    try:
        with dask.config.set(LOCAL_CLUSTER_CONFIG):  # the nannies hand the settings to their workers
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=silence_logs)
            client = Client(cluster)
    finally:
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
    return cluster, client


def _scan_on_dask(chunks: Iterator[list[str]], detector: Any, threshold: float, client: Any,
                  max_retries: int) -> Iterator[list[ScanRow]]:
    from distributed import as_completed

    model = detector_bytes(detector)
    token = hashlib.sha256(model).hexdigest()
    shared = {"model": client.scatter(model, broadcast=True, hash=False)}
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    in_flight = 2 * n_workers + 2  # enough to keep every worker busy, few enough to bound memory
    tries: dict[Any, tuple[list[str], int]] = {}
    pool = as_completed()

    def submit(chunk: list[str], attempt: int) -> None:
        future = client.submit(_score_on_worker, chunk, shared["model"], token, threshold, pure=False,
                               retries=0)
        tries[future] = (chunk, attempt)
        pool.add(future)

    try:
        for chunk in chunks:
            submit(chunk, 0)
            if len(tries) >= in_flight:
                break
        for future in pool:
            chunk, attempt = tries.pop(future)
            try:
                rows = [ScanRow(*fields) for fields in future.result()]
            except Exception as exc:  # noqa: BLE001 - a dead worker (KilledWorker), a lost connection
                if attempt < max_retries:
                    # the worker that died may have held the last copy of the model ("lost dependencies"):
                    # send it again before the chunk goes back
                    shared["model"] = client.scatter(model, broadcast=True, hash=False)
                    submit(chunk, attempt + 1)
                    continue
                rows = [ScanRow(f, None, "", f"error: {type(exc).__name__}: {_short(exc)}") for f in chunk]
            yield rows
            for chunk in chunks:  # refill: one finished, one more
                submit(chunk, 0)
                break
    finally:
        for future in tries:
            future.cancel()


# ---------------------------------------------------------------------------
# the CSV file


class CsvLog:
    """Rows appended to a CSV file as they are scored; what a stopped scan already did.

    Parameters
    ----------
    path : path-like
    resume : bool
        Continue an existing file: its files are :attr:`done` (a last line cut short
        by a hard kill is dropped, so that file is scored again). Without it an
        existing file is an error unless ``overwrite``.
    overwrite : bool
        Start the file again.
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists and not resume and not overwrite:
            raise FileExistsError(
                f"{self.path} already exists: pass --resume to continue that scan, or --overwrite to start again"
            )
        if exists and resume:
            self._read_done()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerow(CSV_COLUMNS)
                handle.flush()
                os.fsync(handle.fileno())
        self._handle = open(self.path, "a", newline="", encoding="utf-8")

    def _read_done(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a half-written last line (the process was killed mid-write)
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
            data = data[:end]
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        header = next(reader, None)
        if header is None:
            with open(self.path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerow(CSV_COLUMNS)
            return
        if tuple(header) != CSV_COLUMNS:
            raise ValueError(
                f"{self.path} is not a scan of minigan detect predict: its columns are {header}, "
                f"expected {list(CSV_COLUMNS)}"
            )
        self.done = {row[0] for row in reader if row}

    def write(self, rows: Sequence[ScanRow]) -> None:
        """Append ``rows`` and flush them to the disk (whole lines only)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(row.csv_fields() for row in rows)
        self._handle.write(buffer.getvalue())
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "CsvLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
