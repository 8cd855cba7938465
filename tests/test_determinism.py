"""Same seed -> bit-identical weights after training steps; different seeds -> different weights."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigan as mg

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[1]


def train(seed: int, dtype=np.float32, steps: int = 5, fuse: bool = True) -> dict[str, np.ndarray]:
    """A few Adam steps of a small discriminator-like model with Dropout and BatchNorm.

    Every random draw (weights, dropout masks, data) comes from ``seed``.
    """
    rng = np.random.default_rng(seed)
    model = mg.Sequential([
        mg.Dense(6, 8, dtype=dtype, rng=rng), mg.LeakyReLU(0.2), mg.BatchNorm(8, dtype=dtype),
        mg.Dropout(0.3, rng=rng), mg.Dense(8, 4, dtype=dtype, rng=rng), mg.Tanh(), mg.Dense(4, 1, dtype=dtype, rng=rng),
    ], fuse=fuse)
    loss = mg.losses.BCEWithLogits(label_smoothing=0.1)
    opt = mg.optim.Adam(model.parameters(), lr=2e-3, beta1=0.5)
    for _ in range(steps):
        x = rng.normal(size=(16, 6)).astype(dtype)
        t = rng.integers(0, 2, size=(16, 1)).astype(dtype)
        model.zero_grad()
        loss.forward(model.forward(x), t)
        model.backward(loss.backward())
        opt.step()
    return model.state_dict()


def digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(np.ascontiguousarray(state[key]).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_gives_bit_identical_weights(dtype):
    a, b = train(3, dtype), train(3, dtype)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_different_seeds_give_different_weights(dtype):
    a, b = train(3, dtype), train(4, dtype)
    assert all(not np.array_equal(a[key], b[key]) for key in a if key.endswith(".W"))


def test_training_changes_the_weights():
    before = train(3, steps=0)
    after = train(3, steps=2)
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_fused_and_unfused_training_are_bit_identical():
    assert digest(train(5, fuse=True)) == digest(train(5, fuse=False))


def test_same_weights_in_a_fresh_process():
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_determinism import train, digest\n"
        "print(digest(train(3)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest(train(3))
