"""Helpers shared by several test files: a user-written layer, synthetic images, central
differences of a gradient penalty, and the ``minigan`` command run as a user runs it."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import minigan as mg
from minigan import penalties


class Scale(mg.Layer):
    """y = x * s, one learned scale per feature."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.add_param("s", np.linspace(0.5, 2.0, features))

    def forward(self, x):
        self.x = x
        return x * self.params["s"]

    def backward(self, grad_y):
        self.grads["s"] += (grad_y * self.x).sum(axis=0)
        return grad_y * self.params["s"]


def textured(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 images (n, size, size): a smooth pattern plus noise, so plenty of non-zero DCT coefficients."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    img = 128 + 50 * np.sin(xx / 3.0 + phase) * np.cos(yy / 4.0) + rng.normal(0, 8, (n, size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


ROOT = Path(__file__).resolve().parents[1]


def run_minigan(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m minigan ARGS`` in a subprocess, from ``cwd``, with the source tree importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("MINIGAN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "minigan", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert a clean success: exit 0 and no traceback."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def failed_cleanly(result: subprocess.CompletedProcess, *patterns: str) -> str:
    """Assert a clean failure: non-zero exit, no traceback, and every pattern in stderr."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for pattern in patterns:
        assert pattern in result.stderr, result.stderr
    return result.stderr


def dropout_streams(model):
    """The random streams of a model's Dropout layers."""
    return [l.rng for l in model.layers if isinstance(getattr(l, "rng", None), np.random.Generator)]


def restore_streams(generators, states):
    """Put every stream back to a saved state."""
    for g, s in zip(generators, states):
        g.bit_generator.state = s


def numeric_penalty_gradients(model, x, weight, center, condition=None, eps=1e-6):
    """Central differences of the penalty, computed from input_gradient (first order) alone,
    with the same Dropout masks at every evaluation; the streams are left as they were."""
    generators = dropout_streams(model)
    states = [g.bit_generator.state for g in generators]

    def value():
        restore_streams(generators, states)
        grad = penalties.input_gradient(model, x, condition)
        norms = np.sqrt(np.sum(grad * grad, axis=1))
        return weight * float(np.mean((norms - center) ** 2))

    numeric = {}
    for name, param in model.params.items():
        out = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + eps
            plus = value()
            param[index] = original - eps
            minus = value()
            param[index] = original
            out[index] = (plus - minus) / (2 * eps)
        numeric[name] = out
    reference = value()
    restore_streams(generators, states)
    return reference, numeric
