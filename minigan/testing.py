"""Hypothesis strategies for property-testing layers, losses and gradients.

minigan's own tests use these, and so can you for a layer of your own::

    from hypothesis import given, settings
    import minigan as mg
    from minigan import testing as mgt

    @settings(deadline=None, max_examples=25)
    @given(mgt.inputs_for(features=3))
    def test_my_layer_gradients(x):
        mg.gradcheck(MyLayer(3), x)

Arrays are "well-conditioned": finite, of moderate magnitude, and (with
``min_abs``) kept away from 0 so that the kinks of ReLU-like functions do not
sit inside a finite-difference step.

Requires ``hypothesis``: ``pip install "minigan[test]"`` (the plain install leaves it out).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError:  # a plain install has no hypothesis: say what to install
    raise ImportError(
        'minigan.testing needs the hypothesis package, which the plain install leaves out: '
        'pip install "minigan[test]" (or pip install hypothesis)'
    ) from None

from .layers import BatchNorm, Dense, Dropout, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import BCE, BCEWithLogits, Hinge, Loss, MSE, Wasserstein

__all__ = [
    "batch_sizes", "feature_sizes", "shapes", "seeds", "well_conditioned_arrays", "inputs_for",
    "activations", "layers_with_inputs", "losses_with_inputs", "dtypes",
    "second_order_layers_with_inputs", "discriminators_with_inputs", "kink_margin",
    "class_labels", "conditional_layers_with_inputs", "conditional_discriminators_with_inputs",
]


def batch_sizes(min_value: int = 2, max_value: int = 8) -> st.SearchStrategy[int]:
    """Batch sizes (BatchNorm needs at least 2)."""
    return st.integers(min_value, max_value)


def feature_sizes(min_value: int = 1, max_value: int = 6) -> st.SearchStrategy[int]:
    """Feature counts, small enough for finite differences over every entry."""
    return st.integers(min_value, max_value)


def shapes(min_batch: int = 2, max_batch: int = 8, min_features: int = 1, max_features: int = 6) -> st.SearchStrategy[tuple[int, int]]:
    """2-D input shapes ``(batch, features)``."""
    return st.tuples(batch_sizes(min_batch, max_batch), feature_sizes(min_features, max_features))


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``numpy.random.default_rng``."""
    return st.integers(0, 2**32 - 1)


def dtypes() -> st.SearchStrategy[np.dtype]:
    """float32 or float64."""
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def well_conditioned_arrays(
    shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]],
    *,
    dtype: Any = np.float64,
    scale: float = 2.0,
    min_abs: float = 0.0,
) -> st.SearchStrategy[np.ndarray]:
    """Arrays drawn as ``sign * (min_abs + |N(0, scale)|)`` from a hypothesis-chosen seed.

    Drawing from a seed (rather than element by element) keeps shrinking cheap and
    the values realistic; ``min_abs > 0`` keeps every entry away from zero.
    Rows are distinct with probability 1, so batch statistics are well defined.
    """
    shape_strategy = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))

    def build(args: tuple[tuple[int, ...], int]) -> np.ndarray:
        the_shape, seed = args
        rng = np.random.default_rng(seed)
        magnitude = min_abs + np.abs(rng.normal(0.0, scale, size=the_shape))
        sign = np.where(rng.random(the_shape) < 0.5, -1.0, 1.0)
        return (sign * magnitude).astype(dtype)

    return st.tuples(shape_strategy, seeds()).map(build)


def inputs_for(features: int, *, dtype: Any = np.float64, min_abs: float = 0.05) -> st.SearchStrategy[np.ndarray]:
    """Inputs ``(batch, features)`` for a layer with ``features`` inputs."""
    return well_conditioned_arrays(batch_sizes().map(lambda n: (n, features)), dtype=dtype, min_abs=min_abs)


def activations() -> st.SearchStrategy[Layer]:
    """One of the built-in activation layers."""
    return st.one_of(
        st.floats(0.0, 0.5).map(LeakyReLU), st.builds(ReLU), st.builds(Tanh), st.builds(Sigmoid)
    )


def _dense(in_features: int, out_features: int, seed: int, dtype: Any) -> Dense:
    return Dense(in_features, out_features, dtype=dtype, rng=seed)


def layers_with_inputs(dtype: Any = np.float64) -> st.SearchStrategy[tuple[Layer, np.ndarray]]:
    """A built-in layer (Dense, an activation, BatchNorm in train or eval mode, Dropout)
    together with a fitting input ``(batch, features)``."""

    @st.composite
    def build(draw: Callable) -> tuple[Layer, np.ndarray]:
        batch = draw(batch_sizes())
        features = draw(feature_sizes())
        seed = draw(seeds())
        kind = draw(st.sampled_from(["dense", "activation", "batchnorm", "batchnorm-eval", "dropout"]))
        if kind == "dense":
            layer: Layer = _dense(features, draw(feature_sizes()), seed, dtype)
        elif kind == "activation":
            layer = draw(activations())
        elif kind.startswith("batchnorm"):
            layer = BatchNorm(features, momentum=draw(st.floats(0.0, 0.99)), eps=draw(st.floats(1e-3, 1e-1)), dtype=dtype)
            rng = np.random.default_rng(seed)
            layer.buffers["running_mean"][...] = rng.normal(size=features)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, size=features)
            if kind == "batchnorm-eval":
                layer.eval()
        else:
            layer = Dropout(draw(st.floats(0.0, 0.9)), rng=seed)
        x = draw(well_conditioned_arrays((batch, features), dtype=dtype, min_abs=0.05))
        return layer, x

    return build()


def losses_with_inputs(dtype: Any = np.float64) -> st.SearchStrategy[tuple[Loss, np.ndarray, np.ndarray]]:
    """A loss with a prediction ``(batch, 1)`` and a fitting target of the same shape.

    Predictions for BCE are probabilities inside (0.01, 0.99); hinge predictions stay
    away from the margin points +-1 where the loss has a kink.
    """

    @st.composite
    def build(draw: Callable) -> tuple[Loss, np.ndarray, np.ndarray]:
        batch = draw(batch_sizes(1, 8))
        rng = np.random.default_rng(draw(seeds()))
        name = draw(st.sampled_from(["bce_logits", "bce", "mse", "hinge", "wasserstein"]))
        shape = (batch, 1)
        if name == "bce_logits":
            loss: Loss = BCEWithLogits(label_smoothing=draw(st.floats(0.0, 0.3)))
            pred = rng.normal(0, 3, shape)
            target = rng.random(shape)
        elif name == "bce":
            loss = BCE()
            pred = rng.uniform(0.01, 0.99, shape)
            target = rng.random(shape)
        elif name == "mse":
            loss = MSE()
            pred = rng.normal(0, 2, shape)
            target = rng.normal(0, 2, shape)
        else:
            loss = Hinge() if name == "hinge" else Wasserstein()
            target = rng.integers(0, 2, shape).astype(np.float64)
            pred = rng.normal(0, 2, shape)
            near_kink = np.abs(np.abs(pred) - 1.0) < 0.05
            pred[near_kink] += 0.2
        return loss, pred.astype(dtype), target.astype(dtype)

    return build()


# --------------------------------------------------------------------------- second order
def second_order_layers_with_inputs(dtype: Any = np.float64) -> st.SearchStrategy[tuple[Layer, np.ndarray]]:
    """A built-in layer with a second-order pass (Dense, an activation, BatchNorm in eval
    mode, Dropout in training or eval mode) and a fitting input, for
    :func:`minigan.gradcheck_second_order`. Inputs stay 0.05 away from 0 (the ReLU kink)."""

    @st.composite
    def build(draw: Callable) -> tuple[Layer, np.ndarray]:
        batch = draw(batch_sizes(1, 6))
        features = draw(feature_sizes(1, 5))
        seed = draw(seeds())
        kind = draw(st.sampled_from(["dense", "activation", "batchnorm-eval", "dropout", "dropout-eval"]))
        if kind == "dense":
            layer: Layer = _dense(features, draw(feature_sizes(1, 5)), seed, dtype)
            rng = np.random.default_rng(seed)
            layer.params["b"][...] = rng.normal(size=layer.params["b"].shape)
        elif kind == "activation":
            layer = draw(activations())
        elif kind == "batchnorm-eval":
            layer = _batchnorm_eval(features, seed, dtype)
        else:
            layer = Dropout(draw(st.floats(0.0, 0.9)), rng=seed)
            if kind == "dropout-eval":
                layer.eval()
        x = draw(well_conditioned_arrays((batch, features), dtype=dtype, min_abs=0.05))
        return layer, x

    return build()


def _batchnorm_eval(features: int, seed: int, dtype: Any) -> BatchNorm:
    layer = BatchNorm(features, dtype=dtype)
    rng = np.random.default_rng(seed)
    layer.buffers["running_mean"][...] = rng.normal(size=features)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, size=features)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=features)
    layer.params["beta"][...] = rng.normal(size=features)
    return layer.eval()


def kink_margin(model: Any, x: np.ndarray, condition: Any = None) -> float:
    """The smallest ``|input|`` of any (leaky) ReLU in ``model``'s forward pass on ``x``:
    how far the batch is from the kinks where the second derivative does not exist
    (``inf`` without such layers). Random streams and buffers are left as they were,
    so the next forward draws the same Dropout masks this one did."""
    from .model import Sequential

    layers = model.layers if isinstance(model, Sequential) else [model]
    generators = [layer.rng for layer in layers if isinstance(getattr(layer, "rng", None), np.random.Generator)]
    states = [g.bit_generator.state for g in generators]
    buffers = [(layer, {k: v.copy() for k, v in layer.buffers.items()}) for layer in layers]
    margin = np.inf
    h = x
    try:
        for layer in layers:
            if isinstance(layer, (ReLU, LeakyReLU)):
                margin = min(margin, float(np.abs(h).min()))
            h = layer.forward(h, condition) if layer.uses_condition else layer.forward(h)
    finally:
        for g, state in zip(generators, states):
            g.bit_generator.state = state
        for layer, saved in buffers:
            for k, v in saved.items():
                layer.buffers[k][...] = v
    return margin


def discriminators_with_inputs(dtype: Any = np.float64, *, min_margin: float = 1e-3,
                               max_hidden: int = 3) -> st.SearchStrategy[tuple[Any, np.ndarray]]:
    """A small random discriminator ``Sequential`` and an input batch for gradient-penalty checks.

    The network is 1 to ``max_hidden`` blocks ``Dense -> activation [-> BatchNorm (eval)]
    [-> Dropout (training mode)]`` and a final ``Dense(., 1)``, with random biases. Examples
    whose forward pass comes within ``min_margin`` of a (leaky) ReLU kink are rejected
    (:func:`kink_margin`), so finite differences never straddle one.
    """
    from .model import Sequential

    @st.composite
    def build(draw: Callable) -> tuple[Any, np.ndarray]:
        seed = draw(seeds())
        rng = np.random.default_rng(seed)
        batch = draw(batch_sizes(1, 6))
        width = draw(feature_sizes(1, 5))
        layers: list[Layer] = []
        for _ in range(draw(st.integers(1, max_hidden))):
            out = draw(feature_sizes(1, 5))
            dense = _dense(width, out, int(rng.integers(2**32)), dtype)
            dense.params["b"][...] = rng.normal(0.0, 0.5, size=out)
            layers += [dense, draw(activations())]
            if draw(st.booleans()):
                layers.append(_batchnorm_eval(out, int(rng.integers(2**32)), dtype))
            if draw(st.booleans()):
                layers.append(Dropout(draw(st.floats(0.0, 0.6)), rng=int(rng.integers(2**32))))
            width = out
        layers.append(_dense(width, 1, int(rng.integers(2**32)), dtype))
        model = Sequential(layers)
        x = draw(well_conditioned_arrays((batch, layers[0].in_features), dtype=dtype))
        return model, x

    return build().filter(lambda pair: kink_margin(*pair) >= min_margin)


# --------------------------------------------------------------------------- conditions (class labels)
def class_labels(n: int, num_classes: int) -> st.SearchStrategy[np.ndarray]:
    """``n`` integer labels in ``0 .. num_classes - 1`` (int64), repeats likely, so that an
    embedding row used by several rows of a batch (a scatter-add) is exercised."""
    return st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n).map(
        lambda values: np.asarray(values, dtype=np.int64))


def _conditional_layer(kind: str, features: int, num_classes: int, embedding_dim: int, seed: int,
                       dtype: Any) -> Layer:
    from .conditional.layers import ConditionalBatchNorm, LabelConcat, Projection

    if kind.startswith("batchnorm"):
        rng = np.random.default_rng(seed)
        layer = ConditionalBatchNorm(features, num_classes, dtype=dtype)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=layer.params["gamma"].shape)
        layer.params["beta"][...] = rng.normal(size=layer.params["beta"].shape)
        layer.buffers["running_mean"][...] = rng.normal(size=features)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, size=features)
        return layer.eval() if kind == "batchnorm-eval" else layer
    if kind == "projection":
        layer: Layer = Projection(features, num_classes, dtype=dtype, rng=seed)
        layer.params["b"][...] = np.random.default_rng(seed).normal()
        return layer
    return LabelConcat(features, num_classes, embedding_dim=None if kind == "one-hot" else embedding_dim,
                       dtype=dtype, rng=seed)


def conditional_layers_with_inputs(dtype: Any = np.float64
                                   ) -> st.SearchStrategy[tuple[Layer, np.ndarray, np.ndarray]]:
    """A conditional layer -- :class:`~minigan.conditional.LabelConcat` with a learned
    embedding or one-hot, :class:`~minigan.conditional.Projection`, or
    :class:`~minigan.conditional.ConditionalBatchNorm` in training or evaluation mode --
    with a fitting input ``(batch, features)`` and labels ``(batch,)``, for
    :func:`minigan.gradcheck` and :func:`minigan.gradcheck_second_order`
    (``condition=labels``; the second-order pass only for a layer whose ``training``
    is False or that has no batch statistics)."""

    @st.composite
    def build(draw: Callable) -> tuple[Layer, np.ndarray, np.ndarray]:
        kind = draw(st.sampled_from(["embedding", "one-hot", "projection", "batchnorm", "batchnorm-eval"]))
        batch = draw(batch_sizes(2 if kind == "batchnorm" else 1, 7))
        features = draw(feature_sizes(1, 5))
        num_classes = draw(st.integers(1, 4))
        layer = _conditional_layer(kind, features, num_classes, draw(feature_sizes(1, 4)), draw(seeds()), dtype)
        x = draw(well_conditioned_arrays((batch, features), dtype=dtype))
        return layer, x, draw(class_labels(batch, num_classes))

    return build()


def conditional_discriminators_with_inputs(dtype: Any = np.float64, *, min_margin: float = 1e-3
                                           ) -> st.SearchStrategy[tuple[Any, np.ndarray, np.ndarray]]:
    """A small conditional discriminator and a labelled batch, for gradient-penalty checks.

    The label enters by concatenation (a learned or one-hot code before the first
    Dense) or by projection (the output layer), or both; in between are 1 or 2 blocks
    ``Dense -> activation [-> ConditionalBatchNorm (eval)]``. Examples within
    ``min_margin`` of a (leaky) ReLU kink are rejected (:func:`kink_margin`).
    """
    from .model import Sequential

    @st.composite
    def build(draw: Callable) -> tuple[Any, np.ndarray, np.ndarray]:
        seed = draw(seeds())
        rng = np.random.default_rng(seed)
        batch = draw(batch_sizes(1, 6))
        in_features = draw(feature_sizes(1, 4))
        num_classes = draw(st.integers(1, 4))
        entry = draw(st.sampled_from(["embedding", "one-hot", None]))
        project = entry is None or draw(st.booleans())
        layers: list[Layer] = []
        width = in_features
        if entry is not None:
            concat = _conditional_layer(entry, width, num_classes, draw(feature_sizes(1, 3)),
                                        int(rng.integers(2**32)), dtype)
            layers.append(concat)
            width = concat.output_features(width)
        for _ in range(draw(st.integers(1, 2))):
            out = draw(feature_sizes(1, 5))
            dense = _dense(width, out, int(rng.integers(2**32)), dtype)
            dense.params["b"][...] = rng.normal(0.0, 0.5, size=out)
            layers += [dense, draw(activations())]
            if draw(st.booleans()):
                layers.append(_conditional_layer("batchnorm-eval", out, num_classes, 0, int(rng.integers(2**32)),
                                                 dtype))
            width = out
        if project:
            layers.append(_conditional_layer("projection", width, num_classes, 0, int(rng.integers(2**32)), dtype))
        else:
            layers.append(_dense(width, 1, int(rng.integers(2**32)), dtype))
        model = Sequential(layers)
        x = draw(well_conditioned_arrays((batch, in_features), dtype=dtype))
        return model, x, draw(class_labels(batch, num_classes))

    return build().filter(lambda triple: kink_margin(*triple) >= min_margin)
