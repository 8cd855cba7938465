"""The ``benford`` and ``detect`` sub-commands (wired into ``minigan/cli.py``).

Each ``add_*_command(subparsers)`` registers its parser and sets ``func`` to a
function taking the parsed namespace and returning an exit code: 0 on success,
1 when the work failed (a message on stderr says why). The functions here only
read files and print; the statistics, features and models are the library's.
"""
from __future__ import annotations

import argparse
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .io import is_image_file, read_numbers

_PROGRESS_MIN_FILES = 20
_EXAMPLES = 3


# ---------------------------------------------------------------------------
# benford FILE


def add_benford_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``benford FILE [--column] [--test] [--base] [--plot]``."""
    parser = subparsers.add_parser(
        "benford",
        help="test numbers in a file against Benford's law",
        description="Compare the leading digits of the numbers in FILE (.csv, .npy or plain text) with "
        "Benford's law: table, chi-square, KS, MAD and Nigrini's conformity label. Given an image file, the "
        "numbers are its quantized 8x8 block DCT coefficients (what the Benford detector looks at).",
    )
    parser.add_argument("file", metavar="FILE", help="a .csv/.tsv (with or without header), .npy, text or image file")
    parser.add_argument("--column", metavar="NAME|INDEX", help="CSV column by header name or 0-based index")
    parser.add_argument("--test", choices=("first", "second", "first_two"), default="first",
                        help="digit test (default first)")
    parser.add_argument("--base", type=int, default=10, help="base of the digits (>= 3; default 10)")
    parser.add_argument("--plot", metavar="OUT.png", help="also save the Benford chart")
    parser.set_defaults(func=run_benford)
    return parser


def run_benford(args: argparse.Namespace) -> int:
    """Run ``benford``: print the test's table and statistics; exit code."""
    from .digits import benford_test

    try:
        if is_image_file(args.file):
            numbers, skipped = _image_coefficients(args.file, args.column), 0
        else:
            numbers, skipped = read_numbers(args.file, args.column)
        result = benford_test(numbers, test=args.test, base=args.base)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {args.file}: {exc}" if str(args.file) not in str(exc) else f"error: {exc}", file=sys.stderr)
        return 1
    if skipped:
        print(f"note: {skipped} cell(s) were not numbers and were skipped")
    print(result)
    if args.plot:
        from .plots import plot_benford

        try:
            print(f"chart written to {plot_benford(result, args.plot)}")
        except OSError as exc:
            print(f"error: cannot write {args.plot}: {exc}", file=sys.stderr)
            return 1
    return 0


def _image_coefficients(path: str, column: str | None) -> np.ndarray:
    """The quantized AC coefficients (JPEG quality 100, 9 per 8x8 luma block) of an image file."""
    from ..datasets.images import read_image
    from .image import quantized_dct

    if column is not None:
        raise ValueError("--column applies to .csv/.tsv and .npy files, not to an image")
    image = read_image(path, "auto")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"the image is {image.shape[0]}x{image.shape[1]}: its DCT needs at least 8x8 pixels")
    coefficients = quantized_dct(image[None], quality_factor=100, n_coefficients=9)[0]
    print(f"{path} is an image: testing its quantized 8x8 block DCT coefficients "
          f"(9 AC coefficients per block, JPEG quality 100, {coefficients.shape[0]} blocks)")
    return coefficients


# ---------------------------------------------------------------------------
# detect fit / predict / evaluate


def _threshold(text: str) -> float:
    """argparse type of ``--threshold``: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability must lie between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Dask (optional: pip install \"minigan[dask]\")")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, metavar="N",
                       help="score on a local Dask cluster of N worker processes (default: this process alone)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="score on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (its workers must "
                            "reach the image files and have minigan installed)")


def add_detect_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``detect fit``, ``detect predict`` and ``detect evaluate``."""
    parser = subparsers.add_parser(
        "detect",
        help="train, run or evaluate a detector of GAN-generated images",
        description="Detect GAN-generated images with Benford features (ICPR 2020) or a pixel network.",
    )
    actions = parser.add_subparsers(dest="detect_action", metavar="{fit,predict,evaluate}")
    actions.required = True

    fit = actions.add_parser(
        "fit", help="train a detector on folders of real and generated images",
        description="Train a detector on real and GAN-generated image files (folders are searched recursively) "
                    "and save it to one .npz file. The Benford detector (the default) works on images of any "
                    "size and colour and learns from the first-digit statistics of their JPEG-style DCT "
                    "coefficients; the pixel detector learns from the pixels of images of one size. Unreadable "
                    "files are skipped and counted.",
    )
    fit.add_argument("--real", nargs="+", required=True, metavar="PATH", help="real image files or folders")
    fit.add_argument("--fake", nargs="+", required=True, metavar="PATH", help="GAN-generated image files or folders")
    fit.add_argument("--kind", choices=("benford", "pixel"), default="benford", help="features (default: benford)")
    fit.add_argument("--out", required=True, metavar="MODEL.npz", help="where to save the model")
    fit.add_argument("--epochs", type=_positive_int, default=None,
                     help="training epochs (default: 100 for benford, 20 for pixel)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    fit.add_argument("--rgb", action="store_true",
                     help="pixel detector: keep colour (default: grey, ITU-R 601-2 luma)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bars")
    fit.set_defaults(func=run_detect_fit)

    predict = actions.add_parser(
        "predict", help="score image files or folders with a saved detector",
        description="Score image files (folders are searched recursively) with a model saved by 'detect fit'. "
                    "Files are read and scored in chunks, in bounded memory whatever their number and size. "
                    "Without --csv every scored file is printed as it comes; with --csv rows are appended to "
                    "the file as they are scored (columns file, p_fake, verdict, status; a file that cannot be "
                    "scored gets its reason in status) and the terminal shows a progress bar and a summary. "
                    "Ctrl-C or SIGTERM stops with every scored row kept; --resume continues.",
    )
    predict.add_argument("--model", required=True, metavar="MODEL.npz", help="a model saved by 'detect fit'")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    predict.add_argument("--csv", metavar="OUT.csv", help="append file,p_fake,verdict,status rows to this CSV")
    predict.add_argument("--resume", action="store_true",
                         help="continue the scan in --csv: skip the files it already holds")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    predict.add_argument("--threshold", type=_threshold, default=0.5,
                         help="p(fake) from which to say 'fake', between 0 and 1 (default: 0.5)")
    predict.add_argument("--chunk-files", type=_positive_int, default=None, metavar="N",
                         help="files per chunk, the unit of work of a Dask worker (default: 512)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_cluster_options(predict)
    predict.set_defaults(func=run_detect_predict)

    evaluate = actions.add_parser(
        "evaluate", help="measure a saved detector on labelled real and generated images",
        description="Score real and GAN-generated image files with a saved detector and print its accuracy at "
                    "--threshold, the ROC AUC and the true-positive rate at 1% false positives; write the ROC "
                    "curve as a PNG.",
    )
    evaluate.add_argument("--model", required=True, metavar="MODEL.npz", help="a model saved by 'detect fit'")
    evaluate.add_argument("--real", nargs="+", required=True, metavar="PATH", help="real image files or folders")
    evaluate.add_argument("--fake", nargs="+", required=True, metavar="PATH",
                          help="GAN-generated image files or folders")
    evaluate.add_argument("--roc", default="roc.png", metavar="OUT.png", help="ROC plot (default: roc.png)")
    evaluate.add_argument("--threshold", type=_threshold, default=0.5,
                          help="p(fake) from which to say 'fake', for the accuracy (default: 0.5)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_cluster_options(evaluate)
    evaluate.set_defaults(func=run_detect_evaluate)
    return parser


# -- reading training images --------------------------------------------------------


def _skipped_summary(skipped: Sequence[tuple[str, str]], what: str = "file(s)") -> str:
    """One line: how many files were skipped, by reason, with a few examples."""
    reasons = Counter(status.split(":", 1)[0] for _, status in skipped)
    kinds = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    examples = "; ".join(f"{f} ({status})" for f, status in skipped[:_EXAMPLES])
    more = f"; and {len(skipped) - _EXAMPLES} more" if len(skipped) > _EXAMPLES else ""
    return f"skipped {len(skipped)} {what} ({kinds}): {examples}{more}"


def _read_training_images(files: Sequence[str], color: str, min_side: int, progress: bool, desc: str
                          ) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Readable images of at least ``min_side`` pixels a side, and the (file, reason) of the others."""
    from tqdm import tqdm

    from ..datasets.images import ImageReadError, read_image

    images, skipped = [], []
    for f in tqdm(files, desc=f"reading {desc}", unit="file", disable=not progress, file=sys.stderr, leave=False):
        try:
            image = read_image(f, color)
        except FileNotFoundError:
            skipped.append((f, "missing: no such file"))
            continue
        except (ImageReadError, OSError, ValueError) as exc:
            skipped.append((f, f"unreadable: {exc}"))
            continue
        if min(image.shape[:2]) < min_side:
            skipped.append((f, f"too small: {image.shape[0]}x{image.shape[1]}, needs at least {min_side}x{min_side}"))
            continue
        images.append(image)
    return images, skipped


def run_detect_fit(args: argparse.Namespace) -> int:
    """Run ``detect fit``; exit code."""
    from tqdm import tqdm

    from .detector import BenfordDetector, PixelDetector
    from .scan import iter_image_files

    real_files = list(iter_image_files(args.real))
    fake_files = list(iter_image_files(args.fake))
    progress = not args.no_progress and len(real_files) + len(fake_files) >= _PROGRESS_MIN_FILES
    if args.kind == "benford":
        color, min_side = "auto", 8
    else:
        color, min_side = ("rgb" if args.rgb else "grey"), 1
    real, skipped_real = _read_training_images(real_files, color, min_side, progress, "real images")
    fake, skipped_fake = _read_training_images(fake_files, color, min_side, progress, "fake images")
    skipped = skipped_real + skipped_fake
    if skipped:
        print(f"note: {_skipped_summary(skipped)}", file=sys.stderr)
    if not real or not fake:
        print(f"error: need readable real and fake images, got {len(real)} real and {len(fake)} fake", file=sys.stderr)
        return 1
    if args.kind == "pixel" and len({image.shape for image in real + fake}) > 1:
        shapes = Counter(image.shape for image in real + fake).most_common(3)
        print(f"error: the pixel detector needs images of one size; these have several, such as "
              f"{', '.join(str(s) for s, _ in shapes)}: use --kind benford, or resize them", file=sys.stderr)
        return 1
    options: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    detector = (BenfordDetector if args.kind == "benford" else PixelDetector)(**options)
    images = real + fake
    labels = np.r_[np.zeros(len(real), dtype=np.int64), np.ones(len(fake), dtype=np.int64)]
    epochs = detector.epochs
    if args.kind == "benford":
        copies = " and their JPEG re-saved copies" if detector.jpeg_augment is not None else ""
        print(f"computing the Benford features of {len(images)} images{copies}...", file=sys.stderr, flush=True)
    bar = tqdm(total=epochs, desc="training", unit="epoch", disable=args.no_progress, file=sys.stderr, leave=False)

    def on_epoch(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        detector.fit(images, labels, progress=on_epoch)
        detector.save(args.out)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(f"trained a {args.kind} detector on {len(real)} real and {len(fake)} fake images "
          f"({epochs} epochs, final training loss {detector.loss_history_[-1]:.4f}); saved to {args.out}")
    return 0


# -- scanning ------------------------------------------------------------------------


class _StopRequest:
    """SIGINT and SIGTERM set a flag that the scan checks between chunks (the chunk being written
    is finished first); a second signal stops at once. Restores the previous handlers on exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print("\nstopping after the current chunk (again to stop at once)...", file=sys.stderr, flush=True)

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _dask_client(args: argparse.Namespace) -> Any:
    """A Dask client for --workers or --scheduler, or None; raises RuntimeError when Dask is missing."""
    if args.workers is None and args.scheduler is None:
        return None
    try:
        import logging

        from distributed import Client
    except ImportError:
        raise RuntimeError('--workers and --scheduler need Dask, an optional extra: pip install "minigan[dask]"') \
            from None
    if args.scheduler is not None:
        try:
            return Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
    from .scan import start_local_cluster

    # CRITICAL: the scan reports what failed itself; at shutdown a worker's heartbeat can race the closing
    # scheduler, and distributed logs that at ERROR with a traceback although nothing went wrong
    cluster, client = start_local_cluster(args.workers, logging.CRITICAL)
    client._minigan_cluster = cluster  # closed with the client (_close_client)
    return client


def _close_client(client: Any) -> None:
    if client is None:
        return
    cluster = getattr(client, "_minigan_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _load_model(path: str) -> Any:
    from .detector import load_detector

    return load_detector(path)


class _Tally:
    """Counts for the summary of a scan."""

    def __init__(self) -> None:
        self.scored = 0
        self.fake = 0
        self.skipped: list[tuple[str, str]] = []
        self.n_skipped = 0
        self.far: list[tuple[str, str]] = []
        self.n_far = 0

    def add(self, rows: Sequence[Any]) -> None:
        for row in rows:
            if row.scored:
                self.scored += 1
                self.fake += row.verdict == "fake"
                if row.note:
                    self.n_far += 1
                    if len(self.far) < _EXAMPLES:
                        self.far.append((row.file, row.note))
            else:
                self.n_skipped += 1
                self.skipped.append((row.file, row.status))

    def lines(self) -> list[str]:
        out = [f"{self.scored} image(s) scored: {self.fake} fake, {self.scored - self.fake} real"
               + (f"; {self.n_skipped} not scored" if self.n_skipped else "")]
        if self.n_skipped:
            out.append(f"note: {_skipped_summary(self.skipped)}")
        if self.n_far:
            examples = "; ".join(f"{f}: {note}" for f, note in self.far)
            out.append(f"note: {self.n_far} scored image(s) are far from what the detector was trained on, so "
                       f"their scores are not reliable (e.g. {examples})")
        return out


def run_detect_predict(args: argparse.Namespace) -> int:
    """Run ``detect predict``: stream rows to the terminal or to --csv; exit code."""
    from tqdm import tqdm

    from .scan import DEFAULT_CHUNK_FILES, CsvLog, iter_image_files, scan

    if (args.resume or args.overwrite) and not args.csv:
        print("error: --resume and --overwrite apply to a --csv file", file=sys.stderr)
        return 2
    if args.resume and args.overwrite:
        print("error: choose --resume or --overwrite, not both", file=sys.stderr)
        return 2
    try:
        detector = _load_model(args.model)
        log = CsvLog(args.csv, resume=args.resume, overwrite=args.overwrite) if args.csv else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tally = _Tally()
    client = None
    stop = _StopRequest()
    try:
        with stop:
            client = _dask_client(args)
            done = log.done if log is not None else set()
            if log is not None and done:
                print(f"resuming {args.csv}: {len(done)} file(s) already there are skipped", file=sys.stderr)
            progress = log is not None and not args.no_progress
            total = sum(1 for f in iter_image_files(args.paths) if f not in done) if progress else 0
            bar = tqdm(total=total, initial=0, desc="scoring", unit="file", disable=not progress or not total,
                       file=sys.stderr, smoothing=0.1)
            if log is None:
                print(f"{'p(fake)':>8}  verdict  file", flush=True)
            rows_iter = scan(args.paths, detector, threshold=args.threshold,
                             skip=(done.__contains__) if done else None,
                             chunk_files=args.chunk_files or DEFAULT_CHUNK_FILES, client=client)
            try:
                for rows in rows_iter:
                    if log is not None:
                        log.write(rows)
                        bar.update(len(rows))
                    else:
                        lines = [f"{r.p_fake:>8.4f}  {r.verdict:<7}  {r.file}" for r in rows if r.scored]
                        if lines:  # into a closed pipe (| head): BrokenPipeError, which minigan.cli ends quietly
                            print("\n".join(lines), flush=True)
                    tally.add(rows)
                    if stop.signal is not None:
                        break
            finally:
                close = getattr(rows_iter, "close", None)
                if close is not None:
                    close()
                bar.close()
    except KeyboardInterrupt:
        stop.signal = stop.signal or signal.SIGINT
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if log is not None:
            log.close()
        _close_client(client)
    for line in tally.lines():
        print(line, file=sys.stderr if line.startswith("note:") else sys.stdout)
    if log is not None:
        print(f"rows in {args.csv}" + (" (with the files of the earlier run)" if args.resume and log.done else ""))
    if stop.signal is not None:
        where = "; run the same command with --resume to continue" if log is not None else ""
        print(f"interrupted: every scored row is kept{where}", file=sys.stderr)
        return 130 if stop.signal == signal.SIGINT else 143
    if tally.scored == 0 and not (log is not None and log.done):
        print("error: no readable image to score", file=sys.stderr)
        return 1
    return 0


def run_detect_evaluate(args: argparse.Namespace) -> int:
    """Run ``detect evaluate``: accuracy, ROC AUC, TPR at 1% FPR and the ROC plot; exit code."""
    from tqdm import tqdm

    from .evaluation import accuracy, roc_auc, tpr_at_fpr
    from .scan import count_image_files, scan

    try:
        detector = _load_model(args.model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    client = None
    tally = _Tally()
    scores: dict[int, list[float]] = {0: [], 1: []}
    try:
        client = _dask_client(args)
        progress = not args.no_progress
        for label, paths in ((0, args.real), (1, args.fake)):
            total = count_image_files(paths) if progress else 0
            name = "real" if label == 0 else "fake"
            with tqdm(total=total, desc=f"scoring {name}", unit="file", disable=not total or not progress,
                      file=sys.stderr, leave=False) as bar:
                for rows in scan(paths, detector, threshold=args.threshold, client=client):
                    scores[label] += [r.p_fake for r in rows if r.scored]
                    tally.add(rows)
                    bar.update(len(rows))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        _close_client(client)
    for line in tally.lines()[1:]:
        print(line, file=sys.stderr)
    n_real, n_fake = len(scores[0]), len(scores[1])
    if not n_real or not n_fake:
        print(f"error: need scored real and fake images, got {n_real} real and {n_fake} fake", file=sys.stderr)
        return 1
    y = np.r_[np.zeros(n_real, dtype=np.int64), np.ones(n_fake, dtype=np.int64)]
    p = np.array(scores[0] + scores[1])
    predicted = (p >= args.threshold).astype(np.int64)
    print(f"{n_real} real and {n_fake} fake images, model {args.model}")
    print(f"  accuracy at p(fake) >= {args.threshold:g}  {accuracy(y, predicted):.4f}  "
          f"(real called real {np.mean(predicted[y == 0] == 0):.4f}, fake called fake "
          f"{np.mean(predicted[y == 1] == 1):.4f})")
    print(f"  ROC AUC                       {roc_auc(y, p):.4f}")
    print(f"  TPR at 1% FPR                 {tpr_at_fpr(y, p, 0.01):.4f}")
    from .plots import plot_roc

    try:
        path = plot_roc(y, {Path(args.model).name: p}, args.roc, title=f"{n_real} real vs {n_fake} fake images")
    except OSError as exc:
        print(f"error: cannot write {args.roc}: {exc}", file=sys.stderr)
        return 1
    print(f"ROC curve written to {path}")
    return 0
