"""Charts of digit tests and detectors: the Benford chart, real vs generated digits, the ROC curve.

Matplotlib is imported inside each function and driven through its object API
with the Agg canvas (no pyplot state, no display); files are written atomically
as PNG.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._validation import describe
from ..serialization import atomic_write_bytes
from .digits import BenfordResult, benford_pmf, digit_support
from .evaluation import roc_auc, roc_curve


def _new_figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _label_axis(axes: Any, digits: np.ndarray) -> None:
    if digits.size <= 20:
        axes.set_xticks(digits)
    axes.set_xlim(digits[0] - 0.7, digits[-1] + 0.7)
    axes.grid(axis="y", alpha=0.3)


def plot_benford(result: BenfordResult, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """The Benford chart: observed proportions as bars, Benford's law as a curve.

    Parameters
    ----------
    result : BenfordResult
        From :func:`~minigan.benford.benford_test`.
    path : path-like
        Destination ``.png``.
    title : str, optional
        Default: the test, base, n, MAD and conformity.

    Returns
    -------
    pathlib.Path
    """
    if not isinstance(result, BenfordResult):
        raise TypeError(f"result must be a BenfordResult (from benford_test), got {describe(result)}")
    figure = _new_figure((8, 4.5))
    axes = figure.subplots()
    axes.bar(result.digits, result.observed, color="tab:blue", alpha=0.75, label=f"observed (n = {result.n})")
    axes.plot(result.digits, result.expected, color="tab:red", marker="o", markersize=3, linewidth=1.6,
              label="Benford's law")
    _label_axis(axes, result.digits)
    axes.set_xlabel(f"{result.test.replace('_', ' ')} digit (base {result.base})")
    axes.set_ylabel("proportion")
    axes.legend()
    label = result.conformity or "no conformity thresholds for this base"
    axes.set_title(title or f"{result.test.replace('_', ' ')} digit test: MAD = {result.mad:.4f} ({label})")
    return _save(figure, path)


def _as_pmf(value: Any, name: str, size: int | None) -> np.ndarray:
    pmf = value.observed if isinstance(value, BenfordResult) else np.asarray(value, dtype=np.float64)
    if pmf.ndim != 1 or (size is not None and pmf.size != size):
        raise ValueError(f"{name} must be a BenfordResult or a pmf of shape ({size},), got shape {pmf.shape}")
    if not np.isfinite(pmf).all():
        raise ValueError(f"{name} must be finite")
    return pmf


def plot_digit_comparison(
    real: Any,
    generated: Any,
    path: str | os.PathLike,
    *,
    test: str = "first",
    base: int = 10,
    labels: tuple[str, str] = ("real", "generated"),
    title: str | None = None,
) -> Path:
    """Real and generated digit distributions side by side, with Benford's law.

    Parameters
    ----------
    real, generated : BenfordResult or array of shape (n_bins,)
        Digit proportions (e.g. ``benford_test(quantized_dct(images)[0])``).
    path : path-like
        Destination ``.png``.
    test, base :
        The digit test and base of the proportions (for the axis and the law).
    labels : (str, str)
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    digits = digit_support(test, base)
    p_real = _as_pmf(real, "real", digits.size)
    p_fake = _as_pmf(generated, "generated", digits.size)
    figure = _new_figure((8, 4.5))
    axes = figure.subplots()
    width = 0.4
    axes.bar(digits - width / 2, p_real, width=width, color="tab:blue", alpha=0.8, label=labels[0])
    axes.bar(digits + width / 2, p_fake, width=width, color="tab:orange", alpha=0.8, label=labels[1])
    axes.plot(digits, benford_pmf(test, base), color="tab:red", marker="o", markersize=3, label="Benford's law")
    _label_axis(axes, digits)
    axes.set_xlabel(f"{test.replace('_', ' ')} digit (base {base})")
    axes.set_ylabel("proportion")
    axes.legend()
    axes.set_title(title or f"{test.replace('_', ' ')} digits: {labels[0]} vs {labels[1]}")
    return _save(figure, path)


def plot_roc(
    y_true: Any,
    scores: Any | Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """ROC curve(s) with their AUC in the legend.

    Parameters
    ----------
    y_true : array of 0/1, shape (n,)
        1 = GAN-generated.
    scores : array of shape (n,), or dict of name -> array of shape (n,)
        Detector outputs (higher = more likely fake); a dict draws one curve each.
    path : path-like
        Destination ``.png``.
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    curves = dict(scores) if isinstance(scores, Mapping) else {"detector": scores}
    if not curves:
        raise ValueError("scores must hold at least one curve")
    computed = [(name, roc_curve(y_true, s), roc_auc(y_true, s)) for name, s in curves.items()]
    figure = _new_figure((5.5, 5))
    axes = figure.subplots()
    for name, (fpr, tpr, _), auc in computed:
        axes.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUC = {auc:.4f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_xlabel("false-positive rate (real called fake)")
    axes.set_ylabel("true-positive rate (fake caught)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title or "ROC curve")
    return _save(figure, path)
