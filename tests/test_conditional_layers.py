"""The conditional layers (LabelConcat, Projection): central differences in float64 for the
first- and second-order passes, the scatter-add of the embedding gradient, gradient
penalties through conditional discriminators, hypothesis properties, configs and the
label checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import minigan as mg
from minigan import kernels as K
from minigan import penalties
from minigan import testing as mgt
from minigan.conditional import ConditionalBatchNorm, LabelConcat, Projection
from shared import numeric_penalty_gradients

pytestmark = pytest.mark.engine

F64 = np.float64
# Repeated labels (a row of the table used several times) and a class no row uses (3).
LABELS = np.array([0, 2, 1, 2, 2, 0, 1])


def _x(shape, seed=0):
    x = np.random.default_rng(seed).normal(0.0, 1.2, size=shape)
    return np.sign(x) * (np.abs(x) + 0.05)


def _dense(n_in, n_out, seed):
    layer = mg.Dense(n_in, n_out, dtype=F64, rng=seed)
    layer.params["b"][...] = np.random.default_rng(seed + 50).normal(0.0, 0.3, size=n_out)
    return layer


def _batchnorm(training=True):
    layer = ConditionalBatchNorm(4, 4, dtype=F64)
    rng = np.random.default_rng(9)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=(4, 4))
    layer.params["beta"][...] = rng.normal(size=(4, 4))
    layer.running_mean[...] = rng.normal(size=4)
    layer.running_var[...] = rng.uniform(0.5, 2.0, size=4)
    return layer if training else layer.eval()


LAYERS = {
    "embedding": lambda: LabelConcat(4, 4, embedding_dim=3, dtype=F64, rng=1),
    "one-hot": lambda: LabelConcat(4, 4, dtype=F64),
    "projection": lambda: Projection(4, 4, dtype=F64, rng=2),
    "batchnorm": _batchnorm,
    "batchnorm-eval": lambda: _batchnorm(training=False),
}
#: The layers with a second-order pass (BatchNorm's batch statistics couple the rows in training mode).
SECOND_ORDER = [name for name in LAYERS if name != "batchnorm"]

DISCRIMINATORS = {
    "concat": lambda: mg.Sequential([LabelConcat(5, 4, embedding_dim=2, dtype=F64, rng=1), _dense(7, 6, 2), mg.Tanh(),
                                     _dense(6, 4, 3), mg.Sigmoid(), _dense(4, 1, 4)]),
    "one-hot": lambda: mg.Sequential([LabelConcat(5, 4, dtype=F64), _dense(9, 6, 2), mg.Tanh(), _dense(6, 1, 4)]),
    "projection": lambda: mg.Sequential([_dense(5, 6, 2), mg.Tanh(), _dense(6, 4, 3), mg.Sigmoid(),
                                         Projection(4, 4, dtype=F64, rng=5)]),
    "both, leaky": lambda: mg.Sequential([LabelConcat(5, 4, embedding_dim=3, dtype=F64, rng=1), _dense(8, 6, 2),
                                          mg.LeakyReLU(0.2), Projection(6, 4, dtype=F64, rng=5)]),
    "batchnorm (eval)": lambda: mg.Sequential([_dense(5, 4, 2), mg.Tanh(), _batchnorm(training=False),
                                               _dense(4, 1, 4)]),
}


# --------------------------------------------------------------------------- first order
@pytest.mark.gradcheck
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_conditional_layer_matches_central_differences(name):
    report = mg.gradcheck(LAYERS[name](), _x((7, 4)), condition=LABELS)
    assert report.max_rel_error < 1e-6
    assert {t.name for t in report.tensors} == {"x", *LAYERS[name]().params}


@pytest.mark.gradcheck
@pytest.mark.parametrize("name", list(DISCRIMINATORS))
def test_conditional_discriminators_match_central_differences(name):
    assert mg.gradcheck(DISCRIMINATORS[name](), _x((7, 5)), condition=LABELS).max_rel_error < 1e-6


def test_the_embedding_gradient_is_a_scatter_add_into_the_rows_used():
    layer = LabelConcat(3, 5, embedding_dim=2, dtype=F64, rng=0)
    x = _x((6, 3))
    labels = np.array([4, 1, 4, 4, 0, 1])
    y = layer.forward(x, labels)
    np.testing.assert_array_equal(y[:, :3], x)
    np.testing.assert_array_equal(y[:, 3:], layer.params["E"][labels])
    grad_y = _x((6, 5), seed=1)
    layer.grads["E"][...] = 1.0  # backward adds into grads
    grad_x = layer.backward(grad_y)
    expected = np.ones((5, 2))
    np.add.at(expected, labels, grad_y[:, 3:])
    np.testing.assert_array_equal(layer.grads["E"], expected)
    np.testing.assert_array_equal(layer.grads["E"][[2, 3]], 1.0)  # rows no label uses: untouched
    np.testing.assert_array_equal(grad_x, grad_y[:, :3])


def test_one_hot_appends_the_code_and_has_no_parameters():
    layer = LabelConcat(2, 3, dtype=F64)
    y = layer.forward(np.zeros((3, 2)), np.array([2, 0, 2]))
    np.testing.assert_array_equal(y[:, 2:], [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert layer.params == {} and layer.output_features(2) == 5


def test_projection_is_the_score_plus_the_inner_product_with_the_class_embedding():
    layer = Projection(4, 3, dtype=F64, rng=3)
    layer.params["b"][...] = 0.25
    h = _x((5, 4))
    labels = np.array([1, 0, 2, 1, 1])
    p = layer.params
    expected = h @ p["W"] + p["b"] + np.sum(h * p["E"][labels], axis=1, keepdims=True)
    np.testing.assert_allclose(layer.forward(h, labels), expected, rtol=1e-14)
    grad = _x((5, 1), seed=2)
    layer.backward(grad)
    table = np.zeros((3, 4))
    np.add.at(table, labels, grad * h)
    np.testing.assert_allclose(layer.grads["E"], table, rtol=1e-14)


@pytest.mark.parametrize("name", list(LAYERS))
def test_grad_modes_add_write_and_skip(name):
    layer = LAYERS[name]()
    x = _x((7, 4))
    y = layer.forward(x, LABELS)
    grad = _x(y.shape, seed=3)
    reference = LAYERS[name]()
    reference.forward(x, LABELS)
    reference.backward(grad)
    for mode in (K.GRAD_ADD, K.GRAD_WRITE, K.GRAD_SKIP):
        for g in layer.grads.values():
            g[...] = 2.0
        layer.backward_unchecked(grad, mode)
        for key, g in layer.grads.items():
            expected = {K.GRAD_ADD: reference.grads[key] + 2.0, K.GRAD_WRITE: reference.grads[key],
                        K.GRAD_SKIP: np.full_like(g, 2.0)}[mode]
            np.testing.assert_allclose(g, expected, rtol=1e-14, atol=1e-15)


def test_float32_layers_agree_with_float64():
    for name, make in LAYERS.items():
        wide = make()
        narrow = wide.astype(np.float32)
        x = _x((7, 4))
        np.testing.assert_allclose(narrow.forward(x.astype(np.float32), LABELS), wide.forward(x, LABELS),
                                   rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- second order
def test_conditional_batchnorm_is_batchnorm_with_a_scale_and_shift_per_class():
    x = _x((7, 4))
    layer, plain = _batchnorm(), mg.BatchNorm(4, dtype=F64)
    plain.running_mean[...], plain.running_var[...] = layer.running_mean, layer.running_var
    x_hat = plain.forward(x)  # gamma 1, beta 0: the normalized input
    p = layer.params
    np.testing.assert_allclose(layer.forward(x, LABELS), p["gamma"][LABELS] * x_hat + p["beta"][LABELS], rtol=1e-13)
    np.testing.assert_array_equal(layer.running_mean, plain.running_mean)  # the same running statistics
    np.testing.assert_array_equal(layer.running_var, plain.running_var)
    one_class = ConditionalBatchNorm(4, 1, dtype=F64)
    np.testing.assert_array_equal(one_class.forward(x, np.zeros(7, dtype=int)), mg.BatchNorm(4, dtype=F64).forward(x))
    with pytest.raises(ValueError, match="at least 2 samples"):
        layer.forward(x[:1], LABELS[:1])
    with pytest.raises(ValueError, match="eval mode only"):
        penalties.gradient_penalty(mg.Sequential([_dense(4, 4, 1), layer, _dense(4, 1, 2)]), x, condition=LABELS)


@pytest.mark.penalties
@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_order_pass_of_every_conditional_layer_matches_central_differences(name):
    assert mg.gradcheck_second_order(LAYERS[name](), _x((7, 4)), condition=LABELS).max_rel_error < 1e-6


def assert_penalty_gradients_match(model, x, labels, weight=0.7, center=0.0):
    reference, numeric = numeric_penalty_gradients(model, x, weight, center, labels)
    model.zero_grad()
    value = penalties.gradient_penalty(model, x, weight=weight, center=center, condition=labels)
    assert value == pytest.approx(reference, rel=1e-12)
    for name, analytic in model.grads.items():
        scale = max(np.abs(numeric[name]).max(), np.abs(analytic).max(), 1e-2)
        assert np.abs(analytic - numeric[name]).max() / scale < 1e-6, name


@pytest.mark.penalties
@pytest.mark.parametrize("center", [0.0, 1.0])
@pytest.mark.parametrize("name", list(DISCRIMINATORS))
def test_penalty_gradient_through_conditional_discriminators(name, center):
    model = DISCRIMINATORS[name]()
    assert_penalty_gradients_match(model, _x((7, 5), seed=4), LABELS, center=center)


@pytest.mark.penalties
def test_r1_and_wgan_gp_on_a_conditional_discriminator():
    model = DISCRIMINATORS["both, leaky"]()
    real, fake = _x((7, 5), seed=5), _x((7, 5), seed=6)
    g = penalties.input_gradient(model, real, LABELS)
    model.zero_grad()
    assert penalties.r1(model, real, 10.0, condition=LABELS) == pytest.approx(5.0 * np.mean(np.sum(g * g, 1)))
    assert any(np.abs(grad).max() > 0 for grad in model.grads.values())
    # the labels matter: other labels, another penalty
    other = penalties.r1(model, real, 10.0, condition=(LABELS + 1) % 4)
    assert other != pytest.approx(penalties.r1(model, real, 10.0, condition=LABELS))
    rng_state = np.random.default_rng(3)
    value = penalties.wgan_gp(model, real, fake, rng=rng_state, condition=LABELS)
    eps = np.random.default_rng(3).random((7, 1))
    g = penalties.input_gradient(model, fake + eps * (real - fake), LABELS)
    assert value == pytest.approx(10.0 * np.mean((np.linalg.norm(g, axis=1) - 1.0) ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="conditional"):
        penalties.r1(model, real, 10.0)


# --------------------------------------------------------------------------- properties
@pytest.mark.property
@settings(deadline=None)
@given(mgt.conditional_layers_with_inputs())
def test_property_conditional_layers_pass_both_gradient_checks(triple):
    layer, x, labels = triple
    assert mg.gradcheck(layer, x, condition=labels).max_rel_error < 1e-6
    if not (isinstance(layer, ConditionalBatchNorm) and layer.training):
        assert mg.gradcheck_second_order(layer, x, condition=labels, directions=1).max_rel_error < 1e-6


@pytest.mark.property
@settings(deadline=None)
@given(mgt.conditional_discriminators_with_inputs(), mgt.seeds())
def test_property_penalty_gradient_of_random_conditional_discriminators(triple, seed):
    model, x, labels = triple
    center = float(np.random.default_rng(seed).integers(0, 2))
    assert_penalty_gradients_match(model, x, labels, weight=1.3, center=center)


@pytest.mark.property
@settings(deadline=None)
@given(mgt.conditional_layers_with_inputs(dtype=np.float32))
def test_property_rows_are_independent_and_labels_select_rows(triple):
    """Each output row depends only on its own input row and label: a pass over a batch
    equals passes over its rows one at a time."""
    layer, x, labels = triple
    if not layer.rows_independent:
        layer.eval()  # BatchNorm with its running statistics: rows on their own
    whole = layer.forward(x, labels).copy()
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(layer.forward(x[i:i + 1], labels[i:i + 1]), whole[i:i + 1])


# --------------------------------------------------------------------------- configs and checks
def test_conditional_networks_are_recorded_and_rebuilt():
    for name, make in DISCRIMINATORS.items():
        model = make()
        rebuilt = mg.Sequential.from_config(model.get_config())
        rebuilt.load_state_dict(model.state_dict())
        model.eval(), rebuilt.eval()  # a fresh model starts in training mode
        x = _x((7, 5))
        np.testing.assert_array_equal(rebuilt.forward(x, LABELS), model.forward(x, LABELS))
        assert rebuilt.uses_condition and rebuilt.rows_independent == model.rows_independent


def test_bad_labels_get_clear_errors_at_every_entry_point():
    model = DISCRIMINATORS["both, leaky"]()
    x = _x((3, 5))
    cases = [
        (np.array([0, 1, 4]), ValueError, r"condition must lie in 0 \.\. 3 \(4 classes\), got 4"),
        (np.array([0, -1, 2]), ValueError, "condition must be class indices >= 0, got -1"),
        (np.array([0.0, 1.0, 2.0]), TypeError, r"condition must be integers .*labels.astype\(int\)"),
        (np.array([True, False, True]), TypeError, "condition must be integers"),
        (np.array(["a", "b", "c"]), TypeError, "map class names to integers"),
        (np.array([0, 1]), ValueError, r"one entry per row \(3\)"),
        (np.array([[0], [1], [2]]), ValueError, "1-D array"),
        (None, ValueError, "this model is conditional"),
    ]
    for labels, kind, message in cases:
        with pytest.raises(kind, match=message):
            model.forward(x, labels)
    with pytest.raises(ValueError, match="must lie in 0"):
        penalties.gradient_penalty(model, x, condition=np.array([0, 1, 9]))
    with pytest.raises(ValueError, match="must lie in 0"):
        mg.gradcheck(LAYERS["projection"](), _x((3, 4)), condition=np.array([0, 1, 9]))
    with pytest.raises(ValueError, match="pass condition="):
        mg.gradcheck(LAYERS["projection"](), _x((3, 4)))
    with pytest.raises(ValueError, match="condition is for a layer that uses one"):
        mg.gradcheck(mg.Tanh(), _x((3, 4)), condition=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        LabelConcat(3, 0)
    with pytest.raises(ValueError, match="embedding_dim must be >= 1"):
        LabelConcat(3, 2, embedding_dim=0)
    with pytest.raises(RuntimeError, match="before forward"):
        Projection(3, 2).backward(np.zeros((2, 1), dtype=np.float32))


def test_backward_without_input_gradient_stops_at_the_first_layer_with_parameters():
    """A one-hot code has no parameters: a backward without the input gradient skips it (and
    the first Dense's input gradient), with the same parameter gradients."""
    model = DISCRIMINATORS["one-hot"]()
    x = _x((7, 5))
    model.forward(x, LABELS)
    grad = _x((7, 1), seed=8)
    full = model.backward(grad, accumulate=False)
    reference = {k: v.copy() for k, v in model.grads.items()}
    calls = []
    original = model.layers[0].backward_unchecked
    model.layers[0].backward_unchecked = lambda *a, **k: calls.append(a) or original(*a, **k)
    assert model.backward(grad, accumulate=False, input_grad=False) is None
    assert calls == [] and full.shape == (7, 5)
    for key, value in model.grads.items():
        np.testing.assert_array_equal(value, reference[key])
