"""Sequential: a stack of layers run in order, with the fused fast path.

When a :class:`~minigan.layers.Dense` is directly followed by an activation,
Sequential runs the pair as one step: the matrix product (BLAS), then one
kernel sweep for bias + activation; backward forms the activation derivative
and the bias gradient in one sweep too. The numbers are the same as running the
two layers separately (``Sequential(layers, fuse=False)``) -- only faster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from . import kernels as K
from ._validation import check_float_array, check_shape, describe
from .layers import Activation, BatchNorm, Dense, Layer


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
        self._in_features = self._first_in_features()
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

    def _first_in_features(self) -> int | None:
        first = self.layers[0]
        return getattr(first, "in_features", getattr(first, "num_features", None))

    def _plan(self) -> list[tuple[Layer, Activation | None]]:
        steps: list[tuple[Layer, Activation | None]] = []
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if (
                self.fuse
                and type(layer) is Dense
                and isinstance(nxt, Activation)
                and type(nxt)._forward is Activation._forward
            ):
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
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run every layer on x: (N, in_features) -> (N, out_features)."""
        x = check_float_array(x, "x", ndim=2, dtype=self._dtype)
        if self._in_features is not None and x.shape[1] != self._in_features:
            raise ValueError(f"x must have {self._in_features} features (columns), got shape {x.shape}")
        for layer in self.layers:
            if isinstance(layer, BatchNorm) and layer.training and x.shape[0] < 2:
                raise ValueError(
                    f"x must hold at least 2 samples in training mode (the model has BatchNorm), got shape "
                    f"{x.shape}; call eval() first to run single samples"
                )
        return self._forward(x)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for index, (layer, activation) in enumerate(self._steps):
            if activation is not None:
                x = layer._forward(x, activation)  # type: ignore[call-arg]
            elif _is_builtin(layer):
                x = layer._forward(x)
            else:
                x = self._run_custom(index, layer, x)
        self._output = x
        return x

    def _all_rows_independent(self) -> bool:
        """True when every layer is a built-in one that treats the rows of a batch
        independently (no BatchNorm, no custom layer): then one pass over stacked
        batches computes exactly what separate passes would."""
        return all(_is_builtin(layer) and layer._rows_independent for layer in self.layers)

    def _run_custom(self, index: int, layer: Layer, x: np.ndarray) -> np.ndarray:
        """A user's layer: call its public forward and check what it returns, because the
        compiled kernels after it trust their inputs' shapes (no bounds checks)."""
        y = layer.forward(x)
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
        return self._backward(grad_y, mode, input_grad)

    def _backward(self, grad_y: np.ndarray, grad_mode: int = K.GRAD_ADD, input_grad: bool = True) -> np.ndarray | None:
        g: np.ndarray | None = grad_y
        for index in range(len(self._steps) - 1, -1, -1):
            layer, activation = self._steps[index]
            if isinstance(layer, Dense) and _is_builtin(layer):
                g = layer._backward(g, grad_mode, activation, input_grad or index > 0)
            else:
                g = layer._backward(g, grad_mode)
                if index in self._custom_input_shapes:
                    shape = self._custom_input_shapes[index]
                    if not isinstance(g, np.ndarray) or g.shape != shape or g.dtype != grad_y.dtype:
                        raise ValueError(
                            f"{layer!r}.backward must return the input gradient as a {grad_y.dtype} array of "
                            f"shape {shape}, got {describe(g)}"
                        )
                    g = np.ascontiguousarray(g)
        return g

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

    def summary(self, batch_size: int | None = None) -> str:
        """A table of layers with their output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        features = self._in_features
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


def _is_builtin(layer: Layer) -> bool:
    """True for minigan's own layers, whose unchecked ``_forward``/``_backward`` Sequential may call.
    A user's subclass (even of a built-in layer) goes through its public methods instead."""
    return type(layer).__module__ in ("minigan.layers", "minigan.model")
