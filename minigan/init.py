"""Weight initializers (the Keras definitions).

For a weight matrix of shape (fan_in, fan_out):

* ``glorot_uniform``: U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))`` (the Keras default)
* ``glorot_normal``: truncated normal, std ``sqrt(2 / (fan_in + fan_out)) / .87962566``
* ``he_uniform``: U(-l, l) with ``l = sqrt(6 / fan_in)``
* ``he_normal``: truncated normal, std ``sqrt(2 / fan_in) / .87962566``
* ``zeros``

The truncated normals cut at two standard deviations and are rescaled by the
std of a unit normal truncated to [-2, 2] (0.87962566), as Keras does, so the
final variance is the nominal one.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ._validation import check_choice

_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def _uniform(limit: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-limit, limit, size=shape)


def _truncated_normal(std: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    scale = std / _TRUNCATED_STD
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():  # resample the tails; expected ~5% of entries, a few rounds
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return values * scale


def glorot_uniform(shape, rng):
    return _uniform(np.sqrt(6.0 / (shape[0] + shape[1])), shape, rng)


def glorot_normal(shape, rng):
    return _truncated_normal(np.sqrt(2.0 / (shape[0] + shape[1])), shape, rng)


def he_uniform(shape, rng):
    return _uniform(np.sqrt(6.0 / shape[0]), shape, rng)


def he_normal(shape, rng):
    return _truncated_normal(np.sqrt(2.0 / shape[0]), shape, rng)


def zeros(shape, rng):
    return np.zeros(shape)


INITIALIZERS: dict[str, Callable[[tuple[int, int], np.random.Generator], np.ndarray]] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "zeros": zeros,
}


def initialize(name: str, shape: tuple[int, int], rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Draw a (fan_in, fan_out) weight matrix with initializer ``name``, in float64, cast to ``dtype``.

    Drawing in float64 first makes float32 and float64 layers built from the same
    seed hold the same weights up to rounding.
    """
    check_choice(name, "init", INITIALIZERS)
    return np.ascontiguousarray(INITIALIZERS[name](shape, rng), dtype=dtype)
