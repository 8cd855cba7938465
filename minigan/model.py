"""Sequential: a stack of layers run in order, with the fused fast path.

When a layer that declares ``fuses_activation`` (:class:`~minigan.layers.Dense`)
is directly followed by one that declares ``fusable`` (the built-in activations),
Sequential runs the pair as one step: the matrix product (BLAS), then one kernel
sweep for bias + activation; backward forms the activation derivative and the
bias gradient in one sweep too. The numbers are the same as running the two
layers separately (``Sequential(layers, fuse=False)``) -- only faster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from . import kernels as K
from ._validation import check_float_array, check_shape, describe
from .layers import Activation, BatchNorm, Layer, layer_config, layer_from_config


@dataclass(frozen=True)
class Parameter:
    """One trainable tensor: ``value`` is the array in the layer's ``params`` and
    ``grad`` the array in its ``grads`` (the same objects, not copies)."""

    name: str
    value: np.ndarray
    grad: np.ndarray
    layer: Layer


class Sequential(Layer):
    """Layers applied in order: ``y = layers[-1](... layers[0](x))``.

    Parameters
    ----------
    layers : iterable of Layer
    fuse : bool
        Run each Dense + activation pair as one fused step (default True).

    Names
    -----
    Parameters and state are named ``"{index}.{name}"`` (``"0.W"``, ``"2.running_mean"``).

    Conditions
    ----------
    When a layer declares ``uses_condition`` (e.g. a class embedding), the model is
    conditional: ``forward(x, condition)`` hands the condition (an array with one
    entry per row, such as integer labels (N,)) to those layers.
    """

    def __init__(self, layers: Iterable[Layer], *, fuse: bool = True) -> None:
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one Layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a minigan Layer, got {describe(layer)}")
        seen: dict[int, int] = {}
        for i, layer in enumerate(layers):
            if id(layer) in seen:
                raise ValueError(
                    f"layers[{i}] is the same object as layers[{seen[id(layer)]}]; a layer caches its input for "
                    "backward, so each position needs its own layer object"
                )
            seen[id(layer)] = i
        dtypes = [(i, np.dtype(l.dtype)) for i, l in enumerate(layers) if getattr(l, "dtype", None) is not None]
        for i, dtype in dtypes[1:]:
            if dtype != dtypes[0][1]:
                raise TypeError(
                    f"layers[{i}] has dtype {dtype} but layers[{dtypes[0][0]}] has {dtypes[0][1]}; build every "
                    "layer with the same dtype (or convert with .astype)"
                )
        self.layers = layers
        self.fuse = bool(fuse)
        self._custom_input_shapes: dict[int, tuple[int, ...]] = {}
        self._check_feature_sizes()
        self._steps = self._plan()
        self._dtype = next((getattr(l, "dtype") for l in layers if hasattr(l, "dtype")), None)
        self._output: np.ndarray | None = None

    # -- structure ----------------------------------------------------------
    def _check_feature_sizes(self) -> None:
        features = None
        for i, layer in enumerate(self.layers):
            wanted = getattr(layer, "in_features", getattr(layer, "num_features", None))
            if features is not None and wanted is not None and wanted != features:
                raise ValueError(
                    f"layers[{i}] ({layer!r}) expects {wanted} input features but the layers before it "
                    f"produce {features}"
                )
            if features is None:
                features = wanted
            if features is not None:
                features = layer.output_features(features)

    @property
    def in_features(self) -> int | None:  # type: ignore[override]
        """Input feature count, when the first layer fixes it (Dense, BatchNorm), else None."""
        first = self.layers[0]
        return getattr(first, "in_features", getattr(first, "num_features", None))

    @property
    def rows_independent(self) -> bool:  # type: ignore[override]
        """True when every layer declares ``rows_independent`` (no batch statistics):
        then one pass over stacked batches computes exactly what separate passes would."""
        return all(layer.rows_independent for layer in self.layers)

    @property
    def uses_condition(self) -> bool:  # type: ignore[override]
        """True when some layer takes a condition (see the class docstring)."""
        return any(layer.uses_condition for layer in self.layers)

    def _plan(self) -> list[tuple[Layer, Activation | None]]:
        steps: list[tuple[Layer, Activation | None]] = []
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if self.fuse and layer.fuses_activation and isinstance(nxt, Activation) and nxt.fusable:
                steps.append((layer, nxt))
                i += 2
            else:
                steps.append((layer, None))
                i += 1
        return steps

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

    def output_features(self, in_features: int) -> int:
        for layer in self.layers:
            in_features = layer.output_features(in_features)
        return in_features

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the first layer that has one (float32 or float64)."""
        return self._dtype

    # -- modes and gradients ----------------------------------------------------
    def train(self) -> "Sequential":
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self) -> "Sequential":
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def parameters(self) -> list[Parameter]:
        """Every trainable tensor, in layer order, as :class:`Parameter` objects."""
        return [
            Parameter(f"{i}.{name}", value, layer.grads[name], layer)
            for i, layer in enumerate(self.layers)
            for name, value in layer.params.items()
        ]

    def num_params(self) -> int:
        return int(sum(layer.num_params() for layer in self.layers))

    @property
    def params(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {p.name: p.value for p in self.parameters()}

    @params.setter
    def params(self, value: Any) -> None:  # Layer.__init__ assigns an empty dict
        pass

    @property
    def grads(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {p.name: p.grad for p in self.parameters()}

    @grads.setter
    def grads(self, value: Any) -> None:
        pass

    @property
    def buffers(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers) for name, value in layer.buffers.items()}

    @buffers.setter
    def buffers(self, value: Any) -> None:
        pass

    def astype(self, dtype: Any) -> "Sequential":
        return Sequential([layer.astype(dtype) for layer in self.layers], fuse=self.fuse)

    # -- computation ----------------------------------------------------------
    def forward(self, x: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        """Run every layer on x: (N, in_features) -> (N, out_features).

        ``condition`` (an array with N entries, e.g. integer labels) is required by a
        conditional model and refused by any other.
        """
        x = check_float_array(x, "x", ndim=2, dtype=self._dtype)
        if self.in_features is not None and x.shape[1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features (columns), got shape {x.shape}")
        for layer in self.layers:
            if isinstance(layer, BatchNorm) and layer.training and x.shape[0] < 2:
                raise ValueError(
                    f"x must hold at least 2 samples in training mode (the model has BatchNorm), got shape "
                    f"{x.shape}; call eval() first to run single samples"
                )
        self.check_condition(condition, x.shape[0])
        return self.forward_unchecked(x, condition)

    def check_condition(self, condition: Any, n: int, name: str = "condition") -> None:
        """Raise a clear error unless ``condition`` fits this model and a batch of ``n`` rows."""
        if not self.uses_condition:
            if condition is not None:
                raise ValueError(f"this model takes no {name} (none of its layers uses one), got {describe(condition)}")
            return
        if condition is None:
            users = [f"layers[{i}] {layer!r}" for i, layer in enumerate(self.layers) if layer.uses_condition]
            raise ValueError(f"this model is conditional ({', '.join(users)}): pass {name}= with one entry per row")
        if not isinstance(condition, np.ndarray) or condition.ndim < 1 or condition.shape[0] != n:
            raise ValueError(f"{name} must be an array with one entry per row ({n}), got {describe(condition)}")
        self.validate_condition(condition, name)

    def validate_condition(self, condition: Any, name: str = "condition") -> None:
        """Every conditional layer's check of ``condition`` (a model nested in another)."""
        for layer in self.layers:
            if layer.uses_condition:
                layer.validate_condition(condition, name)

    def forward_unchecked(self, x: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        """:meth:`forward` without the checks, for callers that validated ``x`` (and the
        condition) once, such as the GAN loop."""
        for index, (layer, activation) in enumerate(self._steps):
            if activation is not None:
                x = layer.forward_unchecked(x, activation)  # type: ignore[call-arg]
            elif layer.unchecked:
                x = layer.forward_unchecked(x, condition) if layer.uses_condition else layer.forward_unchecked(x)
            else:
                x = self._run_custom(index, layer, x, condition)
        self._output = x
        return x

    def _run_custom(self, index: int, layer: Layer, x: np.ndarray, condition: np.ndarray | None) -> np.ndarray:
        """A user's layer: call its public forward and check what it returns, because the
        compiled kernels after it trust their inputs' shapes (no bounds checks)."""
        y = layer.forward(x, condition) if layer.uses_condition else layer.forward(x)  # type: ignore[call-arg]
        expected = layer.output_features(x.shape[1])
        if not isinstance(y, np.ndarray) or y.ndim != 2 or y.shape[0] != x.shape[0] or y.dtype != x.dtype:
            raise ValueError(
                f"layers[{self.layers.index(layer)}] ({layer!r}).forward must return a {x.dtype} array of shape "
                f"({x.shape[0]}, {expected}), got {describe(y)}"
            )
        if y.shape[1] != expected:
            raise ValueError(
                f"layers[{self.layers.index(layer)}] ({layer!r}) returned {y.shape[1]} features but its "
                f"output_features({x.shape[1]}) says {expected}; override output_features in your layer"
            )
        self._custom_input_shapes[index] = x.shape
        return np.ascontiguousarray(y)

    def backward(
        self, grad_y: np.ndarray, *, param_grads: bool = True, accumulate: bool = True, input_grad: bool = True
    ) -> np.ndarray | None:
        """Backpropagate ``grad_y`` (N, out_features) through every layer.

        Parameters
        ----------
        grad_y : ndarray (N, out_features)
            dL/d(output of the last forward).
        param_grads : bool
            Compute parameter gradients (default). ``False`` only propagates to the
            input -- what the generator step of a GAN needs from the frozen
            discriminator -- and leaves ``grads`` untouched.
        accumulate : bool
            Add into ``grads`` (default, the Layer contract). ``False`` overwrites them,
            which equals ``zero_grad()`` then ``backward`` without the extra sweep.
        input_grad : bool
            Compute dL/dx for the model's input (skip it when nobody uses it).

        Returns
        -------
        ndarray (N, in_features), or None when ``input_grad`` is False.
        """
        if self._output is None:
            raise RuntimeError("Sequential.backward() called before forward(): run forward first")
        grad_y = check_float_array(grad_y, "grad_y", dtype=self._output.dtype)
        check_shape(grad_y, self._output.shape, "grad_y (the gradient of the model's output)")
        mode = (K.GRAD_ADD if accumulate else K.GRAD_WRITE) if param_grads else K.GRAD_SKIP
        return self.backward_unchecked(grad_y, mode, input_grad)

    def backward_unchecked(
        self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD, input_grad: bool = True
    ) -> np.ndarray | None:
        """:meth:`backward` without the checks; ``grad_mode`` is ``kernels.GRAD_ADD``,
        ``GRAD_WRITE`` or ``GRAD_SKIP`` (see :class:`~minigan.layers.Layer`).

        Without ``input_grad`` the pass stops at the first layer that has parameters:
        below it no gradient is needed (e.g. a conditional generator's label code,
        joined to the noise by a layer without parameters)."""
        g: np.ndarray | None = grad_y
        stop = 0 if input_grad else self._first_trainable_step()
        for index in range(len(self._steps) - 1, stop - 1, -1):
            layer, activation = self._steps[index]
            if layer.fuses_activation:
                g = layer.backward_unchecked(g, grad_mode, activation,  # type: ignore[call-arg]
                                             input_grad or index > stop)
            else:
                g = layer.backward_unchecked(g, grad_mode)
                if index in self._custom_input_shapes:
                    shape = self._custom_input_shapes[index]
                    if not isinstance(g, np.ndarray) or g.shape != shape or g.dtype != grad_y.dtype:
                        raise ValueError(
                            f"{layer!r}.backward must return the input gradient as a {grad_y.dtype} array of "
                            f"shape {shape}, got {describe(g)}"
                        )
                    g = np.ascontiguousarray(g)
        return g

    def _first_trainable_step(self) -> int:
        """The index of the first step (a layer, or a fused pair) that has parameters."""
        for index, (layer, activation) in enumerate(self._steps):
            if layer.params or (activation is not None and activation.params):
                return index
        return len(self._steps)

    # -- second order (gradient penalties; see minigan.layers.Layer) --------------
    def _input_shape_of_custom(self, layer_index: int) -> tuple[int, ...] | None:
        """The input shape a user's layer saw in the last forward (None for a built-in layer)."""
        step = 0
        for index in range(layer_index):
            layer, activation = self._steps[step]
            if activation is None or self.layers[index] is activation:
                step += 1
        return self._custom_input_shapes.get(step)

    def _checked(self, index: int, layer: Layer, value: Any, shape: tuple[int, ...], dtype: np.dtype,
                 what: str, allow_none: bool = False) -> np.ndarray | None:
        """What a user's layer returned in a backward or second-order pass, checked before
        the compiled kernels after it trust its shape."""
        if value is None and allow_none:
            return None
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
            raise ValueError(f"layers[{index}] ({layer!r}).{what} must return a {dtype} array of shape {shape}"
                             f"{' or None' if allow_none else ''}, got {describe(value)}")
        return np.ascontiguousarray(value)

    def backward_layers(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_SKIP) -> list[np.ndarray]:
        """Backpropagate ``grad_y`` layer by layer (unfused) and keep every intermediate gradient.

        Returns a list of ``len(layers) + 1`` arrays: entry ``i`` is the gradient with
        respect to the input of ``layers[i]`` (entry 0: the model's input gradient), the
        last is ``grad_y``. The second-order pass differentiates these. Parameter
        gradients follow ``grad_mode`` (default ``GRAD_SKIP``: left alone). No checks.
        """
        grads: list[np.ndarray] = [grad_y] * (len(self.layers) + 1)
        g = grad_y
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            g = layer.backward_unchecked(g, grad_mode)
            if not layer.unchecked:
                shape = self._input_shape_of_custom(index)
                if shape is not None:
                    g = self._checked(index, layer, g, shape, grad_y.dtype, "backward")
            grads[index] = g
        return grads

    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """Carry the input perturbation ``x_dot`` (N, in_features) through the last forward
        pass: returns ``y_dot`` (N, out_features) and leaves in every layer what
        :meth:`tangent_backward` needs (see :class:`~minigan.layers.Layer`)."""
        for index, layer in enumerate(self.layers):
            y_dot = layer.tangent_forward(x_dot)
            if not layer.unchecked:
                shape = (x_dot.shape[0], layer.output_features(x_dot.shape[1]))
                y_dot = self._checked(index, layer, y_dot, shape, x_dot.dtype, "tangent_forward")
            x_dot = y_dot
        return x_dot

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None, grad_mode: int = K.GRAD_ADD,
                         *, layer_grads: list[np.ndarray] | None = None) -> np.ndarray | None:
        """The tangent of the backward pass of ``grad_y`` (N, out_features) along the
        perturbation given to :meth:`tangent_forward` (and ``grad_y_dot``, None for zero).

        Every layer puts the tangents of its parameter gradients into ``grads`` by
        ``grad_mode`` (added by default); returns the tangent of the input gradient
        (N, in_features) or None where it is zero. ``layer_grads``: the output of
        :meth:`backward_layers` for ``grad_y``, if the caller has it (else recomputed).
        """
        if layer_grads is None:
            layer_grads = self.backward_layers(grad_y)
        g_dot = grad_y_dot
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            g_dot = layer.tangent_backward(layer_grads[index + 1], g_dot, grad_mode)
            if not layer.unchecked:
                reference = layer_grads[index]
                g_dot = self._checked(index, layer, g_dot, reference.shape, reference.dtype, "tangent_backward",
                                      allow_none=True)
        return g_dot

    def cache_state(self) -> dict[str, Any]:
        """What ``backward`` needs from the last forward of every layer (by reference).

        With :meth:`restore_cache` two forward passes can each be backpropagated later:
        ``forward(a); s = cache_state(); forward(b); backward(gb); restore_cache(s); backward(ga)``.
        """
        return {"output": self._output, "custom_shapes": dict(self._custom_input_shapes),
                "layers": [layer.cache_state() for layer in self.layers]}

    def restore_cache(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`cache_state` took."""
        self._output = state["output"]
        self._custom_input_shapes = dict(state["custom_shapes"])
        for layer, layer_state in zip(self.layers, state["layers"]):
            layer.restore_cache(layer_state)

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed ``"{index}.{name}"``."""
        state = {name: value.copy() for name, value in self.params.items()}
        state.update({name: value.copy() for name, value in self.buffers.items()})
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy arrays from ``state`` into the model (in place), after checking that the
        keys, shapes and values fit. Nothing is changed if any check fails."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict of name -> array, got {describe(state)}")
        targets = {**self.params, **self.buffers}
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise ValueError(
                f"state does not fit this model: missing keys {missing[:6]}, unexpected keys {unexpected[:6]}"
            )
        converted = {}
        for name, target in targets.items():
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"state[{name!r}] must have shape {target.shape}, got {value.shape}")
            if value.dtype.kind != "f":
                raise TypeError(f"state[{name!r}] must be a float array, got dtype {value.dtype}")
            if not np.isfinite(value).all():
                raise ValueError(f"state[{name!r}] holds NaN or inf values")
            converted[name] = value
        for name, target in targets.items():
            target[...] = converted[name]

    def get_config(self) -> dict[str, Any]:
        """The model as JSON-compatible values: ``{"layers": [layer specs], "fuse": bool}``
        (no weights; see :meth:`from_config`)."""
        return {"layers": [layer_config(layer) for layer in self.layers], "fuse": self.fuse}

    @classmethod
    def from_config(cls, config: Any, custom_layers: dict[str, type[Layer]] | None = None) -> "Sequential":
        """Rebuild a model from :meth:`get_config` (fresh weights: load a state after)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"a model config must be a dict with a 'layers' list, got {config!r:.80}")
        layers = [layer_from_config(spec, custom_layers) for spec in config["layers"]]
        return cls(layers, fuse=bool(config.get("fuse", True)))

    def summary(self, batch_size: int | None = None) -> str:
        """A table of layers with their output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        features = self.in_features
        for i, layer in enumerate(self.layers):
            if features is not None:
                features = layer.output_features(features)
            shape = f"({batch_size if batch_size else 'N'}, {features if features is not None else '?'})"
            rows.append((str(i), repr(layer), shape, f"{layer.num_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) if c < 3 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))) for r in rows]
        rule = "-" * len(lines[0])
        total = f"Total trainable parameters: {self.num_params():,}"
        return "\n".join([lines[0], rule, *lines[1:], rule, total])
