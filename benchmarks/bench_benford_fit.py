"""The generalized-Benford fit on real digit pmfs: the grid start against the plain start.

:func:`minigan.benford.fit_generalized_benford` has two ways to start:

* ``start="grid"`` (the default): the best point of a fixed ``(beta, gamma)`` grid with
  ``N`` in closed form, then a damped Newton method on ``(beta, gamma)`` with ``N``
  projected out (a pmf whose run fails is fitted again as below);
* ``start="ones"``: Levenberg-Marquardt on ``N, beta, gamma`` from ``(1, 1, 1)``, the
  ICPR 2020 recipe.

Both are run side by side in one process, interleaved, on the distinct finite pmfs
that the default detector features (quality factors 80..100, 9 coefficients) make of
the bundled digits, per base. Printed: microseconds per pmf (median of the repeats),
the share of failed fits, the steps per pmf, and on the pmfs the plain fit fits, how
often the grid fit's residual sum of squares (computed from the parameters) is above
the plain fit's by more than 1e-12 or 1e-6 relative, or below it by more than 1e-6,
and the largest relative excess. Then the whole feature extraction
(:func:`minigan.benford.image.image_features` with the detector's default features) of
the digits with each start, in images per second. Times are CPU seconds of this
process (``time.process_time``), which a loaded machine disturbs less than the wall
clock, and the wall clock for the features; they depend on the machine, its libm
(``exp``, ``log1p``) and the BLAS (one thread here, as ``minigan detect`` runs).

Run: ``PYTHONPATH=. python benchmarks/bench_benford_fit.py [--quick]``.
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads, as minigan detect does

import statistics
import time
from typing import Any

import numpy as np  # noqa: E402

import common  # noqa: E402
import minigan as mg  # noqa: E402
from minigan.benford import BenfordDetector, fit_generalized_benford  # noqa: E402
from minigan.benford.digits import _distinct_rows  # noqa: E402
from minigan.benford.image import DEFAULT_BASES, DEFAULT_QUALITY_FACTORS, _chunks, _dct_basis  # noqa: E402
from minigan.benford.image import _quantize, _to_luma_list, first_digit_histograms, image_features  # noqa: E402
from minigan.benford.image import quantization_table, zigzag_order  # noqa: E402


def digit_pmfs(n_images: int, base: int) -> np.ndarray:
    """Distinct finite first-digit pmfs (u, base-1) of the default features of ``n_images`` bundled digits."""
    images = mg.datasets.load("mnist-5k")[0][:n_images]
    (blocks, idx, n), = _chunks(_to_luma_list(images, None))
    positions = zigzag_order(10)[1:]
    coefs = (blocks - 128.0) @ _dct_basis(positions)
    pmfs = []
    for q in DEFAULT_QUALITY_FACTORS:
        counts = first_digit_histograms(_quantize(coefs, quantization_table(q).ravel()[positions]), idx, n, base)
        with np.errstate(invalid="ignore", divide="ignore"):
            pmfs.append((counts / counts.sum(axis=-1, keepdims=True)).reshape(-1, base - 1))
    p = np.concatenate(pmfs)
    p = p[np.isfinite(p).all(axis=1)]
    return np.ascontiguousarray(p[_distinct_rows(p)[0]])


def _seconds(fn: Any) -> tuple[float, float]:
    """(CPU seconds, wall-clock seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def run(quick: bool = False) -> dict[str, Any]:
    """Both starts on the pmfs of each base; medians of interleaved repeats and the cost comparison."""
    n_images, repeats = (100, 3) if quick else (600, 5)
    results: dict[str, Any] = {"n_images": n_images, "repeats": repeats}
    for base in DEFAULT_BASES:
        p = digit_pmfs(n_images, base)
        grid = fit_generalized_benford(p, base)  # also compiles
        plain = fit_generalized_benford(p, base, start="ones")
        t_grid, t_plain = [], []
        for _ in range(repeats):
            t_grid.append(_seconds(lambda: fit_generalized_benford(p, base))[0])
            t_plain.append(_seconds(lambda: fit_generalized_benford(p, base, start="ones"))[0])
        cost_grid = np.sum((grid.pmf(base) - p) ** 2, axis=1)
        cost_plain = np.sum((plain.pmf(base) - p) ** 2, axis=1)
        ok = plain.success
        excess = (cost_grid[ok] - cost_plain[ok]) / cost_plain[ok]
        results[f"base {base}"] = {
            "pmfs": int(p.shape[0]),
            "grid_us": 1e6 * statistics.median(t_grid) / p.shape[0],
            "plain_us": 1e6 * statistics.median(t_plain) / p.shape[0],
            "grid_failed": float(np.mean(~grid.success)),
            "plain_failed": float(np.mean(~plain.success)),
            "grid_steps_p50_p90": np.percentile(grid.n_iter, [50, 90]).tolist(),
            "plain_steps_p50_p90": np.percentile(plain.n_iter, [50, 90]).tolist(),
            "compared": int(ok.sum()),
            "lost": int(np.sum(ok & ~grid.success)),
            "above_1e-12": int(np.sum(excess > 1e-12)),
            "above_1e-6": int(np.sum(excess > 1e-6)),
            "below_1e-6": int(np.sum(excess < -1e-6)),
            "largest_excess": float(np.nanmax(excess)) if excess.size else 0.0,
        }
    images = mg.datasets.load("mnist-5k")[0][:n_images]
    kwargs = BenfordDetector()._feature_kwargs()
    times: dict[str, list[tuple[float, float]]] = {"grid": [], "ones": []}
    for start in times:
        image_features(images[:8], fit_start=start, **kwargs)  # compiles
    for _ in range(repeats):
        for start, samples in times.items():
            samples.append(_seconds(lambda: image_features(images, fit_start=start, **kwargs)))
    results["features"] = {
        start: {"cpu_images_per_s": n_images / statistics.median(c for c, _ in samples),
                "wall_images_per_s": n_images / statistics.median(w for _, w in samples)}
        for start, samples in times.items()
    }
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results of :func:`run` as a text table."""
    lines = [
        f"generalized-Benford fit: grid start vs (1, 1, 1) start, distinct pmfs of {results['n_images']} digits, "
        f"median of {results['repeats']}",
        f"{'':>7} {'pmfs':>6} {'CPU us/pmf grid':>15} {'ones':>6} {'ratio':>6} {'failed grid':>11} {'ones':>6} "
        f"{'steps p50/p90 grid':>18} {'ones':>8} {'compared':>8} {'lost':>4} {'cost above >1e-12':>17} "
        f"{'>1e-6':>5} {'below <-1e-6':>12} {'largest excess':>14}",
    ]
    for key, r in results.items():
        if not key.startswith("base"):
            continue
        gs, ps = r["grid_steps_p50_p90"], r["plain_steps_p50_p90"]
        lines.append(
            f"{key:>7} {r['pmfs']:>6} {r['grid_us']:>15.1f} {r['plain_us']:>6.1f} "
            f"{r['plain_us'] / r['grid_us']:>5.1f}x {r['grid_failed']:>11.3f} {r['plain_failed']:>6.3f} "
            f"{gs[0]:>12.0f}/{gs[1]:<5.0f} {ps[0]:>3.0f}/{ps[1]:<4.0f} "
            f"{r['compared']:>8} {r['lost']:>4} {r['above_1e-12']:>17} {r['above_1e-6']:>5} {r['below_1e-6']:>12} "
            f"{r['largest_excess']:>14.3g}"
        )
    f = results["features"]
    lines.append(
        f"image_features of {results['n_images']} digits (594 features), images per second: "
        f"grid start {f['grid']['cpu_images_per_s']:.0f} per CPU second ({f['grid']['wall_images_per_s']:.0f} wall), "
        f"(1, 1, 1) start {f['ones']['cpu_images_per_s']:.0f} ({f['ones']['wall_images_per_s']:.0f} wall): "
        f"{f['grid']['cpu_images_per_s'] / f['ones']['cpu_images_per_s']:.1f}x"
    )
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "100 digits, 3 repeats")


if __name__ == "__main__":
    main()
