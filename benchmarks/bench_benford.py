"""Images per second of ``minigan.benford.image_features`` against a per-block NumPy loop.

Both implementations compute the same 540 features (checked before timing):
the library transforms every block of every image with one matrix product and
histograms all coefficients with one ``bincount`` per (quality factor, base);
the reference below walks the 8x8 blocks one by one in Python, as a
straightforward port of the ICPR 2020 recipe would, and then fits and scores
each image's pmfs with the same library functions (the compiled
generalized-Benford fit dominates both on small images). Cases: synthetic
natural-looking 28x28 and 256x256 images, and the bundled 28x28 MNIST digits. Timings are interleaved
(library, loop, library, loop, ...) in one process and reported as medians,
since these machines are noisy.

Run: ``PYTHONPATH=. python benchmarks/bench_benford.py [--quick]``.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from minigan.benford.digits import first_digits, fit_generalized_benford
from minigan.benford.image import (
    DEFAULT_BASES,
    DEFAULT_QUALITY_FACTORS,
    _dct_matrix,
    divergences,
    image_features,
    quantization_table,
    zigzag_order,
)

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)


def per_block_features(images: np.ndarray, n_coefficients: int = 9) -> np.ndarray:
    """The recipe with a Python loop over images and blocks (uint8 grey images (n, h, w))."""
    c = _dct_matrix()
    positions = zigzag_order(n_coefficients + 1)[1:]
    tables = {q: quantization_table(q).astype(np.float64) for q in DEFAULT_QUALITY_FACTORS}
    out = []
    for image in images:
        counts = {(q, b): np.zeros((n_coefficients, b - 1)) for q in DEFAULT_QUALITY_FACTORS for b in DEFAULT_BASES}
        h, w = image.shape
        image = np.pad(image, ((0, -h % 8), (0, -w % 8)), mode="edge")
        h, w = image.shape
        for y in range(0, h, 8):
            for x in range(0, w, 8):
                block = image[y : y + 8, x : x + 8].astype(np.float64) - 128.0
                dct = c @ block @ c.T
                for q in DEFAULT_QUALITY_FACTORS:
                    ratio = (dct / tables[q]).ravel()[positions]
                    quantized = (np.sign(ratio) * np.floor(np.abs(ratio) + 0.5)).astype(np.int64)
                    nonzero = np.flatnonzero(quantized)
                    if nonzero.size == 0:
                        continue
                    for b in DEFAULT_BASES:
                        digits = first_digits(quantized[nonzero], b)
                        counts[(q, b)][nonzero, digits - 1] += 1
        feats = np.empty((len(DEFAULT_QUALITY_FACTORS), len(DEFAULT_BASES), n_coefficients, 3))
        for j, b in enumerate(DEFAULT_BASES):
            stacked = np.stack([counts[(q, b)] for q in DEFAULT_QUALITY_FACTORS])
            with np.errstate(invalid="ignore", divide="ignore"):
                pmf = stacked / stacked.sum(axis=-1, keepdims=True)
            fit = fit_generalized_benford(pmf, b)
            feats[:, j] = divergences(pmf, fit.pmf(b))
        out.append(feats.ravel())
    return np.array(out)


def _time(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _digits(n: int) -> np.ndarray:
    """The first ``n`` bundled MNIST digits: the detector's real workload (mostly flat black blocks)."""
    import minigan as mg

    return mg.datasets.load("mnist-5k")[0][:n]


def run(quick: bool = False) -> dict[str, Any]:
    """Measure both implementations on 28x28 and 256x256 images and 28x28 digits; return medians and ratios."""
    cases = {
        "28x28": lambda: common.natural_images(64 if quick else 256, 28, seed=28),
        "256x256": lambda: common.natural_images(4 if quick else 16, 256, seed=256),
        "digits": lambda: _digits(128 if quick else 500),
    }
    repeats = 3 if quick else 5
    results: dict[str, Any] = {"repeats": repeats}
    for key, make in cases.items():
        images = make()
        n = len(images)
        fast = image_features(images)
        slow = per_block_features(images)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12, equal_nan=True)
        t_fast, t_slow = [], []
        for _ in range(repeats):
            t_fast.append(_time(lambda: image_features(images)))
            t_slow.append(_time(lambda: per_block_features(images)))
        fast_ips = n / statistics.median(t_fast)
        slow_ips = n / statistics.median(t_slow)
        results[key] = {
            "n_images": n,
            "vectorized_images_per_s": fast_ips,
            "per_block_loop_images_per_s": slow_ips,
            "speedup": fast_ips / slow_ips,
        }
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results of :func:`run` as a text table."""
    lines = [
        f"image_features vs a per-block loop (540 features, median of {results['repeats']} interleaved runs)",
        f"{'case':>9} {'images':>7} {'vectorized img/s':>17} {'per-block img/s':>16} {'ratio':>7}",
    ]
    for key, row in results.items():
        if key == "repeats":
            continue
        lines.append(f"{key:>9} {row['n_images']:>7} {row['vectorized_images_per_s']:>17.1f} "
                     f"{row['per_block_loop_images_per_s']:>16.1f} {row['speedup']:>6.1f}x")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "fewer images and repeats")

if __name__ == "__main__":
    main()
