"""The second-order pass and the gradient penalties: finite differences for every layer
and stack, hypothesis properties, an independent complex-step implementation and
PyTorch's double backward on the same weights, and the error cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import minigan as mg
from minigan import kernels as K
from minigan import penalties
from minigan import testing as mgt
from shared import Scale, dropout_streams, numeric_penalty_gradients, restore_streams

pytestmark = pytest.mark.penalties

F64 = np.float64


def _inputs(shape, seed=0, min_abs=0.05, dtype=F64):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.5, size=shape)
    return (np.sign(x) * (np.abs(x) + min_abs)).astype(dtype)


def _dense(n_in, n_out, seed, dtype=F64, bias=0.3):
    layer = mg.Dense(n_in, n_out, dtype=dtype, rng=seed)
    layer.params["b"][...] = np.random.default_rng(seed + 100).normal(0.0, bias, size=n_out)
    return layer


def _batchnorm_eval(features, seed=7, dtype=F64):
    layer = mg.BatchNorm(features, dtype=dtype)
    rng = np.random.default_rng(seed)
    layer.running_mean[...] = rng.normal(size=features)
    layer.running_var[...] = rng.uniform(0.5, 2.0, size=features)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=features)
    layer.params["beta"][...] = rng.normal(size=features)
    return layer.eval()


# name -> factory(features, dtype): every built-in layer that has a second-order pass
LAYERS = {
    "dense": lambda f, dt: _dense(f, 3, 1, dt),
    "leaky_relu": lambda f, dt: mg.LeakyReLU(0.2),
    "relu": lambda f, dt: mg.ReLU(),
    "tanh": lambda f, dt: mg.Tanh(),
    "sigmoid": lambda f, dt: mg.Sigmoid(),
    "batchnorm-eval": lambda f, dt: _batchnorm_eval(f, dtype=dt),
    "dropout-train": lambda f, dt: mg.Dropout(0.4, rng=3),
    "dropout-eval": lambda f, dt: mg.Dropout(0.4, rng=3).eval(),
}


def head(layer_name, features=4, dtype=F64):
    """The layer inside a small discriminator: Dense -> Tanh -> layer -> Dense(., 1)."""
    layer = LAYERS[layer_name](features, dtype)
    width = layer.output_features(features)
    return mg.Sequential([_dense(5, features, 2, dtype), mg.Tanh(), layer, _dense(width, 1, 4, dtype)])


STACKS = {
    "reference-like": lambda dt: mg.Sequential([_dense(6, 8, 1, dt), mg.LeakyReLU(0.2), _dense(8, 5, 2, dt),
                                                mg.LeakyReLU(0.2), _dense(5, 1, 3, dt)]),
    "smooth": lambda dt: mg.Sequential([_dense(6, 5, 1, dt), mg.Tanh(), _dense(5, 4, 2, dt), mg.Sigmoid(),
                                        _dense(4, 1, 3, dt)]),
    "everything": lambda dt: mg.Sequential([_dense(6, 5, 1, dt), mg.Tanh(), _batchnorm_eval(5, dtype=dt),
                                            mg.Dropout(0.3, rng=5), _dense(5, 4, 2, dt), mg.Sigmoid(),
                                            _dense(4, 3, 6, dt), mg.ReLU(), _dense(3, 1, 3, dt)]),
    "unfused": lambda dt: mg.Sequential([_dense(6, 5, 1, dt), mg.Tanh(), _dense(5, 1, 3, dt)], fuse=False),
}


def assert_penalty_gradients_match(model, x, weight=0.7, center=0.0, condition=None, rtol=1e-6):
    reference_value, numeric = numeric_penalty_gradients(model, x, weight, center, condition)
    model.zero_grad()
    before = {k: v.copy() for k, v in model.params.items()}
    value = penalties.gradient_penalty(model, x, weight=weight, center=center, condition=condition)
    assert value == pytest.approx(reference_value, rel=1e-12)
    for name, analytic in model.grads.items():
        np.testing.assert_array_equal(model.params[name], before[name])  # parameters are never changed
        scale = max(np.abs(numeric[name]).max(), np.abs(analytic).max(), 1e-8 / rtol)
        assert np.abs(analytic - numeric[name]).max() / scale < rtol, name


# --------------------------------------------------------------------------- every layer, every stack
@pytest.mark.parametrize("name", list(LAYERS))
def test_second_order_pass_of_every_layer_matches_central_differences(name):
    layer = LAYERS[name](4, F64)
    report = mg.gradcheck_second_order(layer, _inputs((5, 4), seed=11))
    assert report.passed and report.max_rel_error < 1e-6
    names = {t.name.split("#")[0] for t in report.tensors}
    assert {"tangent_forward", "tangent_backward:x", "tangent_backward(0):x"} <= names
    assert {f"penalty:{p}" for p in layer.params} <= names


@pytest.mark.parametrize("center", [0.0, 1.0])
@pytest.mark.parametrize("name", list(LAYERS))
def test_penalty_gradient_through_every_layer_matches_central_differences(name, center):
    assert_penalty_gradients_match(head(name), _inputs((6, 5), seed=3), center=center)


@pytest.mark.parametrize("center", [0.0, 1.0])
@pytest.mark.parametrize("stack", list(STACKS))
def test_penalty_gradient_of_stacks_matches_central_differences(stack, center):
    assert_penalty_gradients_match(STACKS[stack](F64), _inputs((7, 6), seed=5), center=center)


@pytest.mark.parametrize("stack", list(STACKS))
def test_input_gradient_matches_central_differences(stack):
    model = STACKS[stack](F64)
    generators = dropout_streams(model)
    states = [g.bit_generator.state for g in generators]

    def f(x):
        restore_streams(generators, states)
        value = float(model.forward(x).sum())
        restore_streams(generators, states)
        return value, penalties.input_gradient(model, x)

    assert mg.gradcheck(f, _inputs((7, 6), seed=8)).max_rel_error < 1e-6
    assert not any(g.any() for g in model.grads.values())  # input_gradient leaves grads alone


def test_input_gradient_through_batchnorm_in_training_mode_is_the_gradient_of_the_sum():
    model = mg.Sequential([_dense(4, 5, 1), mg.Tanh(), mg.BatchNorm(5, dtype=F64), _dense(5, 1, 2)])

    def f(x):  # training-mode outputs do not depend on the running statistics
        return float(model.forward(x).sum()), penalties.input_gradient(model, x)

    assert mg.gradcheck(f, _inputs((6, 4), seed=3)).max_rel_error < 1e-6


def test_whole_stack_passes_the_public_second_order_check():
    report = mg.gradcheck_second_order(STACKS["everything"](F64), _inputs((5, 6), seed=2))
    assert report.passed and report.max_rel_error < 1e-6


def test_float32_penalty_agrees_with_float64():
    x64 = _inputs((8, 6), seed=4)
    values, grads = {}, {}
    for dtype in (np.float32, F64):
        model = STACKS["everything"](F64).astype(dtype)
        model.layers[3].eval()  # float32 and float64 uniform draws differ: the same masks need no draws
        model.zero_grad()
        values[dtype] = penalties.gradient_penalty(model, x64.astype(dtype), weight=2.0, center=1.0)
        grads[dtype] = {k: v.copy() for k, v in model.grads.items()}
        assert all(g.dtype == dtype for g in model.grads.values())
    assert values[np.float32] == pytest.approx(values[F64], rel=1e-4)
    for name, g in grads[F64].items():
        assert np.abs(grads[np.float32][name] - g).max() <= 1e-4 * max(np.abs(g).max(), 1e-3), name


def test_penalty_adds_into_grads_and_r1_is_half_gamma():
    model = STACKS["smooth"](F64)
    x = _inputs((6, 6), seed=1)
    model.zero_grad()
    penalties.gradient_penalty(model, x, weight=1.0)
    once = {k: v.copy() for k, v in model.grads.items()}
    value = penalties.r1(model, x, gamma=2.0)  # weight gamma / 2 = 1: the same again, added
    assert value == pytest.approx(float(np.mean(np.sum(penalties.input_gradient(model, x) ** 2, axis=1))), rel=1e-12)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, 2 * once[name], rtol=1e-12, atol=1e-15)


def test_penalty_value_and_norms():
    model = STACKS["smooth"](F64)
    x = _inputs((6, 6), seed=9)
    g = penalties.input_gradient(model, x)
    norms = np.sqrt(np.sum(g * g, axis=1))
    value, got = penalties.penalty_and_norms(model, x, weight=3.0, center=1.0)
    np.testing.assert_allclose(got, norms, rtol=1e-13)
    assert value == pytest.approx(3.0 * np.mean((norms - 1.0) ** 2), rel=1e-12)
    assert penalties.gradient_penalty(model, x, weight=0.0) == 0.0


# --------------------------------------------------------------------------- (leaky) ReLU networks
@pytest.mark.parametrize("activation", [lambda: mg.LeakyReLU(0.2), mg.ReLU, lambda: mg.LeakyReLU(0.0)])
def test_relu_networks_penalty_does_not_depend_on_the_biases(activation):
    """The activations' second derivative is 0 away from the kinks, so the tangent of the
    backward pass is zero everywhere: the biases get exactly no gradient, and moving them
    (without crossing a kink) leaves the penalty unchanged to the last bit."""
    model = mg.Sequential([_dense(6, 8, 1), activation(), _dense(8, 5, 2), activation(), _dense(5, 1, 3)])
    x = _inputs((9, 6), seed=3)
    assert mgt.kink_margin(model, x) > 1e-3
    model.zero_grad()
    value = penalties.gradient_penalty(model, x, weight=1.0)
    for layer in model.layers:
        if isinstance(layer, mg.Dense):
            assert not layer.grads["b"].any()
            assert layer.grads["W"].any()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, mg.Dense):
            layer.params["b"] += rng.uniform(-1e-4, 1e-4, size=layer.params["b"].shape)
    assert mgt.kink_margin(model, x) > 0
    assert penalties.gradient_penalty(model, x, weight=1.0) == value


def _layer_by_layer_penalty(model, x, weight, center, grad_mode):
    """The general path of gradient_penalty_unchecked spelled out: every layer's own
    backward, tangent_forward and tangent_backward."""
    scores = model.forward_unchecked(x)
    top = np.ones_like(scores)
    layer_grads = model.backward_layers(top)
    g = layer_grads[0]
    direction, norms = np.empty_like(g), np.empty(g.shape[0])
    total = K.penalty_direction(g, center, weight / g.shape[0], direction, norms)
    model.tangent_forward(direction)
    model.tangent_backward(top, None, grad_mode, layer_grads=layer_grads)
    return weight * total / g.shape[0], norms


RELU_CHAINS = {
    "reference-like": lambda dt: STACKS["reference-like"](dt),
    "relu, unfused": lambda dt: mg.Sequential([_dense(6, 8, 1, dt), mg.ReLU(), _dense(8, 1, 3, dt)], fuse=False),
    "dense after dense": lambda dt: mg.Sequential([_dense(6, 5, 1, dt), _dense(5, 4, 2, dt), mg.LeakyReLU(0.1),
                                                   _dense(4, 1, 3, dt)]),
    "one-unit hidden layer": lambda dt: mg.Sequential([_dense(6, 1, 1, dt), mg.LeakyReLU(0.3), _dense(1, 4, 2, dt),
                                                       _dense(4, 1, 3, dt)]),
    "activation on top": lambda dt: mg.Sequential([_dense(6, 5, 1, dt), mg.ReLU(), _dense(5, 1, 3, dt),
                                                   mg.LeakyReLU(0.2)]),
    "single dense": lambda dt: mg.Sequential([_dense(6, 1, 1, dt)]),
}


@pytest.mark.parametrize("grad_mode", [K.GRAD_ADD, K.GRAD_WRITE, K.GRAD_SKIP])
@pytest.mark.parametrize("center", [0.0, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, F64])
@pytest.mark.parametrize("chain", list(RELU_CHAINS))
def test_relu_networks_specialised_path_equals_the_layer_by_layer_pass(chain, dtype, center, grad_mode):
    """Networks of built-in Dense layers and (leaky) ReLUs take their own path in
    gradient_penalty_unchecked; it gives the general path's value, norms and gradients."""
    x = _inputs((9, 6), seed=6, dtype=dtype)
    model = RELU_CHAINS[chain](dtype)
    assert penalties._piecewise_linear_chain(model) is not None
    rng = np.random.default_rng(1)
    start = {k: rng.normal(size=v.shape).astype(dtype) for k, v in model.grads.items()}
    results = []
    for run in (_layer_by_layer_penalty, penalties.gradient_penalty_unchecked):
        for name, grad in model.grads.items():
            grad[...] = start[name]
        value, norms = run(model, x, 0.7, center, grad_mode=grad_mode)
        results.append((value, norms, {k: v.copy() for k, v in model.grads.items()}))
    (value, norms, grads), (fast_value, fast_norms, fast_grads) = results
    rtol = 1e-12 if dtype == F64 else 1e-5
    assert fast_value == pytest.approx(value, rel=rtol)
    np.testing.assert_allclose(fast_norms, norms, rtol=rtol)
    for name, grad in grads.items():
        np.testing.assert_allclose(fast_grads[name], grad, rtol=rtol, atol=rtol * np.abs(grad).max(), err_msg=name)
        if grad_mode == K.GRAD_SKIP:
            np.testing.assert_array_equal(fast_grads[name], start[name])


def test_only_plain_relu_networks_take_the_specialised_path():
    class MyDense(mg.Dense):
        pass

    dense = lambda: _dense(4, 3, 1)  # noqa: E731
    assert penalties._piecewise_linear_chain(mg.Sequential([dense(), mg.LeakyReLU(0.2), _dense(3, 1, 2)])) is not None
    for layers in ([dense(), mg.Tanh(), _dense(3, 1, 2)], [mg.ReLU(), _dense(4, 1, 2)],
                   [dense(), mg.ReLU(), mg.LeakyReLU(0.2), _dense(3, 1, 2)],
                   [dense(), mg.Dropout(0.2, rng=0), _dense(3, 1, 2)],
                   [MyDense(4, 3, dtype=F64, rng=0), mg.ReLU(), _dense(3, 1, 2)]):
        assert penalties._piecewise_linear_chain(mg.Sequential(layers)) is None


def test_smooth_networks_penalty_does_depend_on_the_biases():
    model = STACKS["smooth"](F64)
    model.zero_grad()
    penalties.gradient_penalty(model, _inputs((6, 6)), weight=1.0)
    assert np.abs(model.layers[0].grads["b"]).max() > 1e-6


# --------------------------------------------------------------------------- property tests
@pytest.mark.property
@settings(deadline=None)
@given(mgt.second_order_layers_with_inputs())
def test_property_every_layer_passes_the_second_order_check(pair):
    layer, x = pair
    assert mg.gradcheck_second_order(layer, x, directions=1).max_rel_error < 1e-6


@pytest.mark.property
@settings(deadline=None)
@given(mgt.discriminators_with_inputs(), mgt.seeds())
def test_property_penalty_gradient_of_random_discriminators(pair, seed):
    model, x = pair
    center = float(np.random.default_rng(seed).integers(0, 2))
    assert_penalty_gradients_match(model, x, weight=1.3, center=center)


# --------------------------------------------------------------------------- an independent implementation
def _plain_penalty(specs, x, weight, center):
    """The penalty in plain NumPy (complex-capable): forward, hand-written first-order
    backward, norm. ``specs`` lists ("dense", W, b), ("tanh",), ("sigmoid",), ("leaky", a),
    ("bn", gamma, beta, mean, inv_std) and ("mask", m)."""
    h, cache = x.astype(complex), []
    for spec in specs:
        kind = spec[0]
        if kind == "dense":
            h = h @ spec[1] + spec[2]
        elif kind == "tanh":
            h = np.tanh(h)
        elif kind == "sigmoid":
            h = 1.0 / (1.0 + np.exp(-h))
        elif kind == "leaky":
            h = np.where(h.real > 0, h, spec[1] * h)
        elif kind == "bn":
            h = spec[1] * (h - spec[3]) * spec[4] + spec[2]
        elif kind == "mask":
            h = h * spec[1]
        cache.append(h)
    g = np.ones_like(h)
    for spec, out in zip(reversed(specs), reversed(cache)):
        kind = spec[0]
        if kind == "dense":
            g = g @ spec[1].T
        elif kind == "tanh":
            g = g * (1 - out * out)
        elif kind == "sigmoid":
            g = g * out * (1 - out)
        elif kind == "leaky":
            g = g * np.where(out.real > 0, 1.0, spec[1])
        elif kind == "bn":
            g = g * spec[1] * spec[4]
        elif kind == "mask":
            g = g * spec[1]
    squared = np.sum(g * g, axis=1)  # no conjugate: analytic, for the complex step
    if center == 0.0:
        return weight * np.mean(squared)
    return weight * np.mean((np.sqrt(squared) - center) ** 2)


def _specs_of(model, x):
    """The model as plain arrays (copies), Dropout as the mask its next forward will draw."""
    specs, h = [], x
    for layer in model.layers:
        if isinstance(layer, mg.Dense):
            specs.append(["dense", layer.params["W"].copy(), layer.params["b"].copy()])
        elif isinstance(layer, mg.Tanh):
            specs.append(["tanh"])
        elif isinstance(layer, mg.Sigmoid):
            specs.append(["sigmoid"])
        elif isinstance(layer, (mg.LeakyReLU, mg.ReLU)):
            specs.append(["leaky", layer.alpha])
        elif isinstance(layer, mg.BatchNorm):
            specs.append(["bn", layer.params["gamma"].copy(), layer.params["beta"].copy(), layer.running_mean.copy(),
                          1 / np.sqrt(layer.running_var + layer.eps)])
        elif isinstance(layer, mg.Dropout):
            state = layer.rng.bit_generator.state
            specs.append(["mask", layer.forward(np.ones_like(h))])  # the mask, through the public forward
            layer.rng.bit_generator.state = state
        h = layer.forward(h) if not isinstance(layer, mg.Dropout) else h
    return specs


def _complex_step_gradients(specs, x, weight, center):
    """dP/dtheta by the complex step, Im P(theta + i h e_k) / h: exact to rounding (no
    subtraction), so it can be compared at 1e-10."""
    h = 1e-30
    grads = []
    for spec in specs:
        arrays = {}
        for slot in ((1, 2) if spec[0] == "dense" else (1, 2) if spec[0] == "bn" else ()):
            param = spec[slot].astype(complex)
            spec[slot] = param
            out = np.zeros(param.shape)
            for index in np.ndindex(param.shape):
                param[index] += 1j * h
                out[index] = _plain_penalty(specs, x, weight, center).imag / h
                param[index] -= 1j * h
            spec[slot] = param.real.copy()
            arrays[slot] = out
        grads.append(arrays)
    return grads


@pytest.mark.parametrize("center", [0.0, 1.0])
def test_matches_an_independent_complex_step_implementation_to_1e10(center):
    model = STACKS["everything"](F64)
    x = _inputs((7, 6), seed=12)
    specs = _specs_of(model, x)
    expected_value = _plain_penalty([list(s) for s in specs], x, 1.7, center).real
    expected = _complex_step_gradients([list(s) for s in specs], x, 1.7, center)
    model.zero_grad()
    value = penalties.gradient_penalty(model, x, weight=1.7, center=center)
    assert abs(value - expected_value) <= 1e-12 * abs(expected_value)
    checked = 0
    for layer, arrays in zip(model.layers, expected):
        for slot, grad in arrays.items():
            name = {("dense", 1): "W", ("dense", 2): "b", ("bn", 1): "gamma", ("bn", 2): "beta"}[
                ("dense" if isinstance(layer, mg.Dense) else "bn", slot)]
            ours = layer.grads[name]
            scale = max(np.abs(grad).max(), 1e-300)
            assert np.abs(ours - grad).max() <= 1e-10 * scale, (layer, name)
            checked += 1
    assert checked == 10


def test_matches_pytorch_double_backward_to_1e10():
    torch = pytest.importorskip("torch")
    model = STACKS["everything"](F64)
    x = _inputs((7, 6), seed=13)
    specs = _specs_of(model, x)
    model.zero_grad()
    value = penalties.gradient_penalty(model, x, weight=10.0, center=1.0)

    params = []
    for spec in specs:
        if spec[0] in ("dense", "bn"):
            spec[1] = torch.tensor(spec[1], requires_grad=True)
            spec[2] = torch.tensor(spec[2], requires_grad=True)
            params += [spec[1], spec[2]]
        if spec[0] == "bn":
            spec[3], spec[4] = torch.tensor(spec[3]), torch.tensor(spec[4])
        if spec[0] == "mask":
            spec[1] = torch.tensor(spec[1])
    xt = torch.tensor(x, requires_grad=True)
    h = xt
    for spec in specs:
        kind = spec[0]
        if kind == "dense":
            h = h @ spec[1] + spec[2]
        elif kind == "tanh":
            h = torch.tanh(h)
        elif kind == "sigmoid":
            h = torch.sigmoid(h)
        elif kind == "leaky":
            h = torch.nn.functional.leaky_relu(h, spec[1])
        elif kind == "bn":
            h = spec[1] * (h - spec[3]) * spec[4] + spec[2]
        elif kind == "mask":
            h = h * spec[1]
    (g,) = torch.autograd.grad(h.sum(), xt, create_graph=True)
    penalty = 10.0 * ((g.norm(dim=1) - 1.0) ** 2).mean()
    # The biases below the last nonlinearity do not reach the penalty at all (None: zero).
    torch_grads = [torch.zeros_like(p) if g is None else g
                   for p, g in zip(params, torch.autograd.grad(penalty, params, allow_unused=True))]
    assert abs(value - penalty.item()) <= 1e-12 * abs(penalty.item())
    ours = [p.grad for p in model.parameters()]
    assert len(ours) == len(torch_grads)
    for mine, theirs in zip(ours, torch_grads):
        theirs = theirs.numpy()
        assert np.abs(mine - theirs).max() <= 1e-10 * max(np.abs(theirs).max(), 1e-300)


# --------------------------------------------------------------------------- conditional models
class ClassScale(mg.Layer):
    """y = x * S[c]: one learned scale per class and feature (a conditional layer)."""

    uses_condition = True

    def __init__(self, classes, features, seed=0):
        super().__init__()
        self.add_param("S", np.random.default_rng(seed).uniform(0.5, 1.5, (classes, features)))

    def forward(self, x, condition):
        self.x, self.c = x, condition
        return x * self.params["S"][condition]

    def backward(self, grad_y):
        np.add.at(self.grads["S"], self.c, grad_y * self.x)
        return grad_y * self.params["S"][self.c]

    def tangent_forward(self, x_dot):
        self.x_dot = x_dot
        return x_dot * self.params["S"][self.c]

    def tangent_backward(self, grad_y, grad_y_dot, grad_mode=K.GRAD_ADD):
        tangent = grad_y * self.x_dot + (0 if grad_y_dot is None else grad_y_dot * self.x)
        np.add.at(self.grads["S"], self.c, tangent)
        return None if grad_y_dot is None else grad_y_dot * self.params["S"][self.c]


def test_conditional_models_take_the_condition_through():
    labels = np.array([0, 2, 1, 2, 0, 1])
    x = _inputs((6, 4), seed=6)
    layer = ClassScale(3, 4)
    assert mg.gradcheck_second_order(layer, x, condition=labels).max_rel_error < 1e-6
    model = mg.Sequential([_dense(4, 4, 1), mg.Tanh(), ClassScale(3, 4, seed=2), _dense(4, 1, 2)])
    assert_penalty_gradients_match(model, x, center=1.0, condition=labels)
    with pytest.raises(ValueError, match="conditional"):
        penalties.gradient_penalty(model, x)


# --------------------------------------------------------------------------- errors
def test_batchnorm_in_training_mode_is_refused_naming_the_layer():
    model = mg.Sequential([_dense(4, 3, 1), mg.Tanh(), mg.BatchNorm(3, dtype=F64), _dense(3, 1, 2)])
    x = _inputs((5, 4))
    for call in (lambda: penalties.gradient_penalty(model, x), lambda: penalties.r1(model, x, 1.0),
                 lambda: penalties.wgan_gp(model, x, x[::-1].copy(), rng=np.random.default_rng(0))):
        with pytest.raises(ValueError, match=r"layers\[2\] \(BatchNorm\(3.*training mode.*eval\(\)"):
            call()
    assert not any(g.any() for g in model.grads.values())
    model.eval()
    assert penalties.gradient_penalty(model, x) > 0
    with pytest.raises(ValueError, match="training mode"):
        mg.gradcheck_second_order(mg.BatchNorm(3, dtype=F64), x[:, :3])


def test_a_custom_layer_without_the_second_order_pass_is_told_what_to_write():
    model = mg.Sequential([_dense(4, 4, 1), Scale(4), _dense(4, 1, 2)])
    x = _inputs((5, 4))
    with pytest.raises(ValueError, match=r"layers\[1\].*Scale\.tangent_forward\(x_dot\).*Scale\.tangent_backward"):
        penalties.gradient_penalty(model, x)
    with pytest.raises(NotImplementedError, match="tangent_forward"):
        mg.gradcheck_second_order(Scale(4), x)
    assert penalties.input_gradient(model, x).shape == (5, 4)  # first order still works


def test_a_subclass_that_changes_the_computation_loses_the_inherited_second_order_pass():
    class Doubled(mg.Tanh):
        def forward(self, x):
            return 2 * super().forward(x)

        def backward(self, grad_y):
            return super().backward(2 * grad_y)

    assert mg.layers.has_second_order(mg.Tanh()) and not mg.layers.has_second_order(Doubled())
    with pytest.raises(ValueError, match="Doubled.tangent_forward"):
        penalties.gradient_penalty(mg.Sequential([_dense(3, 3, 1), Doubled(), _dense(3, 1, 2)]), _inputs((4, 3)))


def test_the_public_check_catches_wrong_second_order_methods():
    class NoCurvature(ClassScale):
        """Forgets the G * x_dot term of R{dL/dS}."""

        def tangent_backward(self, grad_y, grad_y_dot, grad_mode=K.GRAD_ADD):
            if grad_y_dot is not None:
                np.add.at(self.grads["S"], self.c, grad_y_dot * self.x)
            return None if grad_y_dot is None else grad_y_dot * self.params["S"][self.c]

    class Overwrites(ClassScale):
        """Writes its tangent into grads instead of adding it."""

        def tangent_backward(self, grad_y, grad_y_dot, grad_mode=K.GRAD_ADD):
            self.grads["S"][...] = 0
            return super().tangent_backward(grad_y, grad_y_dot, grad_mode)

    labels = np.array([0, 1, 1, 0])
    x = _inputs((4, 3))
    with pytest.raises(AssertionError, match=r"tangent_backward.*:S"):
        mg.gradcheck_second_order(NoCurvature(2, 3), x, condition=labels)
    report = mg.gradcheck_second_order(Overwrites(2, 3), x, condition=labels, raise_on_failure=False)
    assert not report.passed and not report["tangent_backward:S#0"].passed


def test_bad_arguments_get_clear_errors():
    model = STACKS["smooth"](F64)
    x = _inputs((4, 6))
    with pytest.raises(TypeError, match="model must be a minigan Sequential"):
        penalties.gradient_penalty(mg.Tanh(), x)
    with pytest.raises(TypeError, match="float64"):
        penalties.gradient_penalty(model, x.astype(np.float32))
    with pytest.raises(ValueError, match="6 features"):
        penalties.r1(model, x[:, :5], 1.0)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        penalties.gradient_penalty(model, x, weight=-1.0)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        penalties.r1(model, x, -2.0)
    with pytest.raises(ValueError, match="one output per row"):
        penalties.gradient_penalty(mg.Sequential([_dense(6, 2, 1)]), x)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        penalties.wgan_gp(model, x, x, rng=0)
    with pytest.raises(ValueError, match="fake must have the shape"):
        penalties.wgan_gp(model, x, x[:3], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="directions"):
        mg.gradcheck_second_order(mg.Tanh(), x, directions=0)


def test_wgan_gp_uses_per_row_interpolates_from_the_rng():
    model = STACKS["smooth"](F64)
    real, fake = _inputs((5, 6), seed=1), _inputs((5, 6), seed=2)
    eps = np.random.default_rng(4).random((5, 1))
    expected = penalties.gradient_penalty(model, eps * real + (1 - eps) * fake, weight=10.0, center=1.0)
    model.zero_grad()
    assert penalties.wgan_gp(model, real, fake, rng=np.random.default_rng(4)) == pytest.approx(expected, rel=1e-12)
    mid = penalties.interpolates(real, fake, np.random.default_rng(4))
    assert np.all((mid - fake) * (real - fake) >= -1e-15)  # on the segment, row by row


# --------------------------------------------------------------------------- the example's layer
def _example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "custom_layer_gradcheck.py"
    spec = importlib.util.spec_from_file_location("custom_layer_gradcheck_second_order", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()


def test_the_example_layer_passes_the_second_order_check_and_trains_a_penalty():
    assert EXAMPLE.check_second_order().passed
    assert EXAMPLE.penalty_through_the_layer() > 0


@pytest.mark.property
@settings(deadline=None)
@given(mgt.feature_sizes(1, 4).flatmap(lambda f: mgt.inputs_for(f)), mgt.seeds())
def test_property_example_layer_second_order(x, seed):
    layer = EXAMPLE.LearnedSoftplus(x.shape[1], rng=seed)
    assert mg.gradcheck_second_order(layer, x, directions=1).max_rel_error < 1e-6
