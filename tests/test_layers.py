"""Every built-in layer: gradients, forward math, the backward contract, dtypes."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan as mg
from minigan import testing as mgt

pytestmark = pytest.mark.engine

INITS = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros"]


def _inputs(shape: tuple[int, int], seed: int = 0, dtype=np.float64, min_abs: float = 0.05) -> np.ndarray:
    """Normal values kept at least ``min_abs`` away from 0 (the kink of the ReLUs)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.5, size=shape)
    x = np.sign(x) * (np.abs(x) + min_abs)
    return x.astype(dtype)


def _batchnorm_eval(features: int, dtype=np.float64) -> mg.BatchNorm:
    layer = mg.BatchNorm(features, dtype=dtype)
    rng = np.random.default_rng(7)
    layer.running_mean[...] = rng.normal(size=features)
    layer.running_var[...] = rng.uniform(0.5, 2.0, size=features)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=features)
    layer.params["beta"][...] = rng.normal(size=features)
    return layer.eval()


def _batchnorm_train(features: int, dtype=np.float64) -> mg.BatchNorm:
    layer = mg.BatchNorm(features, dtype=dtype)
    rng = np.random.default_rng(8)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=features)
    layer.params["beta"][...] = rng.normal(size=features)
    return layer


# name -> factory(features, dtype) building a layer with ``features`` inputs
LAYERS: dict[str, Callable[[int, np.dtype], mg.Layer]] = {
    **{f"dense-{init}": (lambda f, dt, init=init: mg.Dense(f, 3, init=init, dtype=dt, rng=1)) for init in INITS},
    "leaky_relu": lambda f, dt: mg.LeakyReLU(0.2),
    "leaky_relu-0": lambda f, dt: mg.LeakyReLU(0.0),
    "relu": lambda f, dt: mg.ReLU(),
    "tanh": lambda f, dt: mg.Tanh(),
    "sigmoid": lambda f, dt: mg.Sigmoid(),
    "batchnorm-train": _batchnorm_train,
    "batchnorm-eval": _batchnorm_eval,
    "dropout-train": lambda f, dt: mg.Dropout(0.4, rng=3),
    "dropout-eval": lambda f, dt: mg.Dropout(0.4, rng=3).eval(),
}

PARAMETRIC = [name for name in LAYERS if name.startswith(("dense", "batchnorm"))]


# --------------------------------------------------------------------------- gradient checks
@pytest.mark.gradcheck
@pytest.mark.parametrize("name", list(LAYERS))
def test_gradcheck_every_layer_float64(name):
    layer = LAYERS[name](4, np.float64)
    x = _inputs((5, 4), seed=11)
    report = mg.gradcheck(layer, x)
    assert report.passed
    assert report.max_rel_error < 1e-6
    assert [t.name for t in report.tensors] == ["x", *layer.params]
    for tensor in report.tensors:
        assert tensor.max_abs_error < 1e-7


@pytest.mark.gradcheck
@pytest.mark.parametrize("name", ["dense-glorot_uniform", "batchnorm-train", "tanh"])
def test_gradcheck_of_float32_layer_runs_on_a_float64_copy(name):
    layer = LAYERS[name](3, np.float32)
    before = {k: v.copy() for k, v in layer.params.items()}
    report = mg.gradcheck(layer, _inputs((4, 3), seed=2, dtype=np.float32))
    assert report.max_rel_error < 1e-6
    for key, value in layer.params.items():
        assert value.dtype == np.float32
        assert np.array_equal(value, before[key])


@pytest.mark.gradcheck
@pytest.mark.property
@settings(deadline=None)
@given(mgt.layers_with_inputs())
def test_gradcheck_property_over_layers_and_inputs(layer_and_x):
    layer, x = layer_and_x
    report = mg.gradcheck(layer, x)
    assert report.max_rel_error < 1e-6


# --------------------------------------------------------------------------- forward math
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_forward_is_x_at_w_plus_b(dtype):
    layer = mg.Dense(5, 3, dtype=dtype, rng=0)
    layer.params["b"][...] = np.arange(3, dtype=dtype)
    x = _inputs((4, 5), dtype=dtype)
    y = layer.forward(x)
    assert y.shape == (4, 3) and y.dtype == dtype
    expected = x.astype(np.float64) @ layer.params["W"].astype(np.float64) + layer.params["b"]
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_dense_backward_formulas():
    layer = mg.Dense(4, 3, dtype=np.float64, rng=0)
    x = _inputs((6, 4))
    g = _inputs((6, 3), seed=5)
    layer.forward(x)
    grad_x = layer.backward(g)
    np.testing.assert_allclose(grad_x, g @ layer.params["W"].T, rtol=1e-13)
    np.testing.assert_allclose(layer.grads["W"], x.T @ g, rtol=1e-13)
    np.testing.assert_allclose(layer.grads["b"], g.sum(axis=0), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_features", [1, 7, 256])
def test_dense_with_one_output_gives_the_matmul_input_gradient_bit_for_bit(dtype, in_features):
    # One output makes dL/dx an outer product, which Dense forms by an elementwise multiply.
    layer = mg.Dense(in_features, 1, dtype=dtype, rng=1)
    layer.forward(_inputs((9, in_features), dtype=dtype))
    g = _inputs((9, 1), seed=6, dtype=dtype)
    grad_x = layer.backward(g)
    assert grad_x.shape == (9, in_features) and grad_x.dtype == dtype and grad_x.flags.c_contiguous
    assert np.array_equal(grad_x, g @ layer.params["W"].T)


@pytest.mark.property
@settings(deadline=None)
@given(mgt.well_conditioned_arrays(mgt.shapes(), scale=5.0), st.floats(0.0, 1.0))
def test_activation_values_match_numpy(x, alpha):
    np.testing.assert_array_equal(mg.LeakyReLU(alpha).forward(x), np.where(x > 0, x, alpha * x))
    np.testing.assert_array_equal(mg.ReLU().forward(x), np.maximum(x, 0.0))
    np.testing.assert_allclose(mg.Tanh().forward(x), np.tanh(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(mg.Sigmoid().forward(x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-14)


@pytest.mark.property
@settings(deadline=None)
@given(mgt.well_conditioned_arrays(mgt.shapes(), scale=5.0, min_abs=1e-3), st.floats(0.0, 1.0))
def test_activation_derivatives_match_numpy(x, alpha):
    g = np.random.default_rng(0).normal(size=x.shape)
    cases = [
        (mg.LeakyReLU(alpha), np.where(x > 0, 1.0, alpha)),
        (mg.ReLU(), (x > 0).astype(float)),
        (mg.Tanh(), 1.0 - np.tanh(x) ** 2),
        (mg.Sigmoid(), np.exp(-x) / (1.0 + np.exp(-x)) ** 2),
    ]
    for layer, derivative in cases:
        layer.forward(x)
        np.testing.assert_allclose(layer.backward(g), g * derivative, rtol=1e-9, atol=1e-14, err_msg=repr(layer))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=dtype)
    with np.errstate(all="raise"):
        s = mg.Sigmoid().forward(x)
        t = mg.Tanh().forward(x)
    assert np.isfinite(s).all() and np.isfinite(t).all()
    np.testing.assert_allclose(s[0, [0, 2, 4]], [0.0, 0.5, 1.0], atol=1e-7)
    np.testing.assert_allclose(t[0, [0, 2, 4]], [-1.0, 0.0, 1.0], atol=1e-7)


# --------------------------------------------------------------------------- initializers
@pytest.mark.parametrize("init", INITS)
def test_initializer_ranges_and_bias(init):
    fan_in, fan_out = 200, 100
    w = mg.Dense(fan_in, fan_out, init=init, dtype=np.float64, rng=0).params["W"]
    assert w.shape == (fan_in, fan_out)
    if init == "zeros":
        assert not w.any()
        return
    fan = fan_in + fan_out if init.startswith("glorot") else fan_in
    std = np.sqrt(2.0 / fan)  # the Keras target std of every one of these initializers
    if init.endswith("uniform"):
        limit = np.sqrt(3.0) * std
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.98 * limit
    else:
        # truncated at two standard deviations of the untruncated normal
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12
    assert w.std() == pytest.approx(std, rel=0.03)
    assert abs(w.mean()) < 0.05 * std  # ~7 standard errors for 20,000 draws


@pytest.mark.parametrize("init", INITS)
def test_same_seed_same_weights_and_float32_is_rounded_float64(init):
    a = mg.Dense(7, 5, init=init, dtype=np.float64, rng=42)
    b = mg.Dense(7, 5, init=init, dtype=np.float64, rng=np.random.default_rng(42))
    c = mg.Dense(7, 5, init=init, dtype=np.float32, rng=42)
    assert np.array_equal(a.params["W"], b.params["W"])
    assert np.array_equal(c.params["W"], a.params["W"].astype(np.float32))
    assert not a.params["b"].any()
    if init != "zeros":
        d = mg.Dense(7, 5, init=init, dtype=np.float64, rng=43)
        assert not np.array_equal(a.params["W"], d.params["W"])


# --------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_training_uses_biased_batch_variance(dtype):
    layer = _batchnorm_train(3, dtype)
    x = _inputs((5, 3), seed=3, dtype=dtype)
    y = layer.forward(x)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    var = ((x64 - mean) ** 2).mean(axis=0)  # biased: divide by N
    expected = layer.params["gamma"] * (x64 - mean) / np.sqrt(var + layer.eps) + layer.params["beta"]
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)
    unbiased = layer.params["gamma"] * (x64 - mean) / np.sqrt(x64.var(axis=0, ddof=1) + layer.eps) + layer.params["beta"]
    assert not np.allclose(y, unbiased, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("momentum", [0.8, 0.0, 0.99])
def test_batchnorm_running_statistics_follow_keras_momentum(momentum):
    layer = mg.BatchNorm(4, momentum=momentum, dtype=np.float64)
    running_mean = np.zeros(4)
    running_var = np.ones(4)
    for seed in range(3):
        x = _inputs((6, 4), seed=seed) * (seed + 1) + seed
        layer.forward(x)
        batch_mean = x.mean(axis=0)
        batch_var = ((x - batch_mean) ** 2).mean(axis=0)
        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var = momentum * running_var + (1 - momentum) * batch_var
        np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.running_var, running_var, rtol=1e-13, atol=1e-15)


def test_batchnorm_eval_uses_running_statistics_and_leaves_them_alone():
    layer = _batchnorm_eval(3)
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    x = _inputs((4, 3), seed=4)
    y = layer.forward(x)
    expected = layer.params["gamma"] * (x - mean) / np.sqrt(var + layer.eps) + layer.params["beta"]
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-14)
    assert np.array_equal(layer.running_mean, mean) and np.array_equal(layer.running_var, var)
    # each row is normalized on its own: a single sample gives the same row
    np.testing.assert_array_equal(layer.forward(x[1:2]), y[1:2])


def test_batchnorm_train_then_eval_switches_behaviour():
    layer = mg.BatchNorm(2, dtype=np.float64)
    x = _inputs((8, 2), seed=9) * 3 + 5
    y_train = layer.forward(x)
    np.testing.assert_allclose(y_train.mean(axis=0), 0.0, atol=1e-12)
    layer.eval()
    y_eval = layer.forward(x)
    assert not np.allclose(y_eval, y_train)
    layer.train()
    assert layer.training


# --------------------------------------------------------------------------- Dropout
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_is_inverted_and_backward_uses_the_same_mask(dtype):
    rate = 0.3
    layer = mg.Dropout(rate, rng=0)
    x = _inputs((200, 50), dtype=dtype)
    y = layer.forward(x)
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    assert abs(1 - kept.mean() - rate) < 0.02
    g = np.ones_like(x)
    grad_x = layer.backward(g)
    np.testing.assert_array_equal(grad_x != 0, kept)
    np.testing.assert_allclose(grad_x[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_identity_in_eval_mode_and_at_rate_zero():
    x = _inputs((5, 4))
    g = _inputs((5, 4), seed=1)
    for layer in (mg.Dropout(0.5, rng=0).eval(), mg.Dropout(0.0, rng=0)):
        np.testing.assert_array_equal(layer.forward(x), x)
        np.testing.assert_array_equal(layer.backward(g), g)


def test_dropout_masks_depend_only_on_the_seed():
    x = _inputs((10, 10))
    a = mg.Dropout(0.5, rng=5).forward(x)
    b = mg.Dropout(0.5, rng=np.random.default_rng(5)).forward(x)
    c = mg.Dropout(0.5, rng=6).forward(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --------------------------------------------------------------------------- backward contract
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_never_changes_params_or_buffers(name, dtype):
    layer = LAYERS[name](4, dtype)
    x = _inputs((5, 4), dtype=dtype)
    layer.forward(x)
    params = {k: v.copy() for k, v in layer.params.items()}
    buffers = {k: v.copy() for k, v in layer.buffers.items()}
    ids = {k: id(v) for k, v in layer.params.items()}
    layer.backward(np.ones((5, layer.output_features(4)), dtype=dtype))
    for key, value in layer.params.items():
        assert id(value) == ids[key]
        assert np.array_equal(value, params[key]), key
    for key, value in layer.buffers.items():
        assert np.array_equal(value, buffers[key]), key


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_backward_calls_give_twice_the_gradient(name, dtype):
    layer = LAYERS[name](4, dtype)
    x = _inputs((5, 4), dtype=dtype)
    g = _inputs((5, layer.output_features(4)), seed=3, dtype=dtype)
    layer.forward(x)
    layer.zero_grad()
    first_x = layer.backward(g).copy()
    once = {k: v.copy() for k, v in layer.grads.items()}
    second_x = layer.backward(g)
    np.testing.assert_array_equal(first_x, second_x)  # backward is repeatable
    for key, value in layer.grads.items():
        # bit-exact except where a kernel adds entry by entry into the gradient
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(value, 2 * once[key], rtol=tol, atol=tol, err_msg=key)


@pytest.mark.parametrize("name", ["dense-glorot_uniform", "batchnorm-train", "batchnorm-eval"])
def test_backward_adds_to_gradients_that_are_already_there(name):
    """``backward`` must ADD into ``grads`` whatever they hold -- also right after
    construction or ``zero_grad()`` when a user has put something there."""
    layer = LAYERS[name](4, np.float64)
    x = _inputs((5, 4))
    g = _inputs((5, layer.output_features(4)), seed=3)
    layer.forward(x)
    layer.zero_grad()
    layer.backward(g)
    fresh = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    for value in layer.grads.values():
        value[...] = 1.0
    layer.backward(g)
    for key, value in layer.grads.items():
        np.testing.assert_allclose(value, 1.0 + fresh[key], rtol=1e-13, err_msg=key)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_zero_grad_clears_in_place(name):
    layer = LAYERS[name](4, np.float64)
    layer.forward(_inputs((5, 4)))
    layer.backward(np.ones((5, layer.output_features(4))))
    ids = {k: id(v) for k, v in layer.grads.items()}
    assert any(v.any() for v in layer.grads.values())
    layer.zero_grad()
    for key, value in layer.grads.items():
        assert id(value) == ids[key] and not value.any()
        assert value.shape == layer.params[key].shape and value.dtype == layer.params[key].dtype


@pytest.mark.property
@settings(deadline=None)
@given(mgt.layers_with_inputs())
def test_backward_contract_property(layer_and_x):
    layer, x = layer_and_x
    y = layer.forward(x)
    assert y.shape == (x.shape[0], layer.output_features(x.shape[1])) and y.dtype == x.dtype
    params = {k: v.copy() for k, v in layer.params.items()}
    layer.zero_grad()
    g = np.random.default_rng(0).normal(size=y.shape)
    grad_x = layer.backward(g)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(g)
    assert grad_x.shape == x.shape and grad_x.dtype == x.dtype
    for key in layer.params:
        assert np.array_equal(layer.params[key], params[key])
        np.testing.assert_allclose(layer.grads[key], 2 * once[key], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- float32 vs float64
@pytest.mark.parametrize("name", [n for n in LAYERS if not n.startswith("dropout")] + ["dropout-eval"])
def test_float32_agrees_with_float64(name):
    l64 = LAYERS[name](4, np.float64)
    l32 = LAYERS[name](4, np.float32)
    for key in l64.params:
        np.testing.assert_array_equal(l32.params[key], l64.params[key].astype(np.float32))
    x = _inputs((6, 4), seed=21)
    g = _inputs((6, l64.output_features(4)), seed=22)
    y64 = l64.forward(x)
    y32 = l32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    tol = dict(rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(y64).max())))
    np.testing.assert_allclose(y32, y64, **tol)
    gx64 = l64.backward(g)
    gx32 = l32.backward(g.astype(np.float32))
    assert gx32.dtype == np.float32
    np.testing.assert_allclose(gx32, gx64, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(gx64).max())))
    for key in l64.grads:
        scale = max(1.0, float(np.abs(l64.grads[key]).max()))
        np.testing.assert_allclose(l32.grads[key], l64.grads[key], rtol=1e-4, atol=1e-4 * scale, err_msg=key)


@pytest.mark.property
@settings(deadline=None)
@given(mgt.layers_with_inputs(dtype=np.float64))
def test_float32_copy_agrees_with_float64_property(layer_and_x):
    layer, x = layer_and_x
    if isinstance(layer, mg.Dropout):
        layer.eval()  # float32 and float64 draw different uniform streams
    l32 = layer.astype(np.float32)
    y64 = layer.forward(x)
    y32 = l32.forward(x.astype(np.float32))
    scale = max(1.0, float(np.abs(y64).max()))
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4 * scale)
    g = np.random.default_rng(1).normal(size=y64.shape)
    gx64 = layer.backward(g)
    gx32 = l32.backward(g.astype(np.float32))
    np.testing.assert_allclose(gx32, gx64, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(gx64).max())))


def test_layer_repr_and_output_features():
    assert "3, 5" in repr(mg.Dense(3, 5))
    assert "0.1" in repr(mg.LeakyReLU(0.1))
    assert mg.Dense(3, 5).output_features(3) == 5
    assert mg.BatchNorm(4).output_features(4) == 4
    assert mg.Dense(3, 5).num_params() == 3 * 5 + 5
    assert mg.BatchNorm(4).num_params() == 8
    assert mg.Tanh().num_params() == 0
