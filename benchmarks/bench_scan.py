"""Images per second of ``minigan detect predict`` (``mg.benford.scan``): 28x28 and 512x512 PNGs.

For each size, a folder of PNG files is written once, then timed:

* the three stages in one process, each on its own: decoding the files
  (``mg.datasets.read_image``), the Benford features (``BenfordDetector.features``)
  and the network (``decision_function_of_features``);
* the whole scan end to end (walk, read, features, network, rows) in one process,
  and on a Dask LocalCluster of two worker processes (``--workers 2``; the
  cluster is started and warmed up before the clock starts).

Every figure is the median of several repeats, the stages and the scans interleaved
(stage A, B, C, scan, A, B, ...) so that a change in the machine's load hits all of
them alike; the load average is printed before and after. As ``minigan detect`` does,
every process runs one BLAS thread. The detector is a ``BenfordDetector`` with the
default features (540 divergences + 54 shares), trained for a few epochs on 200
digits: the network's cost does not depend on how well it was trained.

Run: ``PYTHONPATH=. python benchmarks/bench_scan.py [--quick]``.
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads, as minigan detect does

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py; this folder is on sys.path when run as a script)


def _write_pngs(folder: Path, images: np.ndarray) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:06d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def _detector() -> Any:
    import minigan as mg
    from minigan.benford import BenfordDetector

    digits = mg.datasets.load("mnist-5k")[0][:200]
    noisy = np.clip(digits.astype(int) + np.random.default_rng(0).integers(0, 3, digits.shape), 0, 255)
    x = np.r_[digits, noisy.astype(np.uint8)]
    y = np.r_[np.zeros(200, dtype=np.int64), np.ones(200, dtype=np.int64)]
    return BenfordDetector(epochs=3, jpeg_augment=None, seed=0).fit(x, y)


def _timed(fn: Any) -> tuple[float, float]:
    """Wall-clock and CPU seconds of this process (the CPU time of Dask workers is not in it)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def run(quick: bool = False) -> dict[str, Any]:
    """Time the stages and the scans for both sizes; return images per second (medians) and the load."""
    from minigan.benford import scan
    from minigan.datasets import read_image

    import minigan as mg

    repeats = 3 if quick else 5
    # (images, side, files per chunk): a chunk is the unit of work of a worker, so the 512x512 folder is cut
    # into several for the two workers to share; both scans use the same chunks
    sizes = {"28x28": (600 if quick else 3000, 28, 512), "512x512": (12 if quick else 48, 512, 4)}
    results: dict[str, Any] = {"repeats": repeats, "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    detector = _detector()
    client = cluster = None
    try:
        import logging

        from minigan.benford.scan import start_local_cluster  # ImportError below when Dask is not installed

        start = time.perf_counter()
        cluster, client = start_local_cluster(2, logging.ERROR)  # the cluster minigan detect --workers 2 starts
        results["cluster_start_s"] = time.perf_counter() - start
    except ImportError:
        results["cluster_start_s"] = None
    with tempfile.TemporaryDirectory(prefix="minigan-bench-scan-") as root:
        for key, (n, size, chunk) in sizes.items():
            if size == 28:
                digits = mg.datasets.load("mnist-5k")[0]
                images = digits[np.arange(n) % len(digits)]
            else:
                images = common.natural_images(n, size, seed=size)
            files = _write_pngs(Path(root) / key, images)
            decoded = [read_image(f) for f in files]
            raw = detector.features(decoded)
            detector.decision_function_of_features(raw)
            contenders = {
                "decode": lambda: [read_image(f) for f in files],
                "features": lambda: detector.features(decoded),
                "network": lambda: detector.decision_function_of_features(raw),
                "scan_1_process": lambda: [r for rows in scan([Path(root) / key], detector, chunk_files=chunk)
                                           for r in rows],
            }
            if client is not None:
                list(scan([Path(root) / key], detector, chunk_files=chunk, client=client))  # warm-up: load the model
                contenders["scan_2_workers"] = lambda: [r for rows in scan([Path(root) / key], detector,
                                                                           chunk_files=chunk, client=client)
                                                        for r in rows]
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
            for _ in range(repeats):
                for name, fn in contenders.items():
                    time.sleep(0.2)
                    samples[name].append(_timed(fn))
            results[key] = {"n_images": n}
            for name, t in samples.items():
                results[key][f"{name}_images_per_s"] = n / statistics.median(wall for wall, _ in t)
                results[key][f"{name}_cpu_ms_per_image"] = 1e3 * statistics.median(cpu for _, cpu in t) / n
    if client is not None:
        client.close()
        cluster.close()
    results["load_after"] = os.getloadavg()
    results["machine"] = {k: v for k, v in common.machine_info().items() if k in ("cpu", "logical_cores", "numpy",
                                                                                  "numba")}
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results of :func:`run` as a text table."""
    lines = [
        f"minigan detect predict: images per second (median of {results['repeats']} interleaved runs; "
        f"load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after, "
        f"{results['cpus']} CPUs; {results['machine']['cpu']})",
        f"{'size':>8} {'images':>7} {'decode':>9} {'features':>9} {'network':>9} {'scan, 1 process':>16} "
        f"{'scan, 2 workers':>16}",
    ]
    for key in ("28x28", "512x512"):
        row = results[key]
        two = row.get("scan_2_workers_images_per_s")
        lines.append(
            f"{key:>8} {row['n_images']:>7} {row['decode_images_per_s']:>9.0f} {row['features_images_per_s']:>9.1f} "
            f"{row['network_images_per_s']:>9.0f} {row['scan_1_process_images_per_s']:>16.1f} "
            f"{'(no dask)' if two is None else f'{two:.1f}':>16}"
        )
    lines.append("stages in one process, each on its own; scans end to end (walk, read, features, network, rows)")
    lines.append("CPU milliseconds per image in this process (median): " + "; ".join(
        f"{key}: decode {results[key]['decode_cpu_ms_per_image']:.3f}, features "
        f"{results[key]['features_cpu_ms_per_image']:.2f}, network {results[key]['network_cpu_ms_per_image']:.4f}, "
        f"scan {results[key]['scan_1_process_cpu_ms_per_image']:.2f}" for key in ("28x28", "512x512")))
    if results.get("cluster_start_s") is not None:
        lines.append(f"the 2-worker LocalCluster took {results['cluster_start_s']:.1f} s to start (not in the scan)")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "fewer images and repeats")


if __name__ == "__main__":
    main()
