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


def load_gan(path: str | os.PathLike, *, models_only: bool = False) -> Any:
    """Rebuild the GAN of a run (directory or checkpoint file) with its trained state.

    ``models_only=True`` loads the two networks alone (all that sampling needs).

    The models are rebuilt from the settings the run recorded (``meta["config"]``,
    written by ``minigan train`` and by :meth:`GAN.fit` with ``config=``), then every
    array is loaded and checked.
    """
    from .models import build_gan

    arrays, meta = load_checkpoint(path)
    config = meta.get("config")
    if not isinstance(config, dict) or "architecture" not in config:
        raise FileFormatError(
            f"{checkpoint_path(path)} does not record how its models were built (it was trained from the "
            "library with custom models); rebuild them yourself and call GAN.load_state(*load_checkpoint(path))"
        )
    gan = build_gan(config)
    gan.load_state(arrays, meta, source=str(checkpoint_path(path)), models_only=models_only)
    return gan
