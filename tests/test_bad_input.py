"""Bad input gives a ValueError or TypeError naming the argument -- never a Numba error."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba.core.errors import NumbaError

import minigan as mg
from minigan import losses as L
from minigan import optim

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[1]


def raises(error: type[Exception] | tuple[type[Exception], ...], name: str, fn: Callable[..., Any], *args, **kwargs):
    """Call ``fn``; require ``error``, a message naming ``name``, and no Numba error type."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert not isinstance(exc, NumbaError), f"a Numba error escaped: {exc!r}"
    assert isinstance(exc, error), f"expected {error}, got {exc!r}"
    assert name in str(exc), f"the message does not name {name!r}: {exc}"
    return exc


def _x(shape=(4, 3), dtype=np.float32):
    return np.random.default_rng(0).normal(size=shape).astype(dtype)


def _model(dtype=np.float32):
    return mg.Sequential([mg.Dense(3, 5, dtype=dtype, rng=0), mg.LeakyReLU(), mg.BatchNorm(5, dtype=dtype),
                          mg.Dropout(0.2, rng=1), mg.Dense(5, 2, dtype=dtype, rng=2), mg.Tanh()])


# name -> factory of a float32 layer taking 3 features
LAYERS: dict[str, Callable[[], mg.Layer]] = {
    "dense": lambda: mg.Dense(3, 2, rng=0),
    "leaky_relu": lambda: mg.LeakyReLU(),
    "relu": mg.ReLU,
    "tanh": mg.Tanh,
    "sigmoid": mg.Sigmoid,
    "batchnorm": lambda: mg.BatchNorm(3),
    "dropout": lambda: mg.Dropout(0.5, rng=0),
    "sequential": _model,
}
WITH_FEATURES = ["dense", "batchnorm", "sequential"]
WITH_DTYPE = ["dense", "batchnorm", "sequential"]


# --------------------------------------------------------------------------- forward inputs
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("shape", [(3,), (2, 3, 1), ()])
def test_wrong_rank(name, shape):
    exc = raises(ValueError, "x", LAYERS[name]().forward, np.ones(shape, dtype=np.float32))
    assert "dimension" in str(exc)


@pytest.mark.parametrize("name", WITH_FEATURES)
def test_feature_mismatch_at_forward(name):
    exc = raises(ValueError, "x", LAYERS[name]().forward, _x((4, 7)))
    assert "3" in str(exc) and "(4, 7)" in str(exc)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex128, np.float16, object, "U3"])
def test_non_float_dtypes(name, dtype):
    x = np.ones((4, 3), dtype=dtype)
    exc = raises(TypeError, "x", LAYERS[name]().forward, x)
    assert "float" in str(exc)


@pytest.mark.parametrize("name", list(LAYERS))
def test_non_array_input(name):
    raises(TypeError, "x", LAYERS[name]().forward, "not an array")
    raises(TypeError, "x", LAYERS[name]().forward, None)


@pytest.mark.parametrize("name", WITH_DTYPE)
def test_float32_input_into_float64_layer_and_back(name):
    raises(TypeError, "x", LAYERS[name]().forward, _x(dtype=np.float64))  # the layers are float32
    layer64 = {"dense": lambda: mg.Dense(3, 2, dtype=np.float64), "batchnorm": lambda: mg.BatchNorm(3, dtype=np.float64),
               "sequential": lambda: _model(np.float64)}[name]()
    exc = raises(TypeError, "x", layer64.forward, _x(dtype=np.float32))
    assert "float64" in str(exc)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(name, bad):
    x = _x()
    x[1, 2] = bad
    exc = raises(ValueError, "x", LAYERS[name]().forward, x)
    assert "finite" in str(exc) or "NaN" in str(exc)


@pytest.mark.parametrize("name", list(LAYERS))
def test_empty_batch(name):
    raises(ValueError, "x", LAYERS[name]().forward, np.ones((0, 3), dtype=np.float32))


@pytest.mark.parametrize("make", [lambda: mg.BatchNorm(3), lambda: _model()])
def test_batchnorm_with_batch_of_one_in_training_mode(make):
    layer = make()
    exc = raises(ValueError, "x", layer.forward, _x((1, 3)))
    assert "2" in str(exc)
    layer.eval()
    assert layer.forward(_x((1, 3))).shape[0] == 1  # fine in eval mode


# --------------------------------------------------------------------------- backward inputs
@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_before_forward(name):
    raises((RuntimeError, ValueError), "forward", LAYERS[name]().backward, _x((4, 2)))


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("change", ["more features", "more rows", "1-D", "3-D"])
def test_gradient_of_wrong_shape(name, change):
    layer = LAYERS[name]()
    y = layer.forward(_x())
    n, f = y.shape
    shape = {"more features": (n, f + 6), "more rows": (n + 1, f), "1-D": (n,), "3-D": (n, f, 1)}[change]
    exc = raises(ValueError, "grad_y", layer.backward, np.ones(shape, dtype=np.float32))
    assert str((n, f)) in str(exc)


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradient_of_wrong_kind(name):
    layer = LAYERS[name]()
    y = layer.forward(_x())
    raises(TypeError, "grad_y", layer.backward, np.ones(y.shape, dtype=np.int64))
    raises(TypeError, "grad_y", layer.backward, np.ones(y.shape, dtype=np.complex64))
    g = np.ones(y.shape, dtype=np.float32)
    g[0, 0] = np.nan
    raises(ValueError, "grad_y", layer.backward, g)


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradient_dtype_must_match_the_output(name):
    """A float64 gradient for a float32 output is a mistake (like a float64 input to a float32 layer)."""
    layer = LAYERS[name]()
    y = layer.forward(_x())
    raises(TypeError, "grad_y", layer.backward, np.ones(y.shape, dtype=np.float64))


# --------------------------------------------------------------------------- construction
def test_feature_size_mismatch_between_layers():
    exc = raises(ValueError, "layers[2]", mg.Sequential, [mg.Dense(3, 4), mg.ReLU(), mg.Dense(5, 2)])
    assert "4" in str(exc) and "5" in str(exc)
    raises(ValueError, "layers[1]", mg.Sequential, [mg.Dense(3, 4), mg.BatchNorm(6)])
    raises(ValueError, "layers[1]", mg.Sequential, [mg.BatchNorm(3), mg.Dense(4, 2)])


def test_layers_of_different_dtypes_in_one_model():
    """A float64 BatchNorm after a float32 Dense would get float32 input: refuse the model
    (or at least the forward pass) instead of running with mixed precision."""
    model = None
    try:
        model = mg.Sequential([mg.Dense(3, 4, dtype=np.float32, rng=0), mg.BatchNorm(4, dtype=np.float64)])
    except (TypeError, ValueError) as exc:
        assert not isinstance(exc, NumbaError)
        assert "dtype" in str(exc) or "float" in str(exc)
        return
    raises((TypeError, ValueError), "float", model.forward, _x())


def test_empty_or_foreign_layer_list():
    raises(ValueError, "layers", mg.Sequential, [])
    raises(TypeError, "layers[1]", mg.Sequential, [mg.Dense(3, 4), "relu"])


def test_unknown_initializer():
    exc = raises(ValueError, "init", mg.Dense, 3, 4, init="glorot")
    assert "glorot_uniform" in str(exc)
    raises(ValueError, "init", mg.Dense, 3, 4, init=None)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_layer_sizes(value, error):
    raises(error, "in_features", mg.Dense, value, 4)
    raises(error, "out_features", mg.Dense, 3, value)
    raises(error, "num_features", mg.BatchNorm, value)


def test_dtype_and_rng_arguments():
    raises(TypeError, "dtype", mg.Dense, 3, 4, dtype=np.int32)
    raises(TypeError, "dtype", mg.BatchNorm, 3, dtype=np.float16)
    raises(TypeError, "dtype", mg.Dense, 3, 4, dtype="nonsense")
    raises(TypeError, "rng", mg.Dense, 3, 4, rng="seed")
    raises(ValueError, "rng", mg.Dense, 3, 4, rng=-1)
    raises(TypeError, "rng", mg.Dropout, 0.5, rng=1.5)


NON_FINITE = [math.nan, math.inf, -math.inf]
P = [mg.Dense(3, 2, rng=0)]


def _params():
    return mg.Sequential(P).parameters()


@pytest.mark.parametrize(
    "build, name, bad_values",
    [
        (lambda v: optim.Adam(_params(), lr=v), "lr", [-1e-3]),
        (lambda v: optim.SGD(_params(), lr=v), "lr", [-0.1]),
        (lambda v: optim.Adam(_params(), beta1=v), "beta1", [-0.1, 1.0, 1.5]),
        (lambda v: optim.Adam(_params(), beta2=v), "beta2", [-0.1, 1.0, 2.0]),
        (lambda v: optim.Adam(_params(), eps=v), "eps", [0.0, -1e-8]),
        (lambda v: optim.Adam(_params(), weight_decay=v), "weight_decay", [-1.0]),
        (lambda v: optim.SGD(_params(), lr=0.1, momentum=v), "momentum", [-0.5, 1.0]),
        (lambda v: optim.SGD(_params(), lr=0.1, weight_decay=v), "weight_decay", [-1.0]),
        (lambda v: mg.BatchNorm(3, momentum=v), "momentum", [-0.1, 1.0]),
        (lambda v: mg.BatchNorm(3, eps=v), "eps", [0.0, -1e-3]),
        (lambda v: mg.LeakyReLU(alpha=v), "alpha", [-0.2, 1.5]),
        (lambda v: mg.Dropout(v), "rate", [-0.1, 1.0, 1.5]),
        (lambda v: L.BCEWithLogits(label_smoothing=v), "label_smoothing", [-0.1, 1.0]),
        (lambda v: L.BCE(eps=v), "eps", [0.0, -1e-7, 0.5]),
    ],
)
def test_bad_hyperparameters(build, name, bad_values):
    for value in [*bad_values, *NON_FINITE]:
        raises(ValueError, name, build, value)
    raises(TypeError, name, build, "0.1")
    raises(TypeError, name, build, None)
    raises(TypeError, name, build, np.array([0.1, 0.2]))


def test_learning_rate_changed_to_nonsense_after_construction():
    opt = optim.Adam(_params())
    opt.lr = math.nan
    raises(ValueError, "lr", opt.step)


def test_optimizer_arguments():
    raises(ValueError, "params", optim.Adam, [])
    raises(TypeError, "params[0]", optim.SGD, [np.zeros(3)], lr=0.1)
    raises(ValueError, "nesterov", optim.SGD, _params(), lr=0.1, nesterov=True)
    params = _params()
    raises(ValueError, "params[1]", optim.Adam, [params[0], params[0]])


# --------------------------------------------------------------------------- losses
LOSSES = {
    "bce_logits": L.BCEWithLogits, "bce": L.BCE, "mse": L.MSE, "hinge": L.Hinge, "wasserstein": L.Wasserstein,
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_bad_inputs(name):
    loss = LOSSES[name]()
    pred = np.full((4, 1), 0.5)
    raises(ValueError, "pred", loss.forward, np.full((4, 1, 1), 0.5), 1.0)
    raises(TypeError, "pred", loss.forward, np.ones((4, 1), dtype=np.int64), 1.0)
    raises(TypeError, "pred", loss.forward, np.ones((4, 1), dtype=np.complex128), 1.0)
    raises(ValueError, "pred", loss.forward, np.array([[0.5], [np.nan]]), 1.0)
    raises(ValueError, "target", loss.forward, pred, np.ones((5, 1)))
    raises(ValueError, "target", loss.forward, pred, np.array([[1.0], [0.0], [np.inf], [1.0]]))
    raises(ValueError, "target", loss.forward, pred, math.nan)
    raises(TypeError, "target", loss.forward, pred, np.ones((4, 1), dtype=object))
    raises((RuntimeError, ValueError), "forward", LOSSES[name]().backward)


@pytest.mark.parametrize("name", ["bce_logits", "bce"])
def test_probability_targets_must_lie_in_unit_interval(name):
    raises(ValueError, "target", LOSSES[name]().forward, np.full((2, 1), 0.5), np.array([[1.5], [0.0]]))


def test_bce_needs_probabilities():
    raises(ValueError, "pred", L.BCE().forward, np.array([[1.5], [0.2]]), 1.0)


@pytest.mark.parametrize("name", ["hinge", "wasserstein"])
def test_sign_losses_need_labels(name):
    raises(ValueError, "target", LOSSES[name]().forward, np.zeros((2, 1)), np.array([[0.5], [1.0]]))


def test_softmax_cross_entropy_bad_inputs():
    loss = L.SoftmaxCrossEntropy()
    logits = np.zeros((3, 4))
    raises(TypeError, "labels", loss.forward, logits, np.array([0.0, 1.0, 2.0]))
    raises(ValueError, "labels", loss.forward, logits, np.array([0, 1]))
    raises(ValueError, "labels", loss.forward, logits, np.array([0, 1, 4]))
    raises(ValueError, "labels", loss.forward, logits, np.array([0, -1, 2]))
    raises(ValueError, "logits", loss.forward, np.zeros(4), np.array([0]))
    raises(RuntimeError, "forward", L.SoftmaxCrossEntropy().backward)


# --------------------------------------------------------------------------- unusual but valid arrays
@pytest.mark.parametrize("name", list(LAYERS))
def test_non_contiguous_and_read_only_inputs_work(name):
    base = _x((4, 6))
    strided = base[:, ::2]
    fortran = np.asfortranarray(base[:, :3])
    read_only = base[:, :3].copy()
    read_only.setflags(write=False)
    expected = LAYERS[name]().forward(np.ascontiguousarray(strided))
    np.testing.assert_array_equal(LAYERS[name]().forward(strided), expected)
    for x in (fortran, read_only):
        layer = LAYERS[name]()
        y = layer.forward(x)
        grad = np.asfortranarray(np.ones_like(y))
        assert layer.backward(grad).shape == x.shape


def test_python_lists_are_accepted_as_float64():
    layer = mg.Tanh()
    y = layer.forward([[0.0, 1.0], [2.0, -1.0]])
    assert y.dtype == np.float64
    raises(ValueError, "x", layer.forward, [[0.0, 1.0], [2.0]])


# --------------------------------------------------------------------------- fuzzing
# cheap examples: four times the profile's count (conftest loads the profile before this import)
FUZZ_EXAMPLES = 4 * settings.default.max_examples
_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int8, np.bool_, np.complex64])


@pytest.mark.property
@settings(deadline=None, max_examples=FUZZ_EXAMPLES)
@given(
    st.sampled_from(list(LAYERS)),
    hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
)
def test_any_array_gives_a_result_or_a_clean_error(name, x):
    layer = LAYERS[name]()
    try:
        y = layer.forward(x)
    except (TypeError, ValueError) as exc:
        assert not isinstance(exc, NumbaError)
        assert re.match(r"x\b", str(exc)), str(exc)
        return
    assert x.dtype in (np.float32, np.float64) and x.ndim == 2 and np.isfinite(x).all()
    assert y.shape[0] == x.shape[0] and y.dtype == x.dtype



@pytest.mark.property
@settings(deadline=None, max_examples=FUZZ_EXAMPLES)
@given(
    st.sampled_from(list(LAYERS)),
    hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
)
def test_any_gradient_gives_a_result_or_a_clean_error(name, g):
    layer = LAYERS[name]()
    y = layer.forward(_x())
    try:
        grad_x = layer.backward(g)
    except (TypeError, ValueError) as exc:
        assert not isinstance(exc, NumbaError)
        assert re.match(r"grad_y\b", str(exc)), str(exc)
        return
    assert g.shape == y.shape and g.dtype.kind == "f" and np.isfinite(g).all()
    assert grad_x.shape == (4, 3)


@pytest.mark.property
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # a 1e300 target for float32 pred
@settings(deadline=None, max_examples=FUZZ_EXAMPLES)
@given(
    st.sampled_from(list(LOSSES)),
    hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2),
              hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))),
)
def test_any_loss_input_gives_a_result_or_a_clean_error(name, pred, target):
    loss = LOSSES[name]()
    try:
        value = loss.forward(pred, target)
    except (TypeError, ValueError) as exc:
        assert not isinstance(exc, NumbaError)
        assert re.match(r"(pred|target)\b", str(exc)), str(exc)
        return
    if max(np.abs(pred).max(), np.abs(np.asarray(target, dtype=np.float64)).max()) < 1e6:
        assert np.isfinite(value)  # (squares of huge float32 values may overflow: not a bad-input matter)
    assert loss.backward().shape == pred.shape

# --------------------------------------------------------------------------- layers Sequential cannot trust
def test_the_same_layer_object_twice_in_one_model():
    """Each position keeps its own forward cache: a shared activation object would hand the
    first position the second one's cache and give a wrong gradient. Either refuse the model
    or get the gradient right."""
    act = mg.LeakyReLU(0.1)
    dense = [mg.Dense(3, 4, dtype=np.float64, rng=0), mg.Dense(4, 4, dtype=np.float64, rng=1)]
    try:
        shared = mg.Sequential([dense[0], act, dense[1], act])
    except ValueError as exc:
        assert "layers[3]" in str(exc) or "layers[1]" in str(exc)
        return
    separate = mg.Sequential([dense[0], mg.LeakyReLU(0.1), dense[1], mg.LeakyReLU(0.1)])
    x = np.random.default_rng(0).normal(size=(5, 3))
    g = np.random.default_rng(1).normal(size=(5, 4))
    shared.forward(x)
    grad_shared = shared.backward(g)
    separate.forward(x)
    np.testing.assert_allclose(grad_shared, separate.backward(g), rtol=1e-12)


_WIDEN = '''
import numpy as np, minigan as mg

class Widen(mg.Layer):
    """Doubles the features but forgets to say so in output_features."""
    def forward(self, x):
        return np.concatenate([x, x], axis=1)
    def backward(self, g):
        half = g.shape[1] // 2
        return g[:, :half] + g[:, half:]

model = mg.Sequential([mg.Dense(3, 4, dtype=np.float64, rng=0), Widen(), mg.BatchNorm(4, dtype=np.float64)])
try:
    model.forward(np.ones((5, 3)))
except (TypeError, ValueError) as exc:
    print("clean error:", exc)
else:
    print("forward ran a (5, 8) array through BatchNorm(4)")
'''


def test_a_custom_layer_with_the_wrong_output_width_gives_a_clean_error():
    """Sequential feeds a custom layer's output to unchecked kernels (no bounds checks):
    a wrong width must be caught, not read and written out of bounds. Run in a subprocess
    because the out-of-bounds writes can crash the interpreter."""
    out = subprocess.run([sys.executable, "-c", _WIDEN], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.startswith("clean error:"), (out.returncode, out.stdout, out.stderr[-500:])
    assert out.returncode == 0, out.stderr[-500:]
