"""Sequential: gradients of a whole stack, the fused fast path, parameters, state, summary."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan as mg
from shared import Scale
from minigan import testing as mgt

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[1]


def reference_like(dtype=np.float64, seed: int = 0, *, fuse: bool = True, dropout: float | None = None,
                   sizes=(5, 7, 4)) -> mg.Sequential:
    """Dense -> LeakyReLU -> BatchNorm -> Dense -> Tanh (the generator's pattern, small)."""
    a, b, c = sizes
    layers = [
        mg.Dense(a, b, dtype=dtype, rng=seed),
        mg.LeakyReLU(0.2),
        mg.BatchNorm(b, momentum=0.8, dtype=dtype),
    ]
    if dropout is not None:
        layers.append(mg.Dropout(dropout, rng=seed + 100))
    layers += [mg.Dense(b, c, dtype=dtype, rng=seed + 1), mg.Tanh()]
    return mg.Sequential(layers, fuse=fuse)


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def expected_param_count(model: mg.Sequential) -> int:
    total = 0
    for layer in model.layers:
        if isinstance(layer, mg.Dense):
            total += layer.in_features * layer.out_features + layer.out_features
        elif isinstance(layer, mg.BatchNorm):
            total += 2 * layer.num_features
    return total


# --------------------------------------------------------------------------- gradients
@pytest.mark.gradcheck
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("mode", ["train", "eval", "dropout"])
def test_gradcheck_reference_like_stack(fuse, mode):
    model = reference_like(fuse=fuse, dropout=0.3 if mode == "dropout" else None)
    if mode == "eval":
        model.forward(_x((6, 5), seed=1) * 2)  # move the running statistics away from (0, 1)
        model.eval()
    report = mg.gradcheck(model, _x((6, 5), seed=2))
    assert report.max_rel_error < 1e-6
    assert {t.name for t in report.tensors} == {"x", *model.params}


@pytest.mark.gradcheck
def test_gradcheck_sequential_with_every_activation():
    model = mg.Sequential([
        mg.Dense(3, 4, dtype=np.float64, rng=0), mg.Sigmoid(),
        mg.Dense(4, 4, dtype=np.float64, rng=1), mg.ReLU(),
        mg.Dense(4, 2, dtype=np.float64, rng=2),
    ])
    x = _x((5, 3), seed=3)
    assert mg.gradcheck(model, x).max_rel_error < 1e-6


# --------------------------------------------------------------------------- fused == unfused
def _run(model: mg.Sequential, x: np.ndarray, g: np.ndarray, steps: int = 2):
    outputs = []
    for _ in range(steps):
        model.zero_grad()
        y = model.forward(x)
        grad_x = model.backward(g)
        outputs.append((y.copy(), grad_x.copy(), {k: v.copy() for k, v in model.grads.items()},
                        {k: v.copy() for k, v in model.buffers.items()}))
    return outputs


def _assert_bit_identical(a, b):
    for (y1, gx1, grads1, buf1), (y2, gx2, grads2, buf2) in zip(a, b):
        assert np.array_equal(y1, y2), "forward outputs differ"
        assert np.array_equal(gx1, gx2), "input gradients differ"
        assert grads1.keys() == grads2.keys()
        for key in grads1:
            assert np.array_equal(grads1[key], grads2[key]), f"gradient {key} differs"
        for key in buf1:
            assert np.array_equal(buf1[key], buf2[key]), f"buffer {key} differs"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout", [None, 0.25])
def test_fused_and_unfused_are_bit_identical(dtype, dropout):
    fused = reference_like(dtype, seed=3, fuse=True, dropout=dropout)
    plain = reference_like(dtype, seed=3, fuse=False, dropout=dropout)
    # the test means something only if the default really fuses something
    assert any(act is not None for _, act in fused._steps)
    assert all(act is None for _, act in plain._steps)
    x = _x((8, 5), seed=4, dtype=dtype)
    g = _x((8, 4), seed=5, dtype=dtype)
    _assert_bit_identical(_run(fused, x, g), _run(plain, x, g))
    fused.eval(), plain.eval()
    _assert_bit_identical(_run(fused, x, g, 1), _run(plain, x, g, 1))


@pytest.mark.property
@settings(deadline=None)
@given(
    st.lists(st.tuples(mgt.feature_sizes(1, 6), mgt.activations()), min_size=1, max_size=3),
    mgt.batch_sizes(),
    mgt.dtypes(),
    mgt.seeds(),
)
def test_fused_equals_unfused_property(blocks, batch, dtype, seed):
    def build(fuse):
        layers, features = [], 3
        for i, (out, act) in enumerate(blocks):
            fresh = mg.LeakyReLU(act.alpha) if isinstance(act, mg.LeakyReLU) else type(act)()  # one object per model
            layers += [mg.Dense(features, out, dtype=dtype, rng=seed + i), fresh]
            features = out
        return mg.Sequential(layers, fuse=fuse)

    x = np.random.default_rng(seed).normal(size=(batch, 3)).astype(dtype)
    fused, plain = build(True), build(False)
    g = np.random.default_rng(seed + 1).normal(size=(batch, blocks[-1][0])).astype(dtype)
    _assert_bit_identical(_run(fused, x, g, 1), _run(plain, x, g, 1))


# --------------------------------------------------------------------------- float32 vs float64
def test_float32_model_agrees_with_float64_model():
    m64 = reference_like(np.float64, seed=9)
    m32 = reference_like(np.float32, seed=9)
    for key, value in m64.params.items():
        np.testing.assert_array_equal(m32.params[key], value.astype(np.float32))
    x = _x((16, 5), seed=1)
    g = _x((16, 4), seed=2)
    y64, y32 = m64.forward(x), m32.forward(x.astype(np.float32))
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    gx64, gx32 = m64.backward(g), m32.backward(g.astype(np.float32))
    np.testing.assert_allclose(gx32, gx64, rtol=1e-4, atol=1e-5)
    for key in m64.grads:
        scale = float(np.abs(m64.grads[key]).max())
        np.testing.assert_allclose(m32.grads[key], m64.grads[key], rtol=1e-4, atol=1e-5 * scale, err_msg=key)
    for key in m64.buffers:
        np.testing.assert_allclose(m32.buffers[key], m64.buffers[key], rtol=1e-5, atol=1e-6, err_msg=key)


# --------------------------------------------------------------------------- parameters
def test_parameters_alias_the_layer_arrays():
    model = reference_like()
    params = model.parameters()
    assert [p.name for p in params] == ["0.W", "0.b", "2.gamma", "2.beta", "3.W", "3.b"]
    for p in params:
        index, key = p.name.split(".")
        layer = model.layers[int(index)]
        assert p.layer is layer
        assert p.value is layer.params[key] and p.grad is layer.grads[key]
        assert np.shares_memory(p.value, layer.params[key]) and np.shares_memory(p.grad, layer.grads[key])
    # a gradient written by backward is visible through the Parameter objects
    model.forward(_x((4, 5)))
    model.backward(np.ones((4, 4)))
    assert all(p.grad.any() for p in params)
    np.testing.assert_array_equal(params[0].grad, model.layers[0].grads["W"])
    assert sum(p.value.size for p in params) == expected_param_count(model) == model.num_params()


def test_optimizer_updates_in_place_and_the_model_sees_it():
    model = reference_like()
    ids = {p.name: id(p.value) for p in model.parameters()}
    before = {k: v.copy() for k, v in model.params.items()}
    opt = mg.optim.Adam(model.parameters(), lr=1e-2)
    x = _x((6, 5))
    for _ in range(2):
        model.zero_grad()
        y = model.forward(x)
        model.backward(2 * y)
        opt.step()
    for p in model.parameters():
        assert id(p.value) == ids[p.name]
        assert not np.array_equal(p.value, before[p.name]), p.name
    layer_arrays = {f"{i}.{k}": v for i, layer in enumerate(model.layers) for k, v in layer.params.items()}
    for p in opt.params:
        assert p.value is layer_arrays[p.name]


def test_backward_flags_param_grads_and_input_grad():
    model = reference_like()
    x, g = _x((6, 5)), _x((6, 4), seed=1)
    model.forward(x)
    model.zero_grad()
    full = model.backward(g).copy()
    grads = {k: v.copy() for k, v in model.grads.items()}
    model.zero_grad()
    only_input = model.backward(g, param_grads=False)
    np.testing.assert_array_equal(only_input, full)
    assert not any(v.any() for v in model.grads.values())
    assert model.backward(g, input_grad=False) is None
    for key, value in model.grads.items():
        np.testing.assert_array_equal(value, grads[key])


def test_train_eval_and_zero_grad_reach_every_layer():
    model = reference_like(dropout=0.5)
    model.eval()
    assert not any(layer.training for layer in model.layers)
    model.train()
    assert all(layer.training for layer in model.layers)
    model.forward(_x((4, 5)))
    model.backward(np.ones((4, 4)))
    model.zero_grad()
    assert not any(v.any() for v in model.grads.values())




@pytest.mark.gradcheck
def test_custom_layer_inside_sequential():
    model = mg.Sequential([mg.Dense(3, 4, dtype=np.float64, rng=0), Scale(4), mg.Tanh()])
    assert "1.s" in model.params
    assert mg.gradcheck(model, _x((5, 3))).max_rel_error < 1e-6
    # param_grads=False keeps the custom layer's gradients untouched too
    model.forward(_x((5, 3)))
    model.zero_grad()
    model.backward(np.ones((5, 4)), param_grads=False)
    assert not model.layers[1].grads["s"].any()


# --------------------------------------------------------------------------- state
def test_state_dict_is_a_copy_and_round_trips():
    source = reference_like(seed=1)
    source.forward(_x((8, 5)) * 3)  # non-default running statistics
    state = source.state_dict()
    assert set(state) == {"0.W", "0.b", "2.gamma", "2.beta", "2.running_mean", "2.running_var", "3.W", "3.b"}
    state["0.W"] += 1.0
    assert not np.array_equal(state["0.W"], source.params["0.W"])  # a copy, not a view
    state = source.state_dict()

    target = reference_like(seed=2)
    ids = {k: id(v) for k, v in target.params.items()}
    target.load_state_dict(state)
    assert {k: id(v) for k, v in target.params.items()} == ids  # loaded in place
    for key, value in state.items():
        np.testing.assert_array_equal({**target.params, **target.buffers}[key], value)
    x = _x((6, 5), seed=3)
    for mode in ("eval", "train"):
        getattr(source, mode)(), getattr(target, mode)()
        np.testing.assert_array_equal(target.forward(x), source.forward(x))


@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda s: s.pop("3.b"), ValueError, ["missing", "3.b"]),
        (lambda s: s.__setitem__("9.W", np.zeros(3)), ValueError, ["unexpected", "9.W"]),
        (lambda s: s.__setitem__("0.W", np.zeros((7, 5))), ValueError, ["0.W", "(5, 7)", "(7, 5)"]),
        (lambda s: s.__setitem__("2.running_var", np.zeros(3)), ValueError, ["2.running_var", "shape"]),
        (lambda s: s.__setitem__("0.b", np.zeros(7, dtype=np.int64)), TypeError, ["0.b", "int64"]),
        (lambda s: s["3.W"].__setitem__((0, 0), np.nan), ValueError, ["3.W", "NaN"]),
    ],
)
def test_load_state_dict_rejects_bad_state_and_changes_nothing(edit, error, words):
    model = reference_like(seed=1)
    before = model.state_dict()
    state = reference_like(seed=2).state_dict()
    edit(state)
    with pytest.raises(error) as info:
        model.load_state_dict(state)
    for word in words:
        assert word in str(info.value)
    after = model.state_dict()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_load_state_dict_rejects_a_non_mapping():
    with pytest.raises(TypeError, match="state"):
        reference_like().load_state_dict([np.zeros(3)])


# --------------------------------------------------------------------------- summary
def test_summary_lists_every_layer_and_the_total():
    model = mg.Sequential([
        mg.Dense(100, 256, rng=0), mg.LeakyReLU(0.2), mg.BatchNorm(256),
        mg.Dense(256, 784, rng=1), mg.Dropout(0.3, rng=2), mg.Tanh(),
    ])
    text = model.summary()
    total = (100 * 256 + 256) + 2 * 256 + (256 * 784 + 784)
    assert total == expected_param_count(model) == model.num_params()
    assert f"{total:,}" in text
    lines = text.splitlines()
    for name in ["Dense", "LeakyReLU", "BatchNorm", "Dropout", "Tanh"]:
        assert any(name in line for line in lines), name
    assert sum("Dense" in line for line in lines) == 2
    assert "784" in text and f"{100 * 256 + 256:,}" in text and f"{256 * 784 + 784:,}" in text
    assert "32" in model.summary(batch_size=32)


# --------------------------------------------------------------------------- import cost
def test_import_minigan_loads_no_heavy_library():
    code = (
        "import sys, minigan\n"
        "heavy = [m for m in ('numba', 'scipy', 'matplotlib', 'tqdm', 'hypothesis') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import minigan loaded {out.stdout.strip()}"


@pytest.mark.parametrize("fuse", [True, False])
def test_backward_without_accumulate_overwrites_the_gradients(fuse):
    model = mg.Sequential([mg.Dense(3, 4, dtype=np.float64, rng=0), mg.LeakyReLU(0.2), mg.BatchNorm(4, dtype=np.float64),
                           Scale(4), mg.Dense(4, 2, dtype=np.float64, rng=1), mg.Sigmoid()], fuse=fuse)
    x, g = _x((6, 3)), _x((6, 2), seed=1)
    model.forward(x)
    model.zero_grad()
    expected_x = model.backward(g).copy()
    expected = {k: v.copy() for k, v in model.grads.items()}
    for value in model.grads.values():
        value[...] = 7.0  # stale gradients that must not survive
    grad_x = model.backward(g, accumulate=False)
    np.testing.assert_array_equal(grad_x, expected_x)
    for key, value in model.grads.items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    model.backward(g)  # and the default adds on top
    for key, value in model.grads.items():
        np.testing.assert_allclose(value, 2 * expected[key], rtol=1e-14, err_msg=key)
