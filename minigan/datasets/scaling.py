"""Pixels to the generator's tanh range and back: the one pair of scaling functions.

The reference GAN (Keras-GAN's ``gan/gan.py``) trains on ``x / 127.5 - 1`` so that real
images share the range of the generator's tanh output. The inverse maps 0 to
-1 and 255 to 1 exactly, so ``from_tanh_range(to_tanh_range(x)) == x`` for
every uint8 image.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_dtype, check_float_array, describe


def to_tanh_range(images: np.ndarray, *, dtype: Any = np.float32) -> np.ndarray:
    """Scale uint8 pixels to floats in [-1, 1] as ``images / 127.5 - 1``.

    Parameters
    ----------
    images : ndarray of uint8, any shape, e.g. (n, h, w) or (n, h, w, 3)
        Pixel values 0..255.
    dtype : float32 or float64
        Output dtype.

    Returns
    -------
    ndarray, same shape as ``images``, dtype ``dtype``
        0 becomes -1.0 and 255 becomes 1.0.
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a NumPy array of uint8 pixels, got {describe(images)}")
    if images.dtype != np.uint8:
        raise TypeError(
            f"images must have dtype uint8 (pixel values 0..255), got {images.dtype}; "
            "if they already are floats in [-1, 1] they need no scaling"
        )
    dtype = check_dtype(dtype)
    return images.astype(dtype) / dtype.type(127.5) - dtype.type(1.0)


def from_tanh_range(x: np.ndarray) -> np.ndarray:
    """Map floats in [-1, 1] back to uint8 pixels: ``round((x + 1) * 127.5)``, clipped to 0..255.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape, e.g. (n, h, w)
        Generator output or scaled images. Values outside [-1, 1] are clipped.

    Returns
    -------
    ndarray of uint8, same shape as ``x``
    """
    x = check_float_array(x, "x", allow_empty=True)
    pixels = np.rint((x.astype(np.float64) + 1.0) * 127.5)
    return np.clip(pixels, 0, 255).astype(np.uint8)
