"""Layers: objects that hold parameters and call the compiled kernels.

Every layer follows one contract:

* ``forward(x)`` computes the output and caches what ``backward`` needs.
* ``backward(grad_y)`` returns ``grad_x`` and **adds** the parameter gradients into
  ``grads``. It never changes ``params``: updating them is the optimizer's job.
* ``params`` and ``grads`` are dicts of name -> ndarray with the same keys and
  shapes; ``buffers`` holds non-trained state (BatchNorm's running statistics).
  Optimizers update ``params`` arrays in place and never rebind them.
* ``train()`` / ``eval()`` switch the mode; ``zero_grad()`` clears ``grads``.

Inputs are 2-D arrays ``(batch, features)``. The public ``forward``/``backward``
validate their arguments. :class:`~minigan.model.Sequential` validates once at the
model's boundary and then calls each layer's unchecked pair ``forward_unchecked`` /
``backward_unchecked`` (the advanced interface, see :class:`Layer`), which the
built-in layers implement without any checks.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import init as initializers
from . import kernels as K
from ._validation import check_dtype, check_float_array, check_int, check_real, check_rng, check_shape


class Layer:
    """Base class of every layer; subclass it to write your own.

    A custom layer implements ``forward`` and ``backward`` and registers its
    trainable arrays with :meth:`add_param` (which also creates the gradient)::

        class Scale(mg.Layer):
            '''y = x * s, one learned scale per feature.'''

            def __init__(self, features):
                super().__init__()
                self.add_param("s", np.ones(features))

            def forward(self, x):
                self.x = x
                return x * self.params["s"]

            def backward(self, grad_y):
                self.grads["s"] += (grad_y * self.x).sum(axis=0)
                return grad_y * self.params["s"]

    ``mg.gradcheck(Scale(3), x)`` then checks both gradients by central differences.

    The advanced interface
    ----------------------
    What :class:`~minigan.model.Sequential` and the training loop use, documented so
    that a layer of your own can take part in it:

    ``forward_unchecked(x)`` / ``backward_unchecked(grad_y, grad_mode)``
        The same computation without argument checks. ``grad_mode`` says what happens
        to the parameter gradients: ``kernels.GRAD_ADD`` (add, the contract of
        ``backward``), ``GRAD_WRITE`` (overwrite: a ``zero_grad`` without the extra
        sweep) or ``GRAD_SKIP`` (leave them: a frozen network). The defaults here call
        the checked ``forward``/``backward`` and adapt ``grad_mode``.
    ``unchecked`` (class attribute)
        True when ``forward_unchecked``/``backward_unchecked`` may be trusted with
        inputs validated once at the model's boundary: Sequential then calls them
        directly. False (the default for your layers) makes Sequential call
        ``forward``/``backward`` and check what they return. A subclass that overrides
        ``forward`` or ``backward`` without overriding the unchecked pair gets
        ``unchecked = False`` (and loses ``fuses_activation``/``fusable``) automatically,
        so its own methods always run.
    ``rows_independent`` (class attribute)
        True when every row of a batch is computed on its own (no batch statistics):
        one pass over stacked batches then equals separate passes.
    ``uses_condition`` (class attribute)
        True for a layer that also takes a condition (e.g. class labels):
        ``forward(x, condition)`` and ``forward_unchecked(x, condition)``, with the
        condition an array whose first axis has the batch's length.
    ``validate_condition(condition, name)``
        Raise a clear error unless ``condition`` fits the layer (e.g. labels within its
        number of classes); Sequential calls it once at the model's boundary, before
        the unchecked passes index anything by the condition. Nothing by default.
    ``cache_state()`` / ``restore_cache(state)``
        What ``backward`` needs from the last ``forward``, taken out and put back,
        so that two forward passes can share one backward later (the GAN loop does
        this for a discriminator with batch statistics). The default takes every
        instance attribute except ``params``, ``grads``, ``buffers`` and ``training``
        (by reference, not copied): override it if your forward reuses its cache
        arrays in place.
    ``get_config()``
        The constructor arguments as JSON-compatible values, so that a model can be
        rebuilt from a run's ``config.json`` (``layer_from_config``). A layer of your
        own implements it to be saved with a run; see :func:`layer_from_config`.

    The second-order pass (gradient penalties)
    ------------------------------------------
    A gradient penalty is a function of the input gradient ``g = dL/dx`` that the
    backward pass computes, so its gradient with respect to the parameters runs
    through the backward pass itself. minigan differentiates the backward pass in
    forward mode: the input is perturbed along a direction ``v`` (``x -> x + t v``) and
    every layer carries the derivative of its values with respect to ``t`` -- the
    tangent, written with a dot -- first through its forward, then through its
    backward (Pearlmutter's R-operator, ``R{.} = d/dt (.) at t = 0``). The tangents of
    the parameter gradients, ``R{dL/dtheta}``, are the parameter gradient of ``v . g``:
    exactly what a penalty with ``dP/dg = v`` needs (:mod:`minigan.penalties`). Two
    methods, called after ``forward`` and a backward of the same batch:

    ``tangent_forward(x_dot) -> y_dot``
        ``y_dot = (dy/dx) x_dot`` (N, out) for ``x_dot`` (N, in), at the last forward's
        input; parameters are not perturbed. Keep what ``tangent_backward`` needs.
    ``tangent_backward(grad_y, grad_y_dot, grad_mode=GRAD_ADD) -> grad_x_dot``
        ``grad_y`` (N, out) is the gradient that arrived at this layer's output in the
        backward being differentiated and ``grad_y_dot`` its tangent (or None, meaning
        zero: where the backward starts from a constant). Returns ``R{dL/dx}`` (N, in)
        -- None when it is zero -- and puts ``R{dL/dtheta}`` into ``grads`` by
        ``grad_mode`` (added, as ``backward`` does). Parameters never change.

    For ``y = f(x, theta)`` with backward ``dL/dx = J_x^T G`` and ``dL/dtheta = J_theta^T G``
    (``G = grad_y``), the product rule gives
    ``R{dL/dx} = J_x^T G_dot + (d/dt J_x^T) G`` and the same for ``theta``: the first
    term reuses the layer's backward on ``G_dot``, the second holds its second
    derivatives. :func:`minigan.gradcheck_second_order` checks both methods of a layer
    of your own by central differences. A subclass that overrides ``forward`` or
    ``backward`` without overriding these two loses the inherited ones (they would
    differentiate the parent's computation), and a penalty then says what to write.
    """

    unchecked = False
    rows_independent = False
    uses_condition = False
    #: A Dense-like layer whose ``forward_unchecked(x, activation)`` can absorb the
    #: activation after it (one sweep for bias + activation).
    fuses_activation = False
    #: An elementwise activation that a ``fuses_activation`` layer can absorb.
    fusable = False
    #: Attributes ``backward`` reads, for :meth:`cache_state` (None: every instance attribute).
    cache_attributes: tuple[str, ...] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides_checked = "forward" in vars(cls) or "backward" in vars(cls)
        overrides_unchecked = "forward_unchecked" in vars(cls) or "backward_unchecked" in vars(cls)
        if overrides_checked and not overrides_unchecked:
            # Sequential must call this class's own forward/backward, not an inherited fast path.
            cls.unchecked = False
            cls.fuses_activation = False
            cls.fusable = False
            cls.rows_independent = vars(cls).get("rows_independent", False)
            cls.cache_attributes = None
        computation = ("forward", "backward", "forward_unchecked", "backward_unchecked")
        if any(name in vars(cls) for name in computation) and not (
                "tangent_forward" in vars(cls) or "tangent_backward" in vars(cls)):
            # An inherited second-order pass would differentiate the parent's computation.
            cls.tangent_forward = Layer.tangent_forward  # type: ignore[method-assign]
            cls.tangent_backward = Layer.tangent_backward  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True

    # -- parameters ---------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a trainable array (and a zero gradient of the same shape)."""
        value = np.ascontiguousarray(value)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def zero_grad(self) -> None:
        """Set every gradient array to zero, in place."""
        for grad in self.grads.values():
            grad.fill(0)

    def train(self) -> "Layer":
        """Training mode (batch statistics, dropout active). Returns self."""
        self.training = True
        return self

    def eval(self) -> "Layer":
        """Inference mode (running statistics, no dropout). Returns self."""
        self.training = False
        return self

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    def output_features(self, in_features: int) -> int:
        """Feature count of the output for ``in_features`` inputs (shape-preserving by default)."""
        return in_features

    def astype(self, dtype: Any) -> "Layer":
        """A deep copy of the layer with every parameter, gradient and buffer in ``dtype``."""
        dtype = check_dtype(dtype)
        clone = copy.deepcopy(self)
        for store in (clone.params, clone.grads, clone.buffers):
            for key, value in store.items():
                store[key] = np.ascontiguousarray(value, dtype=dtype)
        if hasattr(clone, "dtype"):
            clone.dtype = dtype
        return clone

    def validate_condition(self, condition: Any, name: str = "condition") -> None:
        """Raise a clear error unless ``condition`` fits this layer (see the class docstring)."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-compatible values (see the class docstring)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement get_config(): return its constructor arguments as a dict "
            "so that a run holding it can be rebuilt, and pass custom_layers={'"
            f"{type(self).__name__}': {type(self).__name__}}} when loading it"
        )

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, grad_y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad_y)")

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward` without argument checks (see the class docstring)."""
        return self.forward(x)

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        """Backward with a choice of what happens to the parameter gradients
        (``K.GRAD_ADD``, ``K.GRAD_WRITE`` or ``K.GRAD_SKIP``). Built-in layers do it in
        their kernels; a custom layer only knows how to add, so this adapts."""
        if grad_mode == K.GRAD_ADD:
            return self.backward(grad_y)
        if grad_mode == K.GRAD_WRITE:
            self.zero_grad()
            return self.backward(grad_y)
        saved = {k: v.copy() for k, v in self.grads.items()}
        grad_x = self.backward(grad_y)
        for k, v in saved.items():
            self.grads[k][...] = v
        return grad_x

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = (dy/dx) x_dot``: the second-order pass (see the class docstring)."""
        raise NotImplementedError(missing_second_order(self))

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dx}``, with ``R{dL/dtheta}`` into ``grads``: the second-order pass (see the class docstring)."""
        raise NotImplementedError(missing_second_order(self))

    def cache_state(self) -> dict[str, Any]:
        """References to what ``backward`` needs from the last ``forward``."""
        names = self.cache_attributes
        if names is None:
            names = tuple(k for k in vars(self) if k not in ("params", "grads", "buffers", "training"))
        return {name: getattr(self, name, None) for name in names}

    def restore_cache(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`cache_state` took."""
        for name, value in state.items():
            setattr(self, name, value)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- shared checks for the built-in layers ---------------------------------
    def _check_input(self, x: Any, features: int | None, dtype: np.dtype | None = None) -> np.ndarray:
        x = check_float_array(x, "x", ndim=2, dtype=dtype)
        if features is not None and x.shape[1] != features:
            raise ValueError(
                f"x must have {features} features (columns) for {self!r}, got shape {x.shape}; "
                "check the previous layer's output size"
            )
        return x

    def _check_grad(self, grad_y: Any, expected: np.ndarray | None) -> np.ndarray:
        if expected is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward(): run forward first")
        grad_y = check_float_array(grad_y, "grad_y", dtype=expected.dtype)
        check_shape(grad_y, expected.shape, "grad_y (the gradient of the layer's output)")
        return grad_y


def has_second_order(layer: Layer) -> bool:
    """True when ``layer`` implements the second-order pass (``tangent_forward`` and
    ``tangent_backward``, see :class:`Layer`)."""
    cls = type(layer)
    return cls.tangent_forward is not Layer.tangent_forward and cls.tangent_backward is not Layer.tangent_backward


def missing_second_order(layer: Layer) -> str:
    """The error message for a layer without the second-order pass: which methods to write."""
    return (
        f"{layer!r} has no second-order pass, which gradient penalties need: write "
        f"{type(layer).__name__}.tangent_forward(x_dot) -> y_dot and "
        f"{type(layer).__name__}.tangent_backward(grad_y, grad_y_dot, grad_mode) -> grad_x_dot "
        "(the contract is in the docstring of minigan.Layer, 'The second-order pass'), then check them "
        "with minigan.gradcheck_second_order"
    )


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    init : str
        Weight initializer (see :mod:`minigan.init`): ``"glorot_uniform"`` (the Keras
        default), ``"glorot_normal"``, ``"he_uniform"``, ``"he_normal"``, ``"zeros"``.
        The bias starts at zero.
    dtype : float32 or float64
    rng : numpy.random.Generator, int or None
        Source of the initial weights.

    Shapes
    ------
    x : (N, in_features), W : (in_features, out_features), b : (out_features,),
    y : (N, out_features).

    Backward
    --------
    With ``G = dL/dy`` of shape (N, out):
    ``dL/dW = x^T G`` (in, out), ``dL/db = sum_rows G`` (out,), ``dL/dx = G W^T`` (N, in).
    When Sequential fuses the following activation ``a``, ``G`` is first formed as
    ``dL/dy_act * a'(y_act)`` in the same sweep that sums ``dL/db``.

    Second order
    ------------
    Along an input perturbation ``x_dot`` (the weights are not perturbed):
    ``y_dot = x_dot W``. The backward's three products are bilinear, so with
    ``G_dot = R{G}``: ``R{dL/dW} = x_dot^T G + x^T G_dot``, ``R{dL/db} = sum_rows G_dot``,
    ``R{dL/dx} = G_dot W^T``. Where ``G_dot`` is zero (None) only ``x_dot^T G`` is left:
    the bias gradient's tangent vanishes.
    """

    unchecked = True
    rows_independent = True
    fuses_activation = True
    cache_attributes = ("_x", "_y")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str = "glorot_uniform",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        self.dtype = check_dtype(dtype)
        self.init = init
        rng = check_rng(rng)
        weights = initializers.initialize(init, (self.in_features, self.out_features), rng, self.dtype)
        self.add_param("W", weights)
        self.add_param("b", np.zeros(self.out_features, dtype=self.dtype))
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._x_dot: np.ndarray | None = None  # the second-order pass's input tangent
        self._scratch_w: np.ndarray | None = None

    def output_features(self, in_features: int) -> int:
        return self.out_features

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, dtype={self.dtype.name}"

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``y = x @ W + b``; x: (N, in_features) -> y: (N, out_features)."""
        x = self._check_input(x, self.in_features, self.dtype)
        return self.forward_unchecked(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Add ``x^T G`` to ``grads['W']`` and ``sum_rows G`` to ``grads['b']``; return ``G W^T``."""
        grad_y = self._check_grad(grad_y, self._y)
        return self.backward_unchecked(grad_y)

    # -- unchecked fast path (also used fused with an activation) -----------
    def forward_unchecked(self, x: np.ndarray, activation: "Activation | None" = None) -> np.ndarray:
        y = np.empty((x.shape[0], self.out_features), dtype=self.dtype)
        np.matmul(x, self.params["W"], out=y)
        if activation is None:
            K.bias_activation(y, self.params["b"], K.ACT_IDENTITY, 0.0, y)
        else:
            K.bias_activation(y, self.params["b"], activation.kind, activation.alpha, y)
            activation._y = y
        self._x = x
        self._y = y
        return y

    def backward_unchecked(
        self,
        grad_y: np.ndarray,
        grad_mode: int = K.GRAD_ADD,
        activation: "Activation | None" = None,
        input_grad: bool = True,
    ) -> np.ndarray | None:
        x = self._x
        if activation is None:
            grad_z = grad_y
            K.column_sums(grad_z, self.grads["b"], grad_mode)
        else:
            grad_z = np.empty_like(grad_y)
            K.activation_backward_bias_grad(
                grad_y, activation._y, activation.kind, activation.alpha, grad_z, self.grads["b"], grad_mode
            )
        if grad_mode == K.GRAD_WRITE:
            np.matmul(x.T, grad_z, out=self.grads["W"])
        elif grad_mode == K.GRAD_ADD:
            self.grads["W"] += x.T @ grad_z
        if not input_grad:
            return None
        if self.out_features == 1:
            # An outer product: BLAS takes about 5x longer for an inner dimension of 1 than this
            # elementwise multiply, which rounds each g_i * w_j once, exactly as the product does.
            return np.multiply(grad_z, self.params["W"].T)
        return grad_z @ self.params["W"].T

    # -- second order ---------------------------------------------------------
    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = x_dot W``: (N, in_features) -> (N, out_features)."""
        y_dot = np.empty((x_dot.shape[0], self.out_features), dtype=self.dtype)
        np.matmul(x_dot, self.params["W"], out=y_dot)
        self._x_dot = x_dot
        return y_dot

    def _weight_tangent_into_grads(self, x_dot: np.ndarray, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> None:
        """Put ``x_dot^T G`` (in_features, out_features) into ``grads['W']`` by ``grad_mode``,
        for ``x_dot`` (N, in_features) and ``G = grad_y`` (N, out_features); under ``GRAD_WRITE``
        ``grads['b']`` is zeroed. This is :meth:`tangent_backward` where ``G_dot`` is zero, the
        whole of it in a (leaky) ReLU network (:mod:`minigan.penalties` calls it directly there)."""
        grad_w = self.grads["W"]
        if grad_mode == K.GRAD_WRITE:
            np.matmul(x_dot.T, grad_y, out=grad_w)
            self.grads["b"].fill(0)
        elif grad_mode == K.GRAD_ADD:
            scratch = self._weight_scratch()
            np.matmul(x_dot.T, grad_y, out=scratch)
            grad_w += scratch

    def _weight_scratch(self) -> np.ndarray:
        """An (in, out) array kept between calls for a product added into ``grads['W']``: a fresh
        temporary costs page faults every call (measured 0.7 ms against 0.55 ms for the 784 x 512
        layer at batch 64, 1 thread)."""
        grad_w = self.grads["W"]
        scratch = self._scratch_w
        if scratch is None or scratch.shape != grad_w.shape or scratch.dtype != grad_w.dtype:
            scratch = self._scratch_w = np.empty_like(grad_w)
        return scratch

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dW} = x_dot^T G + x^T G_dot`` and ``R{dL/db} = sum_rows G_dot`` into ``grads``;
        returns ``R{dL/dx} = G_dot W^T`` (N, in_features), None when ``G_dot`` is None."""
        self._weight_tangent_into_grads(self._x_dot, grad_y, grad_mode)
        if grad_y_dot is None:
            return None
        if grad_mode == K.GRAD_WRITE:
            self.grads["W"] += self._x.T @ grad_y_dot
        elif grad_mode == K.GRAD_ADD:
            scratch = self._weight_scratch()
            np.matmul(self._x.T, grad_y_dot, out=scratch)
            self.grads["W"] += scratch
        K.column_sums(grad_y_dot, self.grads["b"], grad_mode)
        if self.out_features == 1:
            return np.multiply(grad_y_dot, self.params["W"].T)
        return grad_y_dot @ self.params["W"].T


class Activation(Layer):
    """Elementwise activation ``y = f(x)`` computed by a kernel; shape-preserving.

    The derivative is evaluated from the cached output ``y``:
    ``dL/dx = dL/dy * f'(x)`` with ``f'`` written in terms of ``y``.

    Second order: ``y_dot = f'(x) x_dot`` and, differentiating ``G * f'(x)``,
    ``R{dL/dx} = G_dot * f'(x) + G * f''(x) * x_dot``, with ``f''`` from ``y`` too
    (``tanh'' = -2 y (1 - y^2)``, ``sigmoid'' = y (1 - y)(1 - 2 y)``; kernels
    ``activation_tangent_backward`` and ``activation_curvature``). The (leaky) ReLU is
    piecewise linear: ``f'' = 0`` except at the kink (measure zero), so only
    ``G_dot * f'`` remains, and nothing at all where ``G_dot`` is zero.
    """

    unchecked = True
    rows_independent = True
    fusable = True
    cache_attributes = ("_y",)
    kind = K.ACT_IDENTITY

    def __init__(self) -> None:
        super().__init__()
        self.alpha = 0.0
        self._y: np.ndarray | None = None
        self._x_dot: np.ndarray | None = None

    def get_config(self) -> dict[str, Any]:
        return {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, F) -> y: (N, F)."""
        x = self._check_input(x, None)
        return self.forward_unchecked(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """``grad_x = grad_y * f'(x)``, shape (N, F)."""
        grad_y = self._check_grad(grad_y, self._y)
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        K.bias_activation(x, None, self.kind, self.alpha, y)
        self._y = y
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        grad_x = np.empty_like(grad_y)
        K.activation_backward(grad_y, self._y, self.kind, self.alpha, grad_x)
        return grad_x

    # -- second order ---------------------------------------------------------
    @property
    def piecewise_linear(self) -> bool:
        """True for the identity and the (leaky) ReLU, whose second derivative is 0 almost everywhere."""
        return self.kind in (K.ACT_IDENTITY, K.ACT_RELU, K.ACT_LEAKY_RELU)

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = f'(x) x_dot`` (N, F)."""
        y_dot = np.empty_like(x_dot)
        K.activation_backward(x_dot, self._y, self.kind, self.alpha, y_dot)  # the same product as backward's
        self._x_dot = x_dot
        return y_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dx} = G_dot * f'(x) + G * f''(x) * x_dot`` (N, F); None when it is zero
        (a piecewise-linear activation and ``G_dot`` None)."""
        if self.piecewise_linear:
            if grad_y_dot is None:
                return None
            return self.backward_unchecked(grad_y_dot)
        grad_x_dot = np.empty_like(grad_y)
        if grad_y_dot is None:
            K.activation_curvature(grad_y, self._y, self._x_dot, self.kind, grad_x_dot)
        else:
            K.activation_tangent_backward(grad_y, grad_y_dot, self._y, self._x_dot, self.kind, self.alpha, grad_x_dot)
        return grad_x_dot


class LeakyReLU(Activation):
    """``y = x`` for ``x > 0`` else ``alpha * x``; ``dy/dx = 1`` or ``alpha``.

    Parameters
    ----------
    alpha : float
        Slope for negative inputs, ``0 <= alpha <= 1`` (0.2 as in the reference GAN).
    """

    kind = K.ACT_LEAKY_RELU

    def __init__(self, alpha: float = 0.2) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "alpha", minimum=0.0, maximum=1.0)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class ReLU(Activation):
    """``y = max(x, 0)``; ``dy/dx = 1`` for ``x > 0`` else 0."""

    kind = K.ACT_RELU


class Tanh(Activation):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    kind = K.ACT_TANH


class Sigmoid(Activation):
    """``y = 1 / (1 + exp(-x))``; ``dy/dx = y (1 - y)``."""

    kind = K.ACT_SIGMOID


class RunningStatistics:
    """The running mean and variance a BatchNorm-like layer keeps in its buffers."""

    buffers: dict[str, np.ndarray]

    @property
    def running_mean(self) -> np.ndarray:
        """Running mean, shape (num_features,)."""
        return self.buffers["running_mean"]

    @property
    def running_var(self) -> np.ndarray:
        """Running (biased) variance, shape (num_features,)."""
        return self.buffers["running_var"]


class BatchNorm(RunningStatistics, Layer):
    """Batch normalization over the batch axis of (N, F) inputs.

    Training mode: ``x_hat = (x - mean_B) / sqrt(var_B + eps)`` with the batch mean and
    the *biased* batch variance, ``y = gamma * x_hat + beta``, and the running
    statistics move as in Keras: ``running = momentum * running + (1 - momentum) * batch``
    (so ``momentum=0.8`` keeps 80% of the old value; PyTorch's ``momentum`` means the
    opposite). Evaluation mode uses the running statistics.

    Parameters
    ----------
    num_features : int
    momentum : float in [0, 1)
    eps : float > 0
    dtype : float32 or float64

    Backward (training mode)
    ------------------------
    With ``g = dL/dy``: ``dL/dbeta = sum_i g_i``, ``dL/dgamma = sum_i g_i x_hat_i`` and
    ``dL/dx_i = gamma / sqrt(var + eps) * (g_i - mean_i(g) - x_hat_i * mean_i(g x_hat))``,
    where the last two terms come from the batch mean and variance depending on x_i.

    Second order (evaluation mode only)
    -----------------------------------
    With the running statistics the layer is the per-feature affine map
    ``y = gamma (x - mean) inv_std + beta``: ``y_dot = x_dot gamma inv_std``,
    ``R{dL/dgamma} = sum_i (G_dot x_hat + G x_dot inv_std)``, ``R{dL/dbeta} = sum_i G_dot``,
    ``R{dL/dx} = G_dot gamma inv_std``. In training mode every output depends on every
    row through the batch statistics, which a per-row gradient penalty must not see:
    the second-order methods raise a ValueError.
    """

    unchecked = True
    cache_attributes = ("_x_hat", "_inv_std", "_forward_was_training")

    def __init__(self, num_features: int, *, momentum: float = 0.8, eps: float = 1e-3, dtype: Any = np.float32) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features", minimum=1)
        self.momentum = check_real(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
        self.dtype = check_dtype(dtype)
        self.add_param("gamma", np.ones(self.num_features, dtype=self.dtype))
        self.add_param("beta", np.zeros(self.num_features, dtype=self.dtype))
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=self.dtype)
        self._x_hat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._forward_was_training = True
        self._x_dot: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, F) -> y: (N, F). Training mode needs N >= 2 (one sample has no variance)."""
        x = self._check_input(x, self.num_features, self.dtype)
        if self.training and x.shape[0] < 2:
            raise ValueError(
                f"x must hold at least 2 samples for BatchNorm in training mode, got shape {x.shape}; "
                "use a larger batch or call eval() first"
            )
        return self.forward_unchecked(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """Return dL/dx (N, F); add dL/dgamma and dL/dbeta into ``grads``."""
        grad_y = self._check_grad(grad_y, self._x_hat)
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        x_hat = np.empty_like(x)
        inv_std = np.empty(x.shape[1], dtype=x.dtype)
        p, b = self.params, self.buffers
        if self.training:
            K.batchnorm_forward_train(
                x, p["gamma"], p["beta"], self.eps, self.momentum,
                b["running_mean"], b["running_var"], y, x_hat, inv_std,
            )
        else:
            K.batchnorm_forward_eval(
                x, p["gamma"], p["beta"], self.eps, b["running_mean"], b["running_var"], y, x_hat, inv_std
            )
        self._forward_was_training = self.training
        self._x_hat = x_hat
        self._inv_std = inv_std
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        grad_x = np.empty_like(grad_y)
        kernel = K.batchnorm_backward_train if self._forward_was_training else K.batchnorm_backward_eval
        kernel(
            grad_y, self._x_hat, self.params["gamma"], self._inv_std,
            grad_x, self.grads["gamma"], self.grads["beta"], grad_mode,
        )
        return grad_x

    # -- second order (evaluation mode) ---------------------------------------
    def _require_eval_forward(self) -> None:
        if self._forward_was_training:
            raise ValueError(
                f"{self!r} ran its last forward in training mode, where the batch statistics couple the rows of "
                "a batch; the second-order pass (gradient penalties) takes BatchNorm in eval mode only: call "
                "eval() on the layer or the model first"
            )

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = x_dot gamma inv_std`` (N, F); eval mode only."""
        self._require_eval_forward()
        y_dot = np.empty_like(x_dot)
        K.batchnorm_eval_tangent_forward(x_dot, self.params["gamma"], self._inv_std, y_dot)
        self._x_dot = x_dot
        return y_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dgamma}``, ``R{dL/dbeta}`` into ``grads``; returns ``R{dL/dx}`` (N, F) or None."""
        self._require_eval_forward()
        gamma, grads = self.params["gamma"], self.grads
        if grad_y_dot is None:
            K.batchnorm_eval_curvature(grad_y, self._x_dot, self._inv_std, grads["gamma"], grads["beta"], grad_mode)
            return None
        grad_x_dot = np.empty_like(grad_y_dot)
        K.batchnorm_eval_tangent_backward(grad_y, grad_y_dot, self._x_hat, self._x_dot, gamma, self._inv_std,
                                          grad_x_dot, grads["gamma"], grads["beta"], grad_mode)
        return grad_x_dot


class Dropout(Layer):
    """Inverted dropout: in training mode each input is zeroed with probability ``rate``
    and the survivors are scaled by ``1 / (1 - rate)``; identity in eval mode.

    Parameters
    ----------
    rate : float in [0, 1)
    rng : numpy.random.Generator, int or None
        Source of the masks (drawn in NumPy, outside any kernel).

    Backward: ``dL/dx = dL/dy * mask`` with the same scaled mask. Second order: the
    layer is linear for a given mask, so ``y_dot = x_dot * mask`` and
    ``R{dL/dx} = G_dot * mask``, with the mask of the last forward pass.
    """

    unchecked = True
    rows_independent = True
    cache_attributes = ("_mask", "_shape", "_dtype")

    def __init__(self, rate: float, *, rng: Any = None) -> None:
        super().__init__()
        self.rate = check_real(rate, "rate", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.rng = check_rng(rng)
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None

    def extra_repr(self) -> str:
        return f"rate={self.rate}"

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, F) -> y: (N, F)."""
        x = self._check_input(x, None)
        return self.forward_unchecked(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("Dropout.backward() called before forward(): run forward first")
        grad_y = check_float_array(grad_y, "grad_y", dtype=self._dtype)
        check_shape(grad_y, self._shape, "grad_y (the gradient of the layer's output)")
        return self.backward_unchecked(grad_y)

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        self._dtype = x.dtype
        if not self.training or self.rate == 0.0:
            self._mask = None
            return x
        uniform = self.rng.random(x.shape, dtype=x.dtype)
        mask = np.empty_like(x)
        K.dropout_mask(uniform, self.rate, mask)
        y = np.empty_like(x)
        K.multiply(x, mask, y)
        self._mask = mask
        return y

    def backward_unchecked(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD) -> np.ndarray:
        if self._mask is None:
            return grad_y
        grad_x = np.empty_like(grad_y)
        K.multiply(grad_y, self._mask, grad_x)
        return grad_x

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """``y_dot = x_dot * mask`` (N, F), the last forward's mask (identity without one)."""
        return self.backward_unchecked(x_dot)

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = K.GRAD_ADD) -> np.ndarray | None:
        """``R{dL/dx} = G_dot * mask`` (N, F), None when ``G_dot`` is None."""
        return None if grad_y_dot is None else self.backward_unchecked(grad_y_dot)


#: The built-in layers by class name, for :func:`layer_from_config`.
BUILTIN_LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Activation, LeakyReLU, ReLU, Tanh, Sigmoid, BatchNorm, Dropout)
}


def builtin_layers() -> dict[str, type[Layer]]:
    """Every layer minigan ships, by class name: :data:`BUILTIN_LAYERS` and the conditional
    layers of :mod:`minigan.conditional.layers` (imported here, not at the top: they
    build on :class:`Layer`)."""
    from .conditional.layers import CONDITIONAL_LAYERS

    return {**BUILTIN_LAYERS, **CONDITIONAL_LAYERS}


#: Layer classes of your own registered with :func:`register_layer`, by class name.
REGISTERED_LAYERS: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer of your own known to :func:`layer_from_config`, so
    that runs holding it load by name (also from the command line, after
    ``minigan ... --import your_module``). The class must implement ``get_config``."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer takes a Layer subclass, got {cls!r}")
    if cls.__name__ in builtin_layers():
        raise ValueError(f"{cls.__name__} is the name of a built-in layer; give your class another name")
    REGISTERED_LAYERS[cls.__name__] = cls
    return cls


def layer_config(layer: Layer) -> dict[str, Any]:
    """``{"class": name, "config": layer.get_config()}``: one layer as JSON-compatible values."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(spec: Any, custom_layers: dict[str, type[Layer]] | None = None) -> Layer:
    """Rebuild a layer from :func:`layer_config`'s output (weights fresh; load them after).

    Parameters
    ----------
    spec : dict with "class" and "config"
    custom_layers : dict of class name -> Layer subclass, optional
        Your own layer classes, for models that hold them (each must implement
        ``get_config`` and accept its output as keyword arguments); classes
        registered with :func:`register_layer` are found without it.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"a layer spec must be a dict with 'class' (str) and 'config' (dict), got {spec!r:.80}")
    classes = {**builtin_layers(), **REGISTERED_LAYERS, **(custom_layers or {})}
    name = spec["class"]
    if name not in classes:
        raise ValueError(
            f"the model holds a layer of class {name!r}, which is not a built-in minigan layer; decorate your "
            f"class with @minigan.register_layer (on the command line: --import the module defining it) or "
            f"pass custom_layers={{{name!r}: {name}}} to load it"
        )
    config = dict(spec["config"])
    cls = classes[name]
    if "rng" in _init_parameters(cls):
        config.setdefault("rng", 0)  # the weights are loaded afterwards: a fixed seed keeps this cheap and quiet
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"cannot rebuild layer {name} from its config {spec['config']}: {exc}") from None


def _init_parameters(cls: type) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(cls.__init__).parameters)
