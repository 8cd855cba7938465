"""Timing helpers shared by the benchmarks: thread limits, interleaved repeats, medians.

These machines are noisy (shared cores, frequency changes), so every comparison here
runs its contenders side by side in one process: a warm-up, then rounds in which
each contender runs one block of several calls in turn (A, B, C, A, B, C, ...),
with a short pause before each block so that one library's spinning worker threads
(OpenBLAS, OpenMP) have gone to sleep before the next library starts. Reported
numbers are medians over the rounds of (block time / calls per block).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Mapping

import numpy as np

#: Environment variables that fix the thread count of every pool a contender may use.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with every thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    return env


def limit_threads(threads: int) -> str:
    """Also cap the pools of this process through threadpoolctl when it is installed.

    The subprocess already got the environment variables; this is a second guard for
    libraries loaded before them. Returns how the limit was applied.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "environment"
    threadpool_limits(threads)
    return "environment+threadpoolctl"


def block_seconds(fn: Callable[[], Any], calls: int) -> float:
    """Wall-clock seconds per call of ``fn`` over one block of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_per_block(fn: Callable[[], Any], target_seconds: float, *, minimum: int = 2, maximum: int = 200) -> int:
    """How many calls of ``fn`` fill about ``target_seconds`` (measured on two calls)."""
    per_call = block_seconds(fn, 2)
    return int(min(maximum, max(minimum, round(target_seconds / max(per_call, 1e-9)))))


def interleaved(
    contenders: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    calls: int | Mapping[str, int],
    pause: float = 0.2,
    warmup_calls: int = 3,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, one sample per round.

    Parameters
    ----------
    contenders : mapping name -> zero-argument callable
    repeats : int
        Rounds; each round runs one block of every contender, in the mapping's order.
    calls : int or mapping name -> int
        Calls per block (the same for all, or per contender).
    pause : float
        Seconds slept before every block.
    warmup_calls : int
        Calls of each contender before the first round (compilation, caches, allocations).

    Returns
    -------
    dict name -> list of ``repeats`` floats (seconds per call).
    """
    per = {name: (calls if isinstance(calls, int) else calls[name]) for name in contenders}
    for fn in contenders.values():
        for _ in range(warmup_calls):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            if pause > 0:
                time.sleep(pause)
            samples[name].append(block_seconds(fn, per[name]))
    return samples


def cycling(step: Callable[[Any], Any], batches: list[Any]) -> Callable[[], Any]:
    """A no-argument call that feeds ``step`` the next of a few fixed batches, round robin."""
    state = {"i": 0}

    def call() -> Any:
        state["i"] = (state["i"] + 1) % len(batches)
        return step(batches[state["i"]])

    return call


def natural_images(n: int, size: int, seed: int) -> np.ndarray:
    """Photo-like grey images: a smooth random field plus sensor-like noise, uint8 (n, size, size)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (n, size // 8 + 2, size // 8 + 2))
    yy = np.linspace(0, coarse.shape[1] - 1.001, size)
    i0 = yy.astype(int)
    t = yy - i0
    rows = coarse[:, i0] * (1 - t)[None, :, None] + coarse[:, i0 + 1] * t[None, :, None]
    field = rows[:, :, i0] * (1 - t) + rows[:, :, i0 + 1] * t
    return np.clip(128 + 45 * field + rng.normal(0, 4, field.shape), 0, 255).astype(np.uint8)


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and minimum of a list of seconds, in milliseconds."""
    ms = sorted(1e3 * s for s in samples)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return {"median_ms": statistics.median(ms), "q1_ms": q[0], "q3_ms": q[2], "min_ms": ms[0], "n": len(ms)}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def sgemm_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-case float32 matmul speed of this process: median GFLOP/s of ``size``^3 products."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=c)  # wakes the BLAS threads and touches the pages
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / median(times) / 1e9


def timed_subprocess(args: list[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> tuple[float, str]:
    """Run ``args``; return (wall-clock seconds, stdout). Raises on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return seconds, done.stdout


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"})
    except OSError:
        pass
    return []


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info

        return [{k: v for k, v in pool.items() if k != "filepath"} for pool in threadpool_info()]
    except ImportError:
        pass
    try:  # numpy >= 1.26 can return its build configuration as a dict
        config = np.show_config(mode="dicts")
        return [config.get("Build Dependencies", {}).get("blas", {})]
    except Exception:  # noqa: BLE001 - best effort, only for the record
        return []


def machine_info() -> dict[str, Any]:
    """CPU, core count, library versions and BLAS of this interpreter, for the JSON record."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    for name in ("numba", "torch", "threadpoolctl"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    info["blas"] = _blas_info()
    return info


def dumps(obj: Any) -> str:
    """JSON text of results that may hold NumPy scalars."""
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(obj, indent=1, default=default)


def script_main(doc: str, run: Callable[[bool], Any], format_table: Callable[[Any], str], quick_help: str) -> None:
    """The command line of a helper benchmark (``bench_*.py``): ``--quick``, then its table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    print(format_table(run(parser.parse_args().quick)))
