"""Scores of a binary detector: accuracy, balanced accuracy, ROC curve and its area.

Label 1 is the positive class (GAN-generated), 0 the negative (real).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_real, describe


def _labels(y: Any, name: str) -> np.ndarray:
    """0/1 labels as an int64 array, shape (n,)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold 0/1 labels, got {describe(arr)}")
    if not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
        raise ValueError(f"{name} must hold only 0 (real) and 1 (fake), got values such as {bad.tolist()}")
    return arr.astype(np.int64)


def _pair(y_true: Any, other: Any, other_name: str, *, scores: bool) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true")
    if scores:
        o = np.asarray(other, dtype=np.float64) if np.asarray(other).dtype.kind in "iufb" else None
        if o is None:
            raise TypeError(f"{other_name} must be numbers, got {describe(other)}")
        if o.ndim != 1:
            raise ValueError(f"{other_name} must be 1-D, got shape {o.shape}")
        if not np.isfinite(o).all():
            raise ValueError(f"{other_name} must be finite, got NaN or inf")
    else:
        o = _labels(other, other_name)
    if o.shape != t.shape:
        raise ValueError(f"y_true and {other_name} must have the same length, got {t.size} and {o.size}")
    return t, o


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct predictions; ``y_true`` and ``y_pred`` are 0/1 arrays of shape (n,)."""
    t, p = _pair(y_true, y_pred, "y_pred", scores=False)
    return float(np.mean(t == p))


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean of the true-positive and true-negative rates, shapes (n,).

    Raises ValueError when ``y_true`` holds one class only (the score is undefined).
    """
    t, p = _pair(y_true, y_pred, "y_pred", scores=False)
    _both_classes(t)
    tpr = np.mean(p[t == 1] == 1)
    tnr = np.mean(p[t == 0] == 0)
    return float((tpr + tnr) / 2.0)


def _both_classes(t: np.ndarray) -> None:
    if t.min() == t.max():
        raise ValueError(f"y_true must hold both classes (0 and 1), got only {int(t[0])}")


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Computed from ranks (Mann-Whitney U); tied scores get their average rank,
    so a tie counts one half.

    Parameters
    ----------
    y_true : array of 0/1, shape (n,)
    scores : array of float, shape (n,)
        Higher means more likely positive (fake).
    """
    t, s = _pair(y_true, scores, "scores", scores=True)
    _both_classes(t)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # average rank of each run of ties (ranks start at 1)
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(avg, ends - starts)
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    u = ranks[t == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve over every distinct score threshold.

    Returns
    -------
    fpr, tpr : ndarray, shape (k + 1,)
        False- and true-positive rates when predicting positive for ``score >= threshold``,
        starting at (0, 0).
    thresholds : ndarray, shape (k + 1,)
        Decreasing; the first is ``inf`` (nothing predicted positive).
    """
    t, s = _pair(y_true, scores, "scores", scores=True)
    _both_classes(t)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tps = np.cumsum(t_sorted)[last_of_run]
    fps = np.cumsum(1 - t_sorted)[last_of_run]
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    thresholds = np.r_[np.inf, s_sorted[last_of_run]]
    return fpr, tpr, thresholds


def tpr_at_fpr(y_true: Any, scores: Any, fpr: float = 0.01) -> float:
    """Highest true-positive rate at a threshold whose false-positive rate is at most ``fpr``.

    Parameters
    ----------
    y_true : array of 0/1, shape (n,)
    scores : array of float, shape (n,)
    fpr : float in [0, 1]
    """
    target = check_real(fpr, "fpr", minimum=0.0, maximum=1.0)
    f, t, _ = roc_curve(y_true, scores)
    return float(t[f <= target + 1e-12].max())
