"""Class labels: their checks, their names, and labels spread evenly over the classes.

A conditional GAN's condition is one integer label per image, ``0 .. num_classes - 1``.
Every public entry point that takes labels checks them here, before any kernel reads a
table row by them: integers (not floats, booleans or strings), one per image, within
range, and -- for training data -- every class with at least one image.

Class names are strings, one per class, in label order: label ``k`` is
``class_names[k]``. Data without names of its own (the digits, an ``.npz`` of labels)
name each class by its number (``"0"``, ``"1"``, ...); a folder of class sub-folders
names them by the sub-folders, sorted (:mod:`minigan.datasets.labelled`). A label given
as text (``minigan sample --label 7``) is looked up among the names first and read as
a number only when no name matches.

Plain NumPy: importing this module compiles nothing.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validation import check_int, describe


def check_labels(labels: Any, n: int | None = None, num_classes: int | None = None, *, name: str = "labels",
                 every_class: bool = False) -> np.ndarray:
    """``labels`` checked and returned as a C-contiguous int64 array of shape (n,).

    Parameters
    ----------
    labels : array-like of int, shape (n,)
    n : int, optional
        The number of images the labels go with.
    num_classes : int, optional
        Labels must lie in ``0 .. num_classes - 1`` (without it: ``>= 0``).
    name : str
        The argument's name in error messages.
    every_class : bool
        Also require at least one label of every class ``0 .. num_classes - 1``
        (training data: a class with no images cannot be learned).

    Raises
    ------
    TypeError
        Not integers (floats, booleans, strings, objects).
    ValueError
        The wrong shape or count, a label out of range, or a class with no labels.
    """
    if isinstance(labels, (list, tuple)):
        try:
            labels = np.asarray(labels)
        except ValueError:
            raise ValueError(f"{name} must be a flat sequence of integers, got a ragged sequence") from None
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be an array of integer class labels, got {describe(labels)}")
    if labels.dtype.kind not in "iu":
        hint = ""
        if labels.dtype.kind == "f":
            hint = "; convert whole-number floats with labels.astype(int)"
        elif labels.dtype.kind in "USO":
            hint = "; map class names to integers 0 .. num_classes - 1 first"
        raise TypeError(f"{name} must be integers (class indices), got {describe(labels)}{hint}")
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one label per image, a 1-D array, got shape {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} must have one entry per image ({n}), got {labels.shape[0]}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise ValueError(f"{name} must be class indices >= 0, got {low}")
        if num_classes is not None and high >= num_classes:
            raise ValueError(f"{name} must lie in 0 .. {num_classes - 1} ({num_classes} classes), got {high}")
    if every_class and num_classes is not None:
        counts = np.bincount(labels, minlength=num_classes)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            listed = ", ".join(str(int(c)) for c in empty[:8]) + (" ..." if empty.size > 8 else "")
            raise ValueError(f"{name}: {empty.size} of the {num_classes} classes have no images (class "
                             f"{listed}); a conditional GAN cannot learn a class it never sees: drop it and "
                             "renumber the labels 0 .. K-1")
    return np.ascontiguousarray(labels, dtype=np.int64)


def even_labels(n: int, num_classes: int) -> np.ndarray:
    """``n`` labels covering ``num_classes`` classes evenly in blocks: 0, 0, ..., 1, 1, ...
    (block sizes differ by at most one), int64 (n,)."""
    n = check_int(n, "n", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    return (np.arange(n, dtype=np.int64) * num_classes) // n


def default_class_names(num_classes: int) -> list[str]:
    """``["0", "1", ..., str(num_classes - 1)]``: classes named by their number."""
    return [str(k) for k in range(check_int(num_classes, "num_classes", minimum=1))]


def check_class_names(names: Any, num_classes: int | None = None, *, name: str = "class_names") -> list[str]:
    """``names`` as a list of distinct non-empty strings (``num_classes`` of them, if given)."""
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise TypeError(f"{name} must be a list of strings, one per class, got {describe(names)}")
    names = list(names)
    for i, value in enumerate(names):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name}[{i}] must be a non-empty string, got {describe(value)}")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = next(v for v in names if v in seen or seen.add(v))  # type: ignore[func-returns-value]
        raise ValueError(f"{name} must be distinct, but {twice!r} appears more than once")
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"{name} must name each of the {num_classes} classes, got {len(names)} names")
    return names


def label_from_text(text: str, class_names: Sequence[str]) -> int:
    """The label a user means by ``text``: the class of that name, else the class of that
    number. Where the names are the numbers (``"0" .. "9"``) both agree; where some name
    is a number but not its own (sub-folders ``1``, ``2``, ``3`` are classes 0, 1, 2), a
    number that is not a name is refused as ambiguous.

    Raises
    ------
    ValueError
        Neither a class name nor a class number, naming the classes there are.
    """
    names = list(class_names)
    if text in names:
        return names.index(text)
    number = _as_int(text)
    if number is not None and 0 <= number < len(names):
        if not any(_as_int(name) is not None for name in names):
            return number
        raise ValueError(f"{text!r} is not a class name of this run, and some of its class names are numbers, "
                         f"so a class number would be ambiguous: give a name; its classes are "
                         f"{describe_classes(names)}")
    raise ValueError(f"{text!r} is not a class of this run; its classes are {describe_classes(names)}")


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def describe_classes(class_names: Sequence[str], limit: int = 12) -> str:
    """``"0 'cat', 1 'dog'"`` -- or ``"0 .. 9"`` when every class is named by its number."""
    names = list(class_names)
    if names == default_class_names(len(names)):
        return f"0 .. {len(names) - 1}" if len(names) > 1 else "0"
    shown = ", ".join(f"{k} {v!r}" for k, v in enumerate(names[:limit]))
    return shown + (f", ... ({len(names)} classes)" if len(names) > limit else "")
