"""mg.gradcheck as a public tool: it passes right gradients and catches wrong ones."""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import minigan as mg
from shared import Scale
from minigan import testing as mgt

pytestmark = pytest.mark.gradcheck

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_layer_gradcheck.py"




class WrongParamGrad(Scale):
    """The gradient of s is off by a factor 1.01 in feature 2 only."""

    def backward(self, grad_y):
        grad = (grad_y * self.x).sum(axis=0)
        grad[2] *= 1.01
        self.grads["s"] += grad
        return grad_y * self.params["s"]


class WrongInputGrad(Scale):
    """Forgets the scale in dL/dx (a classic slip)."""

    def backward(self, grad_y):
        self.grads["s"] += (grad_y * self.x).sum(axis=0)
        return grad_y


def _x(shape=(5, 4), seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def test_passes_on_a_correct_custom_layer_and_reports_every_tensor():
    report = mg.gradcheck(Scale(4), _x())
    assert report.passed
    assert [t.name for t in report.tensors] == ["x", "s"]
    for t in report.tensors:
        assert t.passed
        assert 0.0 <= t.max_abs_error < 1e-8
        assert 0.0 <= t.max_rel_error < 1e-6
    assert report.max_rel_error == max(t.max_rel_error for t in report.tensors)
    assert report["s"].name == "s"
    text = str(report)
    assert "x" in text and "s" in text and "max rel" in text


def test_fails_naming_the_parameter_and_its_index():
    with pytest.raises(AssertionError) as info:
        mg.gradcheck(WrongParamGrad(4), _x())
    message = str(info.value)
    assert re.search(r"\bs\[2\]", message), message
    report = mg.gradcheck(WrongParamGrad(4), _x(), raise_on_failure=False)
    assert not report.passed
    assert report["x"].passed and not report["s"].passed
    assert report["s"].worst_index == (2,)
    assert report["s"].max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-4)


def test_fails_naming_the_input_gradient():
    with pytest.raises(AssertionError, match=r"\bx\[\d+, \d+\]"):
        mg.gradcheck(WrongInputGrad(4), _x())


def test_catches_a_wrong_builtin_gradient():
    class BrokenTanh(mg.Tanh):
        def backward(self, grad_y):
            return super().backward(grad_y) * 1.001

    with pytest.raises(AssertionError, match=r"x\["):
        mg.gradcheck(BrokenTanh(), _x())


def test_leaves_the_callers_layer_untouched():
    layer = mg.Sequential([mg.Dense(4, 3, rng=0), mg.BatchNorm(3), mg.Dropout(0.5, rng=1)])
    state = layer.state_dict()
    rng_state = layer.layers[2].rng.bit_generator.state
    mg.gradcheck(layer, _x())
    for key, value in layer.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, state[key])
    assert layer.layers[2].rng.bit_generator.state == rng_state
    assert not any(g.any() for g in layer.grads.values())


def test_works_on_losses_with_labels():
    pred = _x((6, 1))
    report = mg.gradcheck(mg.losses.BCEWithLogits(), pred, labels=np.ones((6, 1)))
    assert report.passed and report.tensors[0].name == "pred"
    with pytest.raises(ValueError, match="labels"):
        mg.gradcheck(mg.losses.MSE(), pred)


def test_works_on_callables_returning_value_and_gradient():
    def cubic(x):
        return float(np.sum(x**3)), 3 * x**2

    report = mg.gradcheck(cubic, _x())
    assert report.passed and report.tensors[0].name == "x"
    assert report.max_rel_error < 1e-6

    def wrong(x):
        grad = 3 * x**2
        grad[1, 2] += 0.1
        return float(np.sum(x**3)), grad

    with pytest.raises(AssertionError, match=r"x\[1, 2\]"):
        mg.gradcheck(wrong, _x())

    with pytest.raises(ValueError, match="shape"):
        mg.gradcheck(lambda x: (0.0, np.zeros(3)), _x())


def test_rejects_what_it_cannot_check():
    with pytest.raises(TypeError, match="target"):
        mg.gradcheck(42, _x())
    with pytest.raises(ValueError, match="eps"):
        mg.gradcheck(Scale(4), _x(), eps=0.0)
    with pytest.raises(ValueError, match="rtol"):
        mg.gradcheck(Scale(4), _x(), rtol=-1.0)
    with pytest.raises(ValueError, match="x"):
        mg.gradcheck(Scale(4), np.full((2, 4), np.nan))


@pytest.mark.property
@settings(deadline=None)
@given(mgt.inputs_for(features=4))
def test_custom_layer_property(x):
    assert mg.gradcheck(Scale(4), x).max_rel_error < 1e-6
    with pytest.raises(AssertionError):
        mg.gradcheck(WrongInputGrad(4), x)


# --------------------------------------------------------------------------- the example
@functools.lru_cache(maxsize=1)
def _load_example():
    spec = importlib.util.spec_from_file_location("custom_layer_gradcheck", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.property
@settings(deadline=None)
@given(mgt.inputs_for(features=3), mgt.seeds())
def test_example_layer_property(x, seed):
    layer = _load_example().LearnedSoftplus(3, rng=seed)
    assert mg.gradcheck(layer, x).max_rel_error < 1e-6


def test_example_runs_as_a_script():
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "beta" in out.stdout and "max rel err" in out.stdout
    assert "passed: True" in out.stdout
    assert re.search(r"passed on \d+ drawn inputs", out.stdout)
