"""Input validation in one place.

Every public entry point of minigan checks its arguments with these helpers, so
that a user's mistake ends in a ``ValueError`` or ``TypeError`` that names the
argument, says what was expected and what was given -- never in a Numba typing
error deep inside a kernel.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Return ``dtype`` as a NumPy float dtype, accepting only float32 and float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {describe(dtype)}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {resolved}")
    return resolved


def check_float_array(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: np.dtype | None = None,
    finite: bool = True,
    allow_empty: bool = False,
) -> np.ndarray:
    """Validate a floating-point array argument and return it C-contiguous.

    Parameters
    ----------
    x : array-like
        The user's input. Integer, boolean, complex and object arrays are rejected
        (they would silently change the math or reach a kernel with the wrong type).
    name : str
        The argument's name, used in the error message.
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions.
    dtype : numpy dtype, optional
        When given, the array must have exactly this dtype (float32 or float64).
        When omitted, float32 and float64 are both accepted.
    finite : bool
        Reject NaN and inf.
    allow_empty : bool
        Accept arrays with zero elements.
    """
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)):
            try:
                x = np.asarray(x)
            except ValueError:
                raise ValueError(f"{name} must be a rectangular array, got a ragged sequence") from None
        else:
            raise TypeError(f"{name} must be a NumPy array, got {describe(x)}")
        if x.dtype.kind in "iu":
            x = x.astype(dtype if dtype is not None else np.float64)
    if x.dtype.kind != "f" or x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {x.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float32)"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{name} must have dtype {np.dtype(dtype)} to match the layer, got {x.dtype}; "
            f"convert it with .astype(np.{np.dtype(dtype).name})"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {x.shape}")
    if not allow_empty and x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if finite and x.size and not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or inf value(s)")
    return np.ascontiguousarray(x)


def check_shape(x: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Require ``x.shape == shape`` (``-1`` in ``shape`` matches any size)."""
    ok = x.ndim == len(shape) and all(s == -1 or s == d for s, d in zip(shape, x.shape))
    if not ok:
        want = "(" + ", ".join("any" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {x.shape}")


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Validate an integer argument (bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Validate a finite real-number hyperparameter within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (value == minimum and not min_inclusive)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not max_inclusive)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {op} {maximum}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Validate a string option against its allowed values."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {describe(value)}")
    return value


def check_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """Accept a ``numpy.random.Generator``, an integer seed or None (fresh entropy)."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator, an integer seed or None, got {describe(rng)}")
