"""Layers that take class labels: the conditioning of a conditional GAN.

Both declare ``uses_condition``: inside a :class:`~minigan.Sequential` they receive
the batch's labels (an integer array (N,)) with ``forward(x, labels)`` and keep them
for the backward and second-order passes.

* :class:`LabelConcat` appends a representation of each row's label to the row:
  a learned embedding ``E[c]`` (``embedding_dim`` numbers) or a one-hot vector.
  Before the generator's first Dense layer it joins the noise and the label, as in
  the conditional GAN of Mirza and Osindero (2014, "Conditional Generative
  Adversarial Nets", one-hot) and the learned embedding of PyTorch-GAN's ``cgan``;
  before the discriminator's first layer it joins the image and the label.
* :class:`Projection` is the output layer of the projection discriminator (Miyato
  and Koyama 2018, "cGANs with Projection Discriminator"): on D's last hidden
  features ``h`` it outputs ``h . w + b + h . E[c]``, the unconditional score plus
  the inner product of the features with a learned embedding of the label.

The kernels are in :mod:`minigan.conditional.kernels`; the embedding's gradient is
a scatter-add into the rows the batch's labels use.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import init as initializers
from .. import kernels as K
from .._validation import check_dtype, check_int, check_real, check_rng
from ..layers import Layer, RunningStatistics
from . import kernels as CK
from .labels import check_labels


#: Placeholders for a kernel's output that a flag tells it not to write.
_UNUSED = {name: np.empty((0, 0), dtype=name) for name in ("float32", "float64")}


class _LabelLayer(Layer):
    """What the two conditional layers share: the label checks and the cached labels."""

    unchecked = True
    rows_independent = True
    uses_condition = True
    num_classes: int
    in_features: int

    def validate_condition(self, condition: Any, name: str = "condition") -> None:
        """Raise a clear error unless ``condition`` is integer labels in ``0 .. num_classes - 1``."""
        check_labels(condition, None, self.num_classes, name=name)

    def _labels(self, condition: Any) -> np.ndarray:
        """The labels as int64, without checks (the kernels index by them)."""
        return np.ascontiguousarray(condition, dtype=np.int64)

    def _check_forward(self, x: Any, condition: Any) -> tuple[np.ndarray, np.ndarray]:
        x = self._check_input(x, self.in_features, self.dtype)
        labels = check_labels(condition, x.shape[0], self.num_classes, name="condition")
        return x, labels


class LabelConcat(_LabelLayer):
    """``y = [x, e(c)]``: each row with a representation of its label appended.

    Parameters
    ----------
    in_features : int
        Width M of the input (the noise size before G's first Dense, the pixel count
        before D's).
    num_classes : int
        Labels are ``0 .. num_classes - 1``.
    embedding_dim : int, optional
        Width D of a learned embedding table ``E`` (num_classes, D), drawn from N(0, 1)
        (the scale of the noise it joins, and PyTorch's ``nn.Embedding`` default).
        None: a fixed one-hot vector of ``num_classes`` entries (no parameters).
    dtype : float32 or float64
    rng : numpy.random.Generator, int or None
        Source of the initial table.

    Shapes
    ------
    x : (N, M), labels : (N,) int, y : (N, M + D) (D = num_classes for one-hot).

    Backward
    --------
    With ``G = dL/dy``: ``dL/dx = G[:, :M]`` and, for the learned table,
    ``dL/dE[c] = sum_{i: c_i = c} G[i, M:]`` -- a scatter-add into the rows used.

    Second order
    ------------
    The layer is linear in ``x`` and does not depend on it through ``E``:
    ``y_dot = [x_dot, 0]``, ``R{dL/dx} = G_dot[:, :M]``,
    ``R{dL/dE[c]} = sum_{i: c_i = c} G_dot[i, M:]`` (nothing where ``G_dot`` is zero).
    """

    cache_attributes = ("_labels_used", "_n")

    def __init__(self, in_features: int, num_classes: int, *, embedding_dim: int | None = None,
                 dtype: Any = np.float32, rng: Any = None) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.embedding_dim = None if embedding_dim is None else check_int(embedding_dim, "embedding_dim", minimum=1)
        self.dtype = check_dtype(dtype)
        rng = check_rng(rng)
        if self.embedding_dim is not None:
            table = rng.standard_normal((self.num_classes, self.embedding_dim))
            self.add_param("E", table.astype(self.dtype))
        self._labels_used: np.ndarray | None = None
        self._n = 0

    @property
    def one_hot(self) -> bool:
        """True for the fixed one-hot code (no learned table)."""
        return self.embedding_dim is None

    @property
    def label_features(self) -> int:
        """Width of the appended part: ``embedding_dim``, or ``num_classes`` for one-hot."""
        return self.num_classes if self.embedding_dim is None else self.embedding_dim

    def output_features(self, in_features: int) -> int:
        return in_features + self.label_features

    def extra_repr(self) -> str:
        code = "one_hot" if self.one_hot else f"embedding_dim={self.embedding_dim}"
        return f"{self.in_features}, num_classes={self.num_classes}, {code}, dtype={self.dtype.name}"

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "num_classes": self.num_classes,
                "embedding_dim": self.embedding_dim, "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """x: (N, in_features), condition: labels (N,) -> y: (N, in_features + label_features)."""
        x, labels = self._check_forward(x, condition)
        return self.forward_unchecked(x, labels)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Return ``dL/dx = G[:, :M]``; scatter-add ``G[:, M:]`` into ``grads['E']``."""
        if self._labels_used is None:
            raise RuntimeError("LabelConcat.backward() called before forward(): run forward first")
        expected = np.empty((self._n, self.in_features + self.label_features), dtype=self.dtype)
        grad_y = self._check_grad(grad_y, expected)
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        labels = self._labels(condition)
        y = np.empty((x.shape[0], self.in_features + self.label_features), dtype=self.dtype)
        if self.one_hot:
            CK.concat_one_hot_forward(x, labels, self.num_classes, y)
        else:
            CK.concat_embedding_forward(x, labels, self.params["E"], y)
        self._labels_used = labels
        self._n = x.shape[0]
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        if not self.one_hot:
            CK.scatter_add_rows(grad_y, self.in_features, self._labels_used, self.grads["E"], grad_mode)
        grad_x = np.empty((grad_y.shape[0], self.in_features), dtype=grad_y.dtype)
        CK.leading_columns(grad_y, self.in_features, grad_x)
        return grad_x

    # -- second order ---------------------------------------------------------
    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = [x_dot, 0]`` (N, in_features + label_features)."""
        y_dot = np.zeros((x_dot.shape[0], self.in_features + self.label_features), dtype=x_dot.dtype)
        y_dot[:, :self.in_features] = x_dot
        return y_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dE}``: the scatter-add of ``G_dot[:, M:]``; returns ``R{dL/dx} = G_dot[:, :M]``
        (None when ``G_dot`` is None)."""
        if grad_y_dot is None:
            if not self.one_hot and grad_mode == K.GRAD_WRITE:
                self.grads["E"].fill(0)
            return None
        return self.backward_unchecked(grad_y_dot, grad_mode)


class Projection(_LabelLayer):
    """The projection discriminator's output: ``y = h . w + b + h . E[c]``, one score per row.

    Parameters
    ----------
    in_features : int
        Width H of D's last hidden features ``h``.
    num_classes : int
    init : str
        Initializer of ``w`` (H, 1) and of the class embedding ``E`` (num_classes, H)
        (see :mod:`minigan.init`; default glorot-uniform, Miyato and Koyama's choice);
        the bias starts at zero.
    dtype : float32 or float64
    rng : numpy.random.Generator, int or None

    Shapes
    ------
    h : (N, H), labels : (N,) int, y : (N, 1).

    Backward
    --------
    With ``g = dL/dy`` (N, 1) and ``u_i = w + E[c_i]`` (H,):
    ``dL/dh_i = g_i u_i``, ``dL/dw = sum_i g_i h_i``, ``dL/db = sum_i g_i``,
    ``dL/dE[c] = sum_{i: c_i = c} g_i h_i`` (a scatter-add).

    Second order
    ------------
    ``y_dot_i = h_dot_i . u_i``. The backward's products are bilinear in ``(h, g)``, so
    ``R{dL/dh_i} = g_dot_i u_i``, ``R{dL/dw} = sum_i (g_i h_dot_i + g_dot_i h_i)``,
    ``R{dL/db} = sum_i g_dot_i``, ``R{dL/dE[c]} = sum_{i: c_i = c} (g_i h_dot_i + g_dot_i h_i)``;
    where ``g_dot`` is zero (None) only the ``g h_dot`` terms are left.
    """

    cache_attributes = ("_h", "_labels_used")

    def __init__(self, in_features: int, num_classes: int, *, init: str = "glorot_uniform",
                 dtype: Any = np.float32, rng: Any = None) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.dtype = check_dtype(dtype)
        self.init = init
        rng = check_rng(rng)
        self.add_param("W", initializers.initialize(init, (self.in_features, 1), rng, self.dtype))
        self.add_param("b", np.zeros(1, dtype=self.dtype))
        table = initializers.initialize(init, (self.in_features, self.num_classes), rng, self.dtype)
        self.add_param("E", np.ascontiguousarray(table.T))
        self._h: np.ndarray | None = None
        self._labels_used: np.ndarray | None = None
        self._h_dot: np.ndarray | None = None

    def output_features(self, in_features: int) -> int:
        return 1

    def extra_repr(self) -> str:
        return f"{self.in_features}, num_classes={self.num_classes}, dtype={self.dtype.name}"

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "num_classes": self.num_classes, "init": self.init,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """h: (N, in_features), condition: labels (N,) -> scores (N, 1)."""
        x, labels = self._check_forward(x, condition)
        return self.forward_unchecked(x, labels)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Return ``dL/dh``; add ``dL/dW``, ``dL/db`` and the scatter-add ``dL/dE`` into ``grads``."""
        if self._h is None:
            raise RuntimeError("Projection.backward() called before forward(): run forward first")
        grad_y = self._check_grad(grad_y, np.empty((self._h.shape[0], 1), dtype=self.dtype))
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        labels = self._labels(condition)
        y = np.empty((x.shape[0], 1), dtype=self.dtype)
        p = self.params
        CK.projection_forward(x, labels, p["W"], p["b"], p["E"], y)
        self._h = x
        self._labels_used = labels
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD,
                           input_grad: bool = True) -> np.ndarray | None:
        p, g = self.params, self.grads
        grad_h = np.empty_like(self._h) if input_grad else _UNUSED[self.dtype.name]
        CK.projection_backward(grad_y, self._h, self._labels_used, p["W"], p["E"], grad_h,
                               g["W"], g["b"], g["E"], grad_mode, input_grad)
        return grad_h if input_grad else None

    # -- second order ---------------------------------------------------------
    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot_i = h_dot_i . (w + E[c_i])`` (N, 1)."""
        y_dot = np.empty((x_dot.shape[0], 1), dtype=x_dot.dtype)
        CK.projection_tangent_forward(x_dot, self._labels_used, self.params["W"], self.params["E"], y_dot)
        self._h_dot = x_dot
        return y_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dW}``, ``R{dL/db}``, ``R{dL/dE}`` into ``grads``; returns ``R{dL/dh}`` (N, H),
        None when ``G_dot`` is None."""
        p, g = self.params, self.grads
        has_dot = grad_y_dot is not None
        grad_h_dot = np.empty_like(self._h) if has_dot else _UNUSED[self.dtype.name]
        CK.projection_tangent_backward(grad_y, grad_y_dot if has_dot else grad_y, has_dot, self._h, self._h_dot,
                                       self._labels_used, p["W"], p["E"], grad_h_dot, g["W"], g["b"], g["E"],
                                       grad_mode)
        return grad_h_dot if has_dot else None


class ConditionalBatchNorm(RunningStatistics, _LabelLayer):
    """Batch normalization with a scale and a shift per class: ``y_i = gamma[c_i] x_hat_i + beta[c_i]``.

    The normalization ``x_hat`` is BatchNorm's (:class:`minigan.BatchNorm`: the batch
    mean and biased variance in training mode, running statistics moved with Keras'
    ``momentum``, the running statistics in evaluation mode); only the affine part
    depends on the label. This is the conditional batch normalization of de Vries et
    al. (2017, "Modulating early visual processing by language") and Dumoulin, Shlens
    and Kudlur (2017, "A Learned Representation for Artistic Style"), which Miyato and
    Koyama's generator uses beside the projection discriminator.

    Parameters
    ----------
    num_features : int
    num_classes : int
    momentum : float in [0, 1); eps : float > 0
        As in :class:`minigan.BatchNorm` (defaults 0.8 and 1e-3, the reference GAN's).
    dtype : float32 or float64

    Shapes
    ------
    x, y : (N, F), labels : (N,) int, gamma and beta : (num_classes, F) (start at 1 and 0).

    Backward
    --------
    With ``g = dL/dy``: ``dL/dbeta[c] = sum_{i: c_i = c} g_i``, ``dL/dgamma[c] = sum_{i: c_i = c} g_i x_hat_i``
    (scatter-adds), and with ``u_i = g_i gamma[c_i]`` BatchNorm's input gradient
    ``dL/dx_i = inv_std (u_i - mean(u) - x_hat_i mean(u x_hat))`` (training mode) or
    ``inv_std u_i`` (evaluation mode).

    Second order (evaluation mode only, as :class:`minigan.BatchNorm`)
    -------------------------------------------------------------------
    ``y_dot_i = x_dot_i gamma[c_i] inv_std``; ``R{dL/dgamma[c]} = sum_{i: c_i = c} (G_dot_i x_hat_i
    + G_i x_dot_i inv_std)``, ``R{dL/dbeta[c]} = sum_{i: c_i = c} G_dot_i``,
    ``R{dL/dx_i} = G_dot_i gamma[c_i] inv_std``.
    """

    rows_independent = False  # training mode: the batch statistics couple the rows
    cache_attributes = ("_x_hat", "_inv_std", "_labels_used", "_forward_was_training")

    def __init__(self, num_features: int, num_classes: int, *, momentum: float = 0.8, eps: float = 1e-3,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features", minimum=1)
        self.in_features = self.num_features
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.momentum = check_real(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
        self.dtype = check_dtype(dtype)
        self.add_param("gamma", np.ones((self.num_classes, self.num_features), dtype=self.dtype))
        self.add_param("beta", np.zeros((self.num_classes, self.num_features), dtype=self.dtype))
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=self.dtype)
        self._x_hat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._labels_used: np.ndarray | None = None
        self._forward_was_training = True
        self._x_dot: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_classes={self.num_classes}, momentum={self.momentum}, eps={self.eps}"

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "num_classes": self.num_classes, "momentum": self.momentum,
                "eps": self.eps, "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """x: (N, F), condition: labels (N,) -> y: (N, F); training mode needs N >= 2."""
        x, labels = self._check_forward(x, condition)
        if self.training and x.shape[0] < 2:
            raise ValueError(f"x must hold at least 2 samples for {type(self).__name__} in training mode, got "
                             f"shape {x.shape}; use a larger batch or call eval() first")
        return self.forward_unchecked(x, labels)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Return dL/dx (N, F); scatter-add dL/dgamma and dL/dbeta into ``grads``."""
        grad_y = self._check_grad(grad_y, self._x_hat)
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray, condition: np.ndarray) -> np.ndarray:  # type: ignore[override]
        labels = self._labels(condition)
        y, x_hat = np.empty_like(x), np.empty_like(x)
        inv_std = np.empty(x.shape[1], dtype=x.dtype)
        p, b = self.params, self.buffers
        CK.conditional_batchnorm_forward(x, labels, p["gamma"], p["beta"], self.eps, self.momentum, self.training,
                                         b["running_mean"], b["running_var"], y, x_hat, inv_std)
        self._x_hat, self._inv_std, self._labels_used = x_hat, inv_std, labels
        self._forward_was_training = self.training
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        grad_x = np.empty_like(grad_y)
        CK.conditional_batchnorm_backward(grad_y, self._x_hat, self._labels_used, self.params["gamma"],
                                          self._inv_std, self._forward_was_training, grad_x, self.grads["gamma"],
                                          self.grads["beta"], grad_mode)
        return grad_x

    # -- second order (evaluation mode) ---------------------------------------
    def _require_eval_forward(self) -> None:
        if self._forward_was_training:
            raise ValueError(
                f"{self!r} ran its last forward in training mode, where the batch statistics couple the rows of "
                "a batch; the second-order pass (gradient penalties) takes it in eval mode only: call eval() on "
                "the layer or the model first")

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot_i = x_dot_i gamma[c_i] inv_std`` (N, F); eval mode only."""
        self._require_eval_forward()
        y_dot = np.empty_like(x_dot)
        CK.conditional_batchnorm_eval_tangent_forward(x_dot, self._labels_used, self.params["gamma"],
                                                      self._inv_std, y_dot)
        self._x_dot = x_dot
        return y_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dgamma}``, ``R{dL/dbeta}`` into ``grads``; returns ``R{dL/dx}`` (N, F) or None."""
        self._require_eval_forward()
        has_dot = grad_y_dot is not None
        grad_x_dot = np.empty_like(grad_y) if has_dot else _UNUSED[self.dtype.name]
        CK.conditional_batchnorm_eval_tangent_backward(
            grad_y, grad_y_dot if has_dot else grad_y, has_dot, self._x_hat, self._x_dot, self._labels_used,
            self.params["gamma"], self._inv_std, grad_x_dot, self.grads["gamma"], self.grads["beta"], grad_mode)
        return grad_x_dot if has_dot else None


#: The conditional layers by class name, known to :func:`minigan.layers.layer_from_config`.
CONDITIONAL_LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (LabelConcat, Projection, ConditionalBatchNorm)}
