"""Per-layer forward/backward time of minigan against plain NumPy, at batch 64, float32.

The shapes are those of the reference GAN (minigan.models, after Keras-GAN's gan/gan.py): the generator's and the
discriminator's Dense layers, LeakyReLU and BatchNorm at 256/512/1024 features and
Tanh at 784. Each minigan layer runs against a plain-NumPy version of the same
layer written below, in the same process, with the repeats interleaved (A B B A ...)
so that machine noise hits both alike; the table quotes medians and the ratio
``numpy time / minigan time`` (above 1: minigan is faster).

Three minigan columns:

* ``mg``: the public ``forward``/``backward`` (they validate their input: a finiteness sweep);
* ``mg fast``: the unchecked ``_forward``/``_backward`` that ``Sequential`` calls once the model's
  input has been validated;
* rows ``Dense+LeakyReLU``: the fused pair Sequential runs (one kernel sweep for bias + activation),
  against NumPy's Dense then LeakyReLU.

Also measured, each in a fresh interpreter: ``import minigan`` (lazy: loads nothing heavy),
``import numpy`` for scale, the first use of a layer (imports numpy and numba, loads the
kernels) and a first forward pass (loads the cached compiled kernels).

On a shared machine, ``OPENBLAS_NUM_THREADS=1`` gives steadier Dense numbers (both sides
call the same BLAS routine, so the ratio is what matters).

Run: ``python benchmarks/bench_layers.py [--quick]``.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import minigan as mg  # noqa: E402
from minigan.kernels import GRAD_ADD  # noqa: E402  (add into grads, as the public backward does)

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)

BATCH = 64
DTYPE = np.float32
DENSE_SHAPES = [(100, 256), (256, 512), (512, 1024), (1024, 784), (784, 512), (512, 256), (256, 1)]
LEAKY_FEATURES = [256, 512, 1024]
BATCHNORM_FEATURES = [256, 512, 1024]
TANH_FEATURES = [784]
FUSED_SHAPES = [(100, 256), (512, 1024), (784, 512)]


# --------------------------------------------------------------------------- plain NumPy layers
class NumpyDense:
    """``y = x W + b``; backward accumulates dW, db like minigan does."""

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W, self.b = W.copy(), b.copy()
        self.dW, self.db = np.zeros_like(W), np.zeros_like(b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W + self.b

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.dW += self.x.T @ g
        self.db += g.sum(axis=0)
        return g @ self.W.T


class NumpyLeakyReLU:
    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return np.where(self.x > 0, g, self.alpha * g)


class NumpyTanh:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.tanh(x)
        return self.y

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * (1 - self.y * self.y)


class NumpyBatchNorm:
    """Training-mode batch normalization (biased variance, Keras momentum)."""

    def __init__(self, features: int, momentum: float = 0.8, eps: float = 1e-3) -> None:
        self.gamma = np.ones(features, DTYPE)
        self.beta = np.zeros(features, DTYPE)
        self.dgamma, self.dbeta = np.zeros_like(self.gamma), np.zeros_like(self.beta)
        self.running_mean, self.running_var = np.zeros(features, DTYPE), np.ones(features, DTYPE)
        self.momentum, self.eps = momentum, eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mean
        self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        return self.gamma * self.x_hat + self.beta

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.dbeta += g.sum(axis=0)
        self.dgamma += (g * self.x_hat).sum(axis=0)
        n = g.shape[0]
        return (self.gamma * self.inv_std / n) * (n * g - g.sum(axis=0) - self.x_hat * (g * self.x_hat).sum(axis=0))


class NumpyChain:
    def __init__(self, *layers: Any) -> None:
        self.layers = layers

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g


class FusedPair:
    """minigan's fused Dense + activation, called the way Sequential calls it."""

    def __init__(self, dense: Any, activation: Any) -> None:
        self.dense, self.activation = dense, activation

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.dense.forward_unchecked(x, self.activation)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.dense.backward_unchecked(g, GRAD_ADD, self.activation)


class Unchecked:
    """A minigan layer through its unchecked fast path (what Sequential calls)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.layer.forward_unchecked(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.layer.backward_unchecked(g)


# --------------------------------------------------------------------------- timing
def _per_call(fn: Callable[[], Any], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def _measure(impls: dict[str, Any], x: np.ndarray, g: np.ndarray, repeats: int, block_seconds: float
             ) -> dict[str, tuple[float, float]]:
    """Median seconds per forward and per backward call of every implementation.

    Rounds alternate the order of the implementations (A B C, C B A, ...); each block runs
    enough calls to last about ``block_seconds`` (sized once, after the warm-up).
    """
    for impl in impls.values():  # warm-up: compiles the kernels, fills the caches
        for _ in range(2):
            impl.forward(x)
            impl.backward(g)
    calls = {}
    for name, impl in impls.items():
        per_call = _per_call(lambda: (impl.forward(x), impl.backward(g)), 3)
        calls[name] = int(min(200, max(3, round(block_seconds / per_call))))
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in impls}
    names = list(impls)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            impl = impls[name]
            samples[name][0].append(_per_call(lambda: impl.forward(x), calls[name]))
            impl.forward(x)
            samples[name][1].append(_per_call(lambda: impl.backward(g), calls[name]))
    return {k: (statistics.median(f), statistics.median(b)) for k, (f, b) in samples.items()}


def _cases() -> list[tuple[str, int, int, dict[str, Any]]]:
    """(label, in features, out features, {implementation name: object with forward/backward})."""
    rng = np.random.default_rng(0)
    cases = []
    for i, o in DENSE_SHAPES:
        layer = mg.Dense(i, o, dtype=DTYPE, rng=rng)
        layer.params["b"][...] = rng.normal(size=o)
        cases.append((f"Dense {i}->{o}", i, o, {
            "numpy": NumpyDense(layer.params["W"], layer.params["b"]), "mg": layer, "mg fast": Unchecked(layer)}))
    for f in LEAKY_FEATURES:
        cases.append((f"LeakyReLU {f}", f, f, {
            "numpy": NumpyLeakyReLU(0.2), "mg": mg.LeakyReLU(0.2), "mg fast": Unchecked(mg.LeakyReLU(0.2))}))
    for f in BATCHNORM_FEATURES:
        cases.append((f"BatchNorm {f}", f, f, {
            "numpy": NumpyBatchNorm(f), "mg": mg.BatchNorm(f, dtype=DTYPE), "mg fast": Unchecked(mg.BatchNorm(f, dtype=DTYPE))}))
    for f in TANH_FEATURES:
        cases.append((f"Tanh {f}", f, f, {"numpy": NumpyTanh(), "mg": mg.Tanh(), "mg fast": Unchecked(mg.Tanh())}))
    for i, o in FUSED_SHAPES:
        dense = mg.Dense(i, o, dtype=DTYPE, rng=rng)
        ref = NumpyChain(NumpyDense(dense.params["W"], dense.params["b"]), NumpyLeakyReLU(0.2))
        cases.append((f"Dense+LeakyReLU {i}->{o}", i, o, {
            "numpy": ref, "mg": mg.Sequential([mg.Dense(i, o, dtype=DTYPE, rng=1), mg.LeakyReLU(0.2)]),
            "mg fast": FusedPair(dense, mg.LeakyReLU(0.2))}))
    return cases


IMPORT_SNIPPETS = {
    "import minigan": "import minigan",
    "import numpy": "import numpy",
    "minigan.Dense (loads numpy, numba, kernels)": "import minigan; minigan.Dense",
    "first Dense forward (cached kernels)": "import numpy, minigan; minigan.Dense(3, 2).forward(numpy.ones((2, 3), numpy.float32))",
}


def import_time(repeats: int = 5) -> dict[str, float]:
    """Median wall time of each snippet of ``IMPORT_SNIPPETS`` in a fresh interpreter (timed inside it)."""
    def once(snippet: str) -> float:
        code = f"import time; t = time.perf_counter(); {snippet}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        return float(out.stdout)

    result: dict[str, list[float]] = {label: [] for label in IMPORT_SNIPPETS}
    for _ in range(repeats):
        for label, snippet in IMPORT_SNIPPETS.items():  # interleaved
            result[label].append(once(snippet))
    return {label: statistics.median(times) for label, times in result.items()}


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every case; return ``{"rows": [...], "import": {...}, "settings": {...}}``.

    Each row: ``{"layer", "fwd": {impl: seconds}, "bwd": {impl: seconds}}`` (medians per call).
    """
    repeats, block = (5, 0.005) if quick else (15, 0.02)
    rng = np.random.default_rng(1)
    rows = []
    for label, i, o, impls in _cases():
        x = rng.normal(size=(BATCH, i)).astype(DTYPE)
        g = rng.normal(size=(BATCH, o)).astype(DTYPE)
        timings = _measure(impls, x, g, repeats, block)
        rows.append({"layer": label, "fwd": {k: v[0] for k, v in timings.items()},
                     "bwd": {k: v[1] for k, v in timings.items()}})
    return {"rows": rows, "import": import_time(3 if quick else 7),
            "settings": {"batch": BATCH, "dtype": np.dtype(DTYPE).name, "repeats": repeats, "block_seconds": block,
                         "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}}


def format_table(result: dict[str, Any]) -> str:
    us = 1e6
    head = (f"{'layer (batch 64, float32)':<26}{'fwd np':>8}{'fwd mg':>8}{'ratio':>7}{'mg fast':>8}{'ratio':>7}"
            f"{'bwd np':>9}{'bwd mg':>8}{'ratio':>7}{'mg fast':>8}{'ratio':>7}")
    lines = [head, "-" * len(head)]
    for row in result["rows"]:
        f, b = row["fwd"], row["bwd"]
        lines.append(
            f"{row['layer']:<26}{f['numpy'] * us:>8.1f}{f['mg'] * us:>8.1f}{f['numpy'] / f['mg']:>7.2f}"
            f"{f['mg fast'] * us:>8.1f}{f['numpy'] / f['mg fast']:>7.2f}"
            f"{b['numpy'] * us:>9.1f}{b['mg'] * us:>8.1f}{b['numpy'] / b['mg']:>7.2f}"
            f"{b['mg fast'] * us:>8.1f}{b['numpy'] / b['mg fast']:>7.2f}"
        )
    s = result["settings"]
    lines.append("-" * len(head))
    lines.append(f"microseconds per call, medians of {s['repeats']} interleaved rounds of ~{s['block_seconds'] * 1e3:g} ms "
                 f"blocks; OPENBLAS_NUM_THREADS={s['blas_threads']}; ratio = numpy / minigan (> 1: minigan faster)")
    for label, seconds in result["import"].items():
        lines.append(f"{label:<46}{seconds * 1e3:>8.0f} ms  (fresh interpreter, median)")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "few repeats (a smoke run)")


if __name__ == "__main__":
    main()
