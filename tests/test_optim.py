"""Adam and SGD against updates computed by hand in plain NumPy float64."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan as mg
from minigan import optim
from minigan import testing as mgt

pytestmark = pytest.mark.engine


class Param:
    """A stand-alone parameter (what ``model.parameters()`` yields)."""

    def __init__(self, name: str, value: np.ndarray) -> None:
        self.name = name
        self.value = np.ascontiguousarray(value)
        self.grad = np.zeros_like(self.value)


def _params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Param("w", rng.normal(size=(3, 4)).astype(dtype)), Param("b", rng.normal(size=5).astype(dtype))]


def _grads(step: int, params, seed=1):
    rng = np.random.default_rng(seed + 1000 * step)
    return [rng.normal(size=p.value.shape) * (1 + step) for p in params]


# --------------------------------------------------------------------------- hand computations
def adam_by_hand(values, grads_per_step, lr, beta1, beta2, eps, weight_decay=0.0):
    """Kingma & Ba 2015, Algorithm 1, with eps added to sqrt(v_hat)."""
    values = [v.astype(np.float64).copy() for v in values]
    m = [np.zeros_like(v) for v in values]
    v2 = [np.zeros_like(v) for v in values]
    for t, grads in enumerate(grads_per_step, start=1):
        for k, g in enumerate(grads):
            g = g + weight_decay * values[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v2[k] = beta2 * v2[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1**t)
            v_hat = v2[k] / (1 - beta2**t)
            values[k] = values[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return values


def sgd_by_hand(values, grads_per_step, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    values = [v.astype(np.float64).copy() for v in values]
    buf = [np.zeros_like(v) for v in values]
    for grads in grads_per_step:
        for k, g in enumerate(grads):
            g = g + weight_decay * values[k]
            if momentum:
                buf[k] = momentum * buf[k] + g
                g = g + momentum * buf[k] if nesterov else buf[k]
            values[k] = values[k] - lr * g
    return values


def _run(opt, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad[...] = g
        opt.step()


ADAM_SETTINGS = [
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7),
    dict(lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-7),  # the reference GAN's setting
    dict(lr=0.05, beta1=0.0, beta2=0.9, eps=1e-3),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=0.1),
]


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS)
def test_adam_matches_algorithm_1_by_hand(kwargs):
    params = _params()
    start = [p.value.copy() for p in params]
    steps = [_grads(t, params) for t in range(5)]
    opt = optim.Adam(params, **kwargs)
    _run(opt, params, steps)
    expected = adam_by_hand(start, steps, **kwargs)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.value, e, rtol=1e-13, atol=1e-15)
    assert opt.step_count == 5


def test_adam_first_step_is_lr_times_sign():
    # m_hat = g and v_hat = g^2 after one step, so the update is lr * g / (|g| + eps)
    params = _params()
    start = [p.value.copy() for p in params]
    opt = optim.Adam(params, lr=0.01, eps=1e-12)
    grads = _grads(0, params)
    _run(opt, params, [grads])
    for p, s, g in zip(params, start, grads):
        np.testing.assert_allclose(s - p.value, 0.01 * np.sign(g), rtol=1e-9)


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.01, momentum=0.5, weight_decay=0.1),
    dict(lr=0.01, weight_decay=0.2),
    dict(lr=0.02, momentum=0.7, nesterov=True, weight_decay=0.05),
]


@pytest.mark.parametrize("kwargs", SGD_SETTINGS)
def test_sgd_matches_hand_computation(kwargs):
    params = _params(seed=2)
    start = [p.value.copy() for p in params]
    steps = [_grads(t, params, seed=3) for t in range(4)]
    opt = optim.SGD(params, **kwargs)
    _run(opt, params, steps)
    expected = sgd_by_hand(start, steps, **kwargs)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.value, e, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("make", [lambda p: optim.Adam(p, lr=1e-3), lambda p: optim.SGD(p, lr=0.1, momentum=0.9)])
def test_float32_update_agrees_with_float64(make):
    p64, p32 = _params(dtype=np.float64), _params(dtype=np.float32)
    o64, o32 = make(p64), make(p32)
    steps = [_grads(t, p64) for t in range(4)]
    _run(o64, p64, steps)
    _run(o32, p32, steps)
    for a, b in zip(p32, p64):
        assert a.value.dtype == np.float32
        np.testing.assert_allclose(a.value, b.value, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- in place, state
def _model(seed=0):
    return mg.Sequential([
        mg.Dense(4, 6, dtype=np.float64, rng=seed), mg.LeakyReLU(0.2), mg.BatchNorm(6, dtype=np.float64),
        mg.Dense(6, 1, dtype=np.float64, rng=seed + 1),
    ])


def _train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    loss = mg.losses.BCEWithLogits()
    for _ in range(steps):
        x = rng.normal(size=(8, 4))
        t = rng.integers(0, 2, size=(8, 1)).astype(np.float64)
        model.zero_grad()
        loss.forward(model.forward(x), t)
        model.backward(loss.backward())
        opt.step()


@pytest.mark.parametrize("make", [
    lambda p: optim.Adam(p, lr=1e-2, beta1=0.5),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
])
def test_optimizer_state_dict_round_trip_continues_identically(make):
    a = _model()
    opt_a = make(a.parameters())
    _train(a, opt_a, 3, seed=0)
    model_state, opt_state = a.state_dict(), opt_a.state_dict()
    assert int(opt_state["step"]) == 3
    _train(a, opt_a, 3, seed=1)

    b = _model(seed=50)
    opt_b = make(b.parameters())
    b.load_state_dict(model_state)
    opt_b.load_state_dict(opt_state)
    opt_state["step"] = np.array(99)  # the optimizer copied the state, it does not alias it
    _train(b, opt_b, 3, seed=1)
    for key, value in a.state_dict().items():
        assert np.array_equal(b.state_dict()[key], value), key
    assert opt_b.step_count == opt_a.step_count == 6


def test_optimizer_accepts_a_model_and_updates_in_place():
    model = _model()
    opt = optim.Adam(model, lr=0.1)
    ids = [id(p.value) for p in model.parameters()]
    before = [p.value.copy() for p in model.parameters()]
    _train(model, opt, 1, seed=0)
    assert [id(p.value) for p in model.parameters()] == ids
    assert all(not np.array_equal(p.value, b) for p, b in zip(model.parameters(), before))


def test_optimizer_zero_grad():
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.forward(np.ones((3, 4)))
    model.backward(np.ones((3, 1)))
    opt.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


@pytest.mark.parametrize("make", [lambda p: optim.Adam(p), lambda p: optim.SGD(p, lr=0.1, momentum=0.5)])
def test_optimizer_load_state_dict_rejects_bad_state(make):
    opt = make(_params())
    state = opt.state_dict()
    missing = dict(state)
    missing.pop(next(k for k in state if k != "step"))
    with pytest.raises(ValueError, match="missing"):
        opt.load_state_dict(missing)
    with pytest.raises(ValueError, match="unexpected"):
        opt.load_state_dict({**state, "m/nothing": np.zeros(3)})
    key = next(k for k in state if k.endswith("/w"))
    with pytest.raises(ValueError, match=key):
        opt.load_state_dict({**state, key: np.zeros((4, 3))})
    with pytest.raises(TypeError, match="state"):
        opt.load_state_dict(None)


# --------------------------------------------------------------------------- properties
@pytest.mark.property
@settings(deadline=None)
@given(mgt.well_conditioned_arrays(mgt.shapes(), min_abs=1e-3), st.floats(1e-4, 0.1), st.floats(0.0, 0.95))
def test_adam_moves_every_weight_against_its_gradient_by_at_most_lr(grad, lr, beta1):
    p = Param("w", np.zeros_like(grad))
    p.grad[...] = grad
    optim.Adam([p], lr=lr, beta1=beta1).step()
    assert (np.sign(p.value) == -np.sign(grad)).all()
    assert (np.abs(p.value) <= lr * (1 + 1e-12)).all()


@pytest.mark.property
@settings(deadline=None)
@given(mgt.seeds(), st.floats(0.0, 0.99), st.booleans())
def test_sgd_with_zero_gradient_and_no_decay_leaves_weights_alone(seed, momentum, nesterov):
    params = _params(seed)
    start = [p.value.copy() for p in params]
    opt = optim.SGD(params, lr=0.5, momentum=momentum, nesterov=nesterov and momentum > 0)
    for _ in range(3):
        opt.step()
    for p, s in zip(params, start):
        np.testing.assert_array_equal(p.value, s)


def test_adam_minimizes_a_quadratic():
    target = np.array([1.0, -2.0, 3.0])
    p = Param("w", np.zeros(3))
    opt = optim.Adam([p], lr=0.1)
    for _ in range(500):
        p.grad[...] = 2 * (p.value - target)
        opt.step()
    np.testing.assert_allclose(p.value, target, atol=1e-3)


def test_one_optimizer_over_two_models_keeps_separate_state():
    """Both models name their first weight "0.W": the optimizer must either refuse the
    clash or keep (and save) one state per parameter."""
    a, b = _model(seed=1), _model(seed=2)
    params = a.parameters() + b.parameters()
    try:
        opt = optim.Adam(params, lr=1e-2)
    except ValueError as exc:
        assert "0.W" in str(exc)
        return
    for p in params:
        p.grad[...] = np.random.default_rng(len(p.name)).normal(size=p.grad.shape)
    opt.step()
    state = opt.state_dict()
    assert len(state) == 1 + 2 * len(params), "optimizer state entries overwrite each other"
    fresh = optim.Adam(params, lr=1e-2)
    fresh.load_state_dict(state)
    for m_fresh, m_old in zip(fresh.m, opt.m):
        np.testing.assert_array_equal(m_fresh, m_old)
