"""GAN checkpoints: one ``.npz`` of arrays plus JSON metadata, written atomically.

A checkpoint holds G and D (parameters and BatchNorm statistics), both
optimizers' states, every random stream's state, the data order and the
iteration -- all that :meth:`minigan.GAN.fit` needs to continue bit-identically.
No pickle: see :mod:`minigan.serialization`.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .serialization import FileFormatError, load_npz, save_npz

KIND = "gan-checkpoint"
FILENAME = "checkpoint.npz"


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself if it names a file, else ``path/checkpoint.npz`` (a run directory)."""
    path = Path(path)
    return path / FILENAME if path.is_dir() or not path.suffix else path


def versions() -> dict[str, str]:
    """Versions of Python, NumPy, Numba and minigan, for the record."""
    from . import __version__

    found = {"minigan": __version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import numba

        found["numba"] = numba.__version__
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return found


def save_checkpoint(path: str | os.PathLike, gan: Any, *, arrays: dict[str, np.ndarray] | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write ``gan``'s full training state (plus extra ``arrays``/``meta``) to ``path`` atomically."""
    path = checkpoint_path(path)
    state_arrays, state_meta = gan.state()
    state_arrays.update(arrays or {})
    state_meta.update(meta or {})
    state_meta["versions"] = versions()
    save_npz(path, state_arrays, state_meta, kind=KIND, compress=False)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint (a file or a run directory); clear errors for missing, corrupt or foreign files."""
    path = checkpoint_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first, or point --checkpoint at a run directory")
    arrays, meta = load_npz(path, kind=KIND)
    for key in ("iteration", "latent_dim", "image_shape", "loss", "dtype", "rng", "layer_rngs"):
        if key not in meta:
            raise FileFormatError(f"{path} is not a complete minigan checkpoint: metadata {key!r} is missing")
    return arrays, meta
