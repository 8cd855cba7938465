"""Losses: values against NumPy formulas, gradients by finite differences, stability."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import minigan as mg
from minigan import losses as L
from minigan import testing as mgt

pytestmark = pytest.mark.engine


def _sigmoid(z):
    with np.errstate(over="ignore"):  # exp(1000) -> inf -> sigmoid 0, the right limit
        return 1.0 / (1.0 + np.exp(-z))


def _cases(shape=(6, 1), seed=0):
    """(loss, pred, target, reference mean value) for every loss on a fixed batch."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, shape)
    probs = rng.uniform(0.05, 0.95, shape)
    soft = rng.random(shape)
    labels = rng.integers(0, 2, shape).astype(np.float64)
    values = rng.normal(0, 2, shape)
    values[np.abs(np.abs(values) - 1) < 0.05] += 0.2  # keep off the hinge's kinks
    signs = np.where(labels > 0, 1.0, -1.0)

    def bce(p, t):
        return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))

    smoothed = soft * 0.9 + 0.05
    return {
        "bce_logits": (L.BCEWithLogits(), logits, soft, bce(_sigmoid(logits), soft)),
        "bce_logits_smoothed": (L.BCEWithLogits(label_smoothing=0.1), logits, soft, bce(_sigmoid(logits), smoothed)),
        "bce": (L.BCE(), probs, soft, bce(probs, soft)),
        "mse": (L.MSE(), values, logits, np.mean((values - logits) ** 2)),
        "hinge": (L.Hinge(), values, labels, np.mean(np.maximum(0.0, 1.0 - signs * values))),
        "wasserstein": (L.Wasserstein(), values, labels, np.mean(-signs * values)),
    }


NAMES = list(_cases())


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(6, 1), (6,), (3, 4)])
def test_loss_values_match_numpy_formulas(name, shape):
    loss, pred, target, expected = _cases(shape)[name]
    value = loss.forward(pred, target)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-14)
    grad = loss.backward()
    assert grad.shape == pred.shape and grad.dtype == pred.dtype


@pytest.mark.parametrize("name", NAMES)
def test_scalar_target_broadcasts(name):
    loss, pred, _, _ = _cases()[name]
    scalar = 1.0
    a = loss.forward(pred, scalar)
    ga = loss.backward().copy()
    b = loss.forward(pred, np.full(pred.shape, scalar))
    assert a == b
    np.testing.assert_array_equal(ga, loss.backward())


def test_label_smoothing_is_the_keras_formula():
    z = np.array([[0.3], [-1.2], [2.0]])
    s = 0.2
    smoothed = L.BCEWithLogits(label_smoothing=s).forward(z, 1.0)
    plain = L.BCEWithLogits().forward(z, np.full(z.shape, 1.0 * (1 - s) + s / 2))
    assert smoothed == pytest.approx(plain, rel=1e-15)


def test_hinge_and_wasserstein_accept_minus_one_for_fake():
    p = np.array([[0.3], [-2.0], [1.5]])
    for loss in (L.Hinge(), L.Wasserstein()):
        assert loss.forward(p, np.array([[1.0], [0.0], [0.0]])) == loss.forward(p, np.array([[1.0], [-1.0], [-1.0]]))


# --------------------------------------------------------------------------- gradients
@pytest.mark.gradcheck
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(5, 1), (4,)])
def test_gradcheck_every_loss(name, shape):
    loss, pred, target, _ = _cases(shape, seed=3)[name]
    report = mg.gradcheck(loss, pred, labels=target)
    assert report.max_rel_error < 1e-6
    assert [t.name for t in report.tensors] == ["pred"]


def _softmax_cross_entropy(labels):
    loss = L.SoftmaxCrossEntropy()

    def value_and_grad(logits):
        return loss.forward(logits, labels), loss.backward()

    return value_and_grad


@pytest.mark.gradcheck
def test_gradcheck_softmax_cross_entropy_via_callable():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    report = mg.gradcheck(_softmax_cross_entropy(labels), logits)
    assert report.max_rel_error < 1e-6
    # and directly, as an object with forward/backward
    assert mg.gradcheck(L.SoftmaxCrossEntropy(), logits, labels=labels).max_rel_error < 1e-6


def test_softmax_cross_entropy_values():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (6, 3))
    labels = rng.integers(0, 3, 6)
    loss = L.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert value == pytest.approx(-log_probs[np.arange(6), labels].mean(), rel=1e-13)
    np.testing.assert_allclose(loss.probs, np.exp(log_probs), rtol=1e-13)
    np.testing.assert_allclose(loss.probs.sum(axis=1), 1.0, rtol=1e-14)
    # stable for huge logits
    big = np.array([[1000.0, -1000.0, 0.0]])
    assert loss.forward(big, np.array([1])) == pytest.approx(2000.0)
    assert np.isfinite(loss.backward()).all()


@pytest.mark.gradcheck
@pytest.mark.property
@settings(deadline=None)
@given(mgt.losses_with_inputs())
def test_gradcheck_property_over_losses(loss_pred_target):
    loss, pred, target = loss_pred_target
    report = mg.gradcheck(loss, pred, labels=target)
    assert report.max_rel_error < 1e-6


@pytest.mark.property
@settings(deadline=None)
@given(mgt.losses_with_inputs())
def test_loss_properties(loss_pred_target):
    loss, pred, target = loss_pred_target
    value = loss.forward(pred, target)
    grad = loss.backward()
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    if not isinstance(loss, L.Wasserstein):
        assert value >= -1e-12
    # float32 agrees with float64 within float32 tolerance
    value32 = loss.forward(pred.astype(np.float32), target.astype(np.float32))
    grad32 = loss.backward()
    assert grad32.dtype == np.float32
    assert value32 == pytest.approx(value, rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(grad32, grad, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(grad).max())))


# --------------------------------------------------------------------------- BCE with logits vs sigmoid + BCE
@pytest.mark.property
@settings(deadline=None)
@given(mgt.well_conditioned_arrays(mgt.shapes(1, 8, 1, 1), scale=4.0), mgt.seeds())
def test_bce_with_logits_equals_sigmoid_then_bce(z, seed):
    z = np.clip(z, -12, 12)  # where the clipped probability form is still exact
    t = np.random.default_rng(seed).random(z.shape)
    logits, probs = L.BCEWithLogits(), L.BCE()
    a = logits.forward(z, t)
    s = _sigmoid(z)
    b = probs.forward(s, t)
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    # chain rule: dL/dz = dL/ds * s (1 - s)
    np.testing.assert_allclose(logits.backward(), probs.backward() * s * (1 - s), rtol=1e-7, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_finite_for_huge_logits(dtype):
    z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
    t = np.array([[1.0], [0.0], [0.0], [1.0]], dtype=dtype)
    loss = L.BCEWithLogits()
    with np.errstate(all="raise"):
        value = loss.forward(z, t)
    grad = loss.backward()
    assert np.isfinite(value) and np.isfinite(grad).all()
    # right answers: 0 for the two confident-correct rows, 1000 for the two wrong ones
    assert value == pytest.approx(2000.0 / 4, rel=1e-6)
    np.testing.assert_allclose(grad.ravel(), [0.0, 0.0, 0.25, -0.25], atol=1e-7)
    # the probability form saturates at the clip instead of reaching the true value
    assert L.BCE().forward(_sigmoid(z.astype(np.float64)), t.astype(np.float64)) < value


def test_bce_clips_probabilities_like_keras():
    loss = L.BCE()
    value = loss.forward(np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]))
    assert value == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert np.isfinite(loss.backward()).all()
