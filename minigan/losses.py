"""Losses: ``forward(pred, target) -> float`` (the mean) and ``backward() -> dL/dpred``.

Every loss computes its value and its gradient in one kernel sweep during
``forward``; ``backward`` returns the gradient of the *mean* loss with respect to
``pred``, with ``pred``'s shape and dtype.

The advanced interface, used by the GAN objectives (:mod:`minigan.objectives`):
``forward_unchecked(pred, target)`` skips the checks (``target`` an array of
``pred``'s shape and dtype), and ``sum_and_gradient(pred, target, grad, denominator)``
returns the *summed* loss and writes ``d(sum / denominator) / d pred`` into a
caller's array, so that two halves of a batch can fill one gradient.

``target`` is an array of ``pred``'s shape or a scalar (broadcast).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels as K
from ._validation import check_float_array, check_real, describe


class Loss:
    """Base class: validates ``pred`` and ``target`` and keeps the gradient for ``backward``."""

    #: Whether targets must lie in [0, 1] (probabilities) -- else any finite value.
    targets_are_probabilities = True
    #: Whether targets must be labels: 1 (real), 0 or -1 (fake).
    targets_are_labels = False

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def __call__(self, pred: np.ndarray, target: Any) -> float:
        return self.forward(pred, target)

    def _prepare(self, pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
        pred = check_float_array(pred, "pred", ndim=(1, 2))
        if np.isscalar(target) and not isinstance(target, (str, bytes)):
            target = np.full(pred.shape, check_real(target, "target"), dtype=pred.dtype)
            if not np.isfinite(target).all():
                raise ValueError(f"target {target.flat[0]} overflows {pred.dtype}")
        else:
            target = check_float_array(target, "target", ndim=(1, 2))
            if target.shape != pred.shape:
                raise ValueError(f"target must have the shape of pred {pred.shape} (or be a scalar), got {target.shape}")
            target = np.ascontiguousarray(target, dtype=pred.dtype)
        if self.targets_are_probabilities and (target.min() < 0 or target.max() > 1):
            raise ValueError(
                f"target of {type(self).__name__} must lie in [0, 1], got values from {target.min()} to {target.max()}"
            )
        if self.targets_are_labels and not np.isin(target, (-1.0, 0.0, 1.0)).all():
            raise ValueError(f"target of {type(self).__name__} must hold labels 1 (real) and 0 or -1 (fake)")
        return pred, target

    def forward(self, pred: np.ndarray, target: Any) -> float:
        """Mean loss over every entry of ``pred`` (N,) or (N, 1); keeps dL/dpred for :meth:`backward`."""
        pred, target = self._prepare(pred, target)
        return self.forward_unchecked(pred, target)

    def forward_unchecked(self, pred: np.ndarray, target: np.ndarray) -> float:
        """:meth:`forward` without the checks: ``target`` is an array of ``pred``'s shape
        and dtype."""
        grad = np.empty_like(pred)
        total = self.sum_and_gradient(pred, target, grad, pred.size)
        self._grad = grad
        return total / pred.size

    def sum_and_gradient(self, pred: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        """Return the summed loss and write ``d(sum / denominator) / d pred`` into ``grad``
        (one kernel sweep; no checks: ``target`` and ``grad`` have ``pred``'s shape and dtype)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sum_and_gradient")  # pragma: no cover

    def backward(self) -> np.ndarray:
        """dL/dpred of the mean loss, same shape and dtype as ``pred``."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward(): run forward first")
        return self._grad

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits ``z`` (the sigmoid is applied inside), numerically stable.

    ``L = mean( max(z, 0) - z t + log(1 + exp(-|z|)) )`` -- equal to
    ``-mean(t log s + (1 - t) log(1 - s))`` with ``s = sigmoid(z)`` but never overflowing.
    ``dL/dz = (sigmoid(z) - t) / size``.

    Parameters
    ----------
    label_smoothing : float in [0, 1)
        Keras' meaning: targets become ``t (1 - s) + s / 2``. (For the GAN's one-sided
        smoothing, :class:`minigan.GAN` passes ``1 - s`` as the real target instead.)
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", minimum=0.0, maximum=1.0, max_inclusive=False)

    def sum_and_gradient(self, logits: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return K.bce_with_logits(logits, target, float(denominator), grad)

    def __repr__(self) -> str:
        return f"BCEWithLogits(label_smoothing={self.label_smoothing})"


class BCE(Loss):
    """Binary cross-entropy on probabilities, as the article's sigmoid + ``binary_crossentropy``.

    ``p`` is clipped to ``[eps, 1 - eps]`` (Keras' ``epsilon = 1e-7``) so the log is finite;
    ``dL/dp = (-t / p + (1 - t) / (1 - p)) / size`` inside the clip range, 0 outside.
    Prefer :class:`BCEWithLogits`: a confident sigmoid saturates and the clip hides it.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = check_real(eps, "eps", minimum=0.0, maximum=0.5, min_inclusive=False, max_inclusive=False)

    def sum_and_gradient(self, prob: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        if prob.min() < 0 or prob.max() > 1:
            raise ValueError(
                f"pred of BCE must be probabilities in [0, 1], got values from {prob.min()} to {prob.max()}; "
                "for logits use BCEWithLogits"
            )
        return K.bce_on_probabilities(prob, target, self.eps, float(denominator), grad)


class MSE(Loss):
    """Mean squared error ``mean((p - t)^2)``, the least-squares GAN loss; ``dL/dp = 2 (p - t) / size``."""

    targets_are_probabilities = False

    def sum_and_gradient(self, pred: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        return K.squared_error(pred, target, float(denominator), grad)


class Hinge(Loss):
    """Hinge loss ``mean(max(0, 1 - s p))`` with ``s = +1`` for target 1 (real) and ``-1`` for
    target 0 (fake); ``dL/dp = -s / size`` where the margin is violated, else 0."""

    targets_are_probabilities = False
    targets_are_labels = True

    def sum_and_gradient(self, pred: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        return K.hinge(pred, target, float(denominator), grad)


class Wasserstein(Loss):
    """Wasserstein critic loss ``mean(-s p)`` with ``s = +1`` for target 1 (real), ``-1`` for
    target 0 (fake): minimizing it raises scores of real samples; ``dL/dp = -s / size``."""

    targets_are_probabilities = False
    targets_are_labels = True

    def sum_and_gradient(self, pred: np.ndarray, target: np.ndarray, grad: np.ndarray, denominator: float) -> float:
        return K.wasserstein(pred, target, float(denominator), grad)


class SoftmaxCrossEntropy:
    """Softmax cross-entropy over integer class labels, for classifiers.

    ``forward(logits (N, C), labels (N,) ints) -> mean loss``; ``backward() -> (softmax - onehot) / N``.
    ``probs`` holds the softmax of the last forward.
    """

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None
        self.probs: np.ndarray | None = None

    def __call__(self, logits: np.ndarray, labels: Any) -> float:
        return self.forward(logits, labels)

    def forward(self, logits: np.ndarray, labels: Any) -> float:
        logits = check_float_array(logits, "logits", ndim=2)
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices, got {describe(labels)}")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"labels must have shape ({logits.shape[0]},), got {labels.shape}")
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ValueError(f"labels must lie in [0, {logits.shape[1] - 1}], got {labels.min()}..{labels.max()}")
        probs = np.empty_like(logits)
        grad = np.empty_like(logits)
        total = K.softmax_cross_entropy(logits, labels.astype(np.int64), probs, grad)
        self.probs = probs
        self._grad = grad
        return total / logits.shape[0]

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward(): run forward first")
        return self._grad

