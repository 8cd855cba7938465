"""The ``benford`` and ``detect`` sub-commands (wired into ``minigan/cli.py``).

Each ``add_*_command(subparsers)`` registers its parser and sets ``func`` to a
function taking the parsed namespace and returning an exit code: 0 on success,
1 when the work failed (a message on stderr says why). The functions here only
read files and print; the statistics, features and models are the library's.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .io import read_numbers

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_PROGRESS_MIN_FILES = 20
_PREDICT_CHUNK = 64


# ---------------------------------------------------------------------------
# benford FILE


def add_benford_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``benford FILE [--column] [--test] [--base] [--plot]``."""
    parser = subparsers.add_parser(
        "benford",
        help="test numbers in a file against Benford's law",
        description="Compare the leading digits of the numbers in FILE (.csv, .npy or plain text) with "
        "Benford's law: table, chi-square, KS, MAD and Nigrini's conformity label.",
    )
    parser.add_argument("file", metavar="FILE", help="a .csv/.tsv (with or without header), .npy or text file")
    parser.add_argument("--column", metavar="NAME|INDEX", help="CSV column by header name or 0-based index")
    parser.add_argument("--test", choices=("first", "second", "first_two"), default="first", help="digit test")
    parser.add_argument("--base", type=int, default=10, help="base of the digits (>= 3; default 10)")
    parser.add_argument("--plot", metavar="OUT.png", help="also save the Benford chart")
    parser.set_defaults(func=run_benford)
    return parser


def run_benford(args: argparse.Namespace) -> int:
    """Run ``benford``: print the test's table and statistics; exit code."""
    from .digits import benford_test

    try:
        numbers, skipped = read_numbers(args.file, args.column)
        result = benford_test(numbers, test=args.test, base=args.base)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
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


# ---------------------------------------------------------------------------
# detect fit / detect predict


def image_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named, plus image files (by suffix) anywhere under folders named, sorted per folder."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    return files


def read_image(path: Path, mode: str = "L") -> np.ndarray:
    """One image file as uint8, (h, w) for mode "L" (PIL's luma) or (h, w, 3) for "RGB".

    Raises
    ------
    ValueError
        The file is missing, not an image, or corrupt.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert(mode), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def _read_images(files: Sequence[Path], mode: str, min_size: int, progress: bool, desc: str):
    """Readable images and their files; unreadable or too small ones reported on stderr."""
    from tqdm import tqdm

    images, kept = [], []
    for f in tqdm(files, desc=desc, unit="file", disable=not progress, file=sys.stderr):
        try:
            img = read_image(f, mode)
        except ValueError as exc:
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        if min(img.shape[:2]) < min_size:
            size = f"{img.shape[0]}x{img.shape[1]}"
            tqdm.write(f"skipped: {f} is {size}, smaller than {min_size}x{min_size}", file=sys.stderr)
            continue
        images.append(img)
        kept.append(f)
    return images, kept


def add_detect_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``detect fit`` and ``detect predict``."""
    parser = subparsers.add_parser(
        "detect",
        help="train or run a detector of GAN-generated images",
        description="Detect GAN-generated images with Benford features (ICPR 2020) or a pixel network.",
    )
    actions = parser.add_subparsers(dest="detect_action", metavar="{fit,predict}")
    actions.required = True

    fit = actions.add_parser("fit", help="train a detector on folders of real and generated images")
    fit.add_argument("--real", nargs="+", required=True, metavar="PATH", help="real image files or folders")
    fit.add_argument("--fake", nargs="+", required=True, metavar="PATH", help="GAN-generated image files or folders")
    fit.add_argument("--kind", choices=("benford", "pixel"), default="benford", help="features (default benford)")
    fit.add_argument("--out", required=True, metavar="MODEL.npz", help="where to save the model")
    fit.add_argument("--epochs", type=int, default=None, help="training epochs (default: the detector's)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--rgb", action="store_true", help="pixel detector: keep colour (default: grey, PIL 'L')")
    fit.set_defaults(func=run_detect_fit)

    predict = actions.add_parser("predict", help="score image files or folders with a saved detector")
    predict.add_argument("--model", required=True, metavar="MODEL.npz", help="a model saved by 'detect fit'")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    predict.add_argument("--csv", metavar="OUT.csv", help="also write file,probability,verdict to a CSV")
    predict.add_argument("--threshold", type=float, default=0.5, help="p(fake) from which to say 'fake'")
    predict.set_defaults(func=run_detect_predict)
    return parser


def run_detect_fit(args: argparse.Namespace) -> int:
    """Run ``detect fit``; exit code."""
    from .detector import BenfordDetector, PixelDetector

    mode = "RGB" if args.rgb and args.kind == "pixel" else "L"
    real_files, fake_files = image_files(args.real), image_files(args.fake)
    n_files = len(real_files) + len(fake_files)
    progress = n_files >= _PROGRESS_MIN_FILES
    min_size = 8 if args.kind == "benford" else 1
    real, _ = _read_images(real_files, mode, min_size, progress, "real")
    fake, _ = _read_images(fake_files, mode, min_size, progress, "fake")
    if not real or not fake:
        print(f"error: need readable real and fake images, got {len(real)} real and {len(fake)} fake", file=sys.stderr)
        return 1
    options: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    try:
        detector = (BenfordDetector if args.kind == "benford" else PixelDetector)(**options)
        images = real + fake
        labels = np.r_[np.zeros(len(real), dtype=np.int64), np.ones(len(fake), dtype=np.int64)]
        detector.fit(images, labels)
        detector.save(args.out)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"trained a {args.kind} detector on {len(real)} real and {len(fake)} fake images "
          f"(final training loss {detector.loss_history_[-1]:.4f}); saved to {args.out}")
    return 0


def run_detect_predict(args: argparse.Namespace) -> int:
    """Run ``detect predict``: a table of file, p(fake), verdict; exit code."""
    from tqdm import tqdm

    from ..serialization import atomic_write_text
    from .detector import PixelDetector, load_detector

    try:
        detector = load_detector(args.model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    pixel = isinstance(detector, PixelDetector)
    mode = "RGB" if pixel and len(detector.image_shape_ or ()) == 3 else "L"
    files = image_files(args.paths)
    progress = len(files) >= _PROGRESS_MIN_FILES
    rows: list[tuple[str, float]] = []
    bar = tqdm(total=len(files), desc="predict", unit="file", disable=not progress, file=sys.stderr)
    for start in range(0, len(files), _PREDICT_CHUNK):
        chunk = files[start : start + _PREDICT_CHUNK]
        images, kept = _read_images(chunk, mode, 1 if pixel else 8, False, "")
        if pixel:
            fits = [img.shape == detector.image_shape_ for img in images]
            for f, ok, img in zip(kept, fits, images):
                if not ok:
                    expected = detector.image_shape_
                    bar.write(f"skipped: {f} is {img.shape}, the model expects {expected}", file=sys.stderr)
            images = [img for img, ok in zip(images, fits) if ok]
            kept = [f for f, ok in zip(kept, fits) if ok]
        if images:
            p_fake = detector.predict_proba(images)[:, 1]
            rows += [(str(f), float(p)) for f, p in zip(kept, p_fake)]
        bar.update(len(chunk))
    bar.close()
    if not rows:
        print("error: no readable image to score", file=sys.stderr)
        return 1
    width = max(len("file"), *(len(f) for f, _ in rows))
    lines = [f"{'file':<{width}}  {'p(fake)':>8}  verdict"]
    lines += [f"{f:<{width}}  {p:>8.4f}  {'fake' if p >= args.threshold else 'real'}" for f, p in rows]
    print("\n".join(lines))
    skipped = len(files) - len(rows)
    n_fake = sum(p >= args.threshold for _, p in rows)
    summary = f"{len(rows)} image(s) scored: {n_fake} fake, {len(rows) - n_fake} real"
    print(summary + (f"; {skipped} skipped" if skipped else ""))
    if args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "probability", "verdict"])
        writer.writerows([f, f"{p:.6f}", "fake" if p >= args.threshold else "real"] for f, p in rows)
        atomic_write_text(args.csv, buffer.getvalue())
    return 0
