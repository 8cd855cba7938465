"""minigan's speed, measured side by side against plain NumPy and PyTorch CPU.

Usage::

    PYTHONPATH=. python benchmarks/run.py [--quick] [--json OUT.json] [--threads 1,2] [--batches 32,64,128,256]

Every thread count runs in its own subprocess with OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS
set (plus threadpoolctl and ``torch.set_num_threads`` when available), because
thread pools cannot be reliably resized once started. Within that process the
contenders run interleaved (minigan, numpy, torch, GEMM-only, minigan, ...) with a
pause before every block, and the medians are reported. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import common  # noqa: E402
from numpy_gan import D_PARAM_NAMES, F32, G_PARAM_NAMES, Adam as NumpyAdam, NumpyGAN, iteration_gemms  # noqa: E402

ADAM_SETTINGS = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999}


def _ensure_minigan_importable() -> None:
    """Fall back to the repository this file lives in (also for the subprocesses started later)."""
    if importlib.util.find_spec("minigan") is None:
        root = str(HERE.parent)
        sys.path.append(root)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), root) if p)


# ============================================================================
# Worker side: one process per thread count
# ============================================================================
def _try_torch(threads: int) -> Any:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _real_batches(batch: int, count: int = 4) -> list[np.ndarray]:
    """A few fixed float32 (B, 28, 28) batches in [-1, 1], cycled through by every contender."""
    rng = np.random.default_rng(batch)
    return [rng.uniform(-1, 1, (batch, 28, 28)).astype(F32) for _ in range(count)]


def _implementations(torch: Any) -> dict[str, Any]:
    """Fresh minigan, NumPy and PyTorch GANs from the same initial weights and noise seed."""
    import minigan as mg

    G = mg.models.reference_generator(rng=np.random.default_rng(1))
    D = mg.models.reference_discriminator(rng=np.random.default_rng(2))
    g_params = [p.value.copy() for p in G.parameters()]
    d_params = [p.value.copy() for p in D.parameters()]
    # ema_decay=None: the iteration PyTorch and NumPy run; the average is timed apart (_ema_update).
    impls = {"minigan": mg.GAN(G, D, latent_dim=100, seed=0, ema_decay=None),
             "numpy": NumpyGAN(g_params, d_params, seed=0)}
    if torch is not None:
        from torch_gan import TorchGAN

        impls["torch"] = TorchGAN(g_params, d_params, seed=0)
    return impls


def gemm_only(batch: int) -> tuple[Callable[[], None], float, int]:
    """A closure running every matrix product of one iteration as minigan makes them
    (the D step's two halves as one 2B-row pass), with ``np.matmul(out=)`` on
    preallocated float32 arrays laid out as the layers use them; its FLOPs; the number
    of products. A product whose inner dimension is 1 (the input gradient of D's last
    layer, an outer product) is an elementwise ``np.multiply``, as in ``Dense``."""
    rng = np.random.default_rng(0)
    weights: dict[str, np.ndarray] = {}
    calls: list[tuple[Callable[..., Any], np.ndarray, np.ndarray, np.ndarray]] = []
    flops = 0.0
    products = iteration_gemms(batch)
    for label, kind, rows, n_in, n_out in products:
        layer = label.rsplit("/", 1)[1]
        W = weights.setdefault(layer, rng.standard_normal((n_in, n_out), dtype=F32))
        if kind == "forward":  # x (rows, in) @ W (in, out)
            a, b = rng.standard_normal((rows, n_in), dtype=F32), W
        elif kind == "input_grad":  # G (rows, out) @ W^T
            a, b = rng.standard_normal((rows, n_out), dtype=F32), W.T
        else:  # weight_grad: x^T (in, rows) @ G (rows, out)
            a, b = rng.standard_normal((rows, n_in), dtype=F32).T, rng.standard_normal((rows, n_out), dtype=F32)
        out = np.empty((a.shape[0], b.shape[1]), dtype=F32)
        calls.append((np.multiply if a.shape[1] == 1 else np.matmul, a, b, out))
        flops += 2.0 * rows * n_in * n_out

    def run() -> None:
        for product, a, b, out in calls:
            product(a, b, out=out)

    return run, flops, len(products)


def _minigan_grads(gan: Any) -> dict[str, np.ndarray]:
    """Copies of the GAN's current gradients under numpy_gan's names (``G.W0``, ``D.b2``...)."""
    grads = {f"G.{n}": p.grad.copy() for n, p in zip(G_PARAM_NAMES, gan.generator.parameters())}
    grads.update({f"D.{n}": p.grad.copy() for n, p in zip(D_PARAM_NAMES, gan.discriminator.parameters())})
    return grads


def _agreement(torch: Any) -> dict[str, Any]:
    """Three steps of all implementations from the same weights and noise: losses and gradients.

    Gradients are compared after the first step, relative to each tensor's largest entry.
    PyTorch's float32 GEMMs round differently from OpenBLAS, so a pre-activation within
    rounding of 0 can take the other LeakyReLU slope and move a few gradients by more
    than rounding; its losses still agree to float32 precision.
    """
    impls = _implementations(torch)
    batches = _real_batches(32)
    losses: dict[str, list[list[float]]] = {name: [] for name in impls}
    grads: dict[str, dict[str, np.ndarray]] = {}
    for step in range(3):
        for name, impl in impls.items():
            result = impl.train_step(batches[step])
            losses[name].append([result["d_loss"], result["g_loss"]])
            if step == 0:
                grads[name] = _minigan_grads(impl) if name == "minigan" else {
                    k: v.copy() for k, v in impl.named_grads().items()}
    reference = np.array(losses["minigan"])
    report: dict[str, Any] = {"losses": losses}
    for name in impls:
        if name == "minigan":
            continue
        report[f"{name}_loss_rel_diff_max"] = float(np.max(np.abs(np.array(losses[name]) - reference) / np.abs(reference)))
        rel = [float(np.abs(grads[name][k] - g).max() / max(float(np.abs(g).max()), 1e-30))
               for k, g in grads["minigan"].items()]
        report[f"{name}_grad_rel_diff_max"] = max(rel)
        report[f"{name}_grad_rel_diff_median"] = float(np.median(rel))
    return report


def _adam_contenders(torch: Any) -> tuple[dict[str, Callable[[], Any]], int]:
    """One Adam step over the reference generator's parameters, three ways."""
    import minigan as mg

    G = mg.models.reference_generator(rng=np.random.default_rng(1))
    rng = np.random.default_rng(3)
    for p in G.parameters():
        p.grad[...] = rng.standard_normal(p.grad.shape, dtype=F32)
    n_params = int(sum(p.value.size for p in G.parameters()))
    opt = mg.optim.Adam(G.parameters(), **ADAM_SETTINGS)
    np_params = [p.value.copy() for p in G.parameters()]
    np_grads = [p.grad.copy() for p in G.parameters()]
    np_opt = NumpyAdam(np_params, eps=1e-7, **ADAM_SETTINGS)
    contenders: dict[str, Callable[[], Any]] = {"minigan": opt.step, "numpy": lambda: np_opt.step(np_grads)}
    if torch is not None:
        from torch_gan import adam_for

        torch_opt, _ = adam_for(np_params)
        contenders["torch"] = torch_opt.step
    return contenders, n_params


def _ema_update() -> Callable[[], None]:
    """The per-step update of the generator's moving average that GAN keeps by default."""
    import minigan as mg

    G = mg.models.reference_generator(rng=np.random.default_rng(1))
    D = mg.models.reference_discriminator(rng=np.random.default_rng(2))
    gan = mg.GAN(G, D, latent_dim=100, seed=0)  # default ema_decay=0.999
    gan.iteration = 10_003  # past the warm-up, and an iteration that updates (every EMA_EVERY-th)
    return gan._update_ema


def _interleave(contenders: dict[str, Callable[[], Any]], settings: dict[str, Any]) -> dict[str, Any]:
    # A call longer than the block target makes a block by itself (keeps loaded machines' runs bounded).
    calls = {name: common.calls_per_block(fn, settings["block_seconds"], minimum=1) for name, fn in contenders.items()}
    samples = common.interleaved(contenders, repeats=settings["repeats"], calls=calls, pause=settings["pause"])
    out: dict[str, Any] = {name: {**common.summarize(s), "calls_per_block": calls[name]} for name, s in samples.items()}
    for other in contenders:
        if other != "minigan" and "minigan" in samples:
            paired = [a / b for a, b in zip(samples["minigan"], samples[other])]
            out[f"minigan/{other}"] = out["minigan"]["median_ms"] / out[other]["median_ms"]
            out[f"minigan/{other}_paired_median"] = common.median(paired)
    return out


def worker(threads: int, batches: list[int], settings: dict[str, Any]) -> dict[str, Any]:
    """Everything measured at one thread count; runs inside the per-thread-count subprocess."""
    how = common.limit_threads(threads)
    torch = _try_torch(threads)
    if threads == 1:  # no worker threads that could still be spinning: no pause needed
        settings = {**settings, "pause": 0.0}
    result: dict[str, Any] = {"threads": threads, "thread_limit": how, "torch": torch is not None,
                              "pause_s": settings["pause"], "load_before": os.getloadavg()[0]}
    _log(f"[{threads} thread(s)] checking that the implementations agree ...")
    result["agreement"] = _agreement(torch)
    _log(f"[{threads} thread(s)] measuring the sgemm peak ...")
    result["peak_gflops"] = common.sgemm_peak_gflops(2048, repeats=3 if settings["quick"] else 5)
    result["batches"] = {}
    for batch in batches:
        _log(f"[{threads} thread(s)] train_step at batch {batch} ...")
        batches_real = _real_batches(batch)
        contenders = {name: common.cycling(impl.train_step, batches_real) for name, impl in _implementations(torch).items()}
        gemm, flops, products = gemm_only(batch)
        contenders["gemm"] = gemm
        row = _interleave(contenders, settings)
        row["gflop_per_iteration"] = flops / 1e9
        row["gemm_products"] = products
        if "torch" in row:  # no implementation of this iteration on this BLAS can go below it
            row["gemm/torch"] = row["gemm"]["median_ms"] / row["torch"]["median_ms"]
        row["fraction_outside_gemm"] = 1 - row["gemm"]["median_ms"] / row["minigan"]["median_ms"]
        row["step_over_gemm"] = row["minigan"]["median_ms"] / row["gemm"]["median_ms"]
        for name in ("minigan", "numpy", "torch", "gemm"):
            if name in row:
                row[name]["gflops"] = flops / (row[name]["median_ms"] * 1e-3) / 1e9
        result["batches"][str(batch)] = row
    _log(f"[{threads} thread(s)] Adam ...")
    adam, n_params = _adam_contenders(torch)
    row = _interleave(adam, settings)
    row["parameters"] = n_params
    for name in adam:
        row[name]["ms_per_million_params"] = row[name]["median_ms"] / (n_params / 1e6)
    result["adam"] = row
    _log(f"[{threads} thread(s)] generator average ...")
    result["ema"] = _interleave({"minigan": _ema_update()}, settings)["minigan"]
    result["load_after"] = os.getloadavg()[0]
    return result


# ============================================================================
# Parent side
# ============================================================================
def run_worker(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
                   "--batches", ",".join(map(str, args.batches)), "--json", str(out)]
        if args.quick:
            command.append("--quick")
        subprocess.run(command, env=common.thread_env(threads), check=True)
        return json.loads(out.read_text())


def _load_by_path(name: str) -> Any:
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"minigan_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run_helper(name: str, quick: bool) -> dict[str, Any]:
    """Call benchmarks/<name>.py's ``run(quick)``; a missing or failing helper is reported, not fatal."""
    try:
        module = _load_by_path(name)
        if module is None:
            print(f"{name}: benchmarks/{name}.py not found, skipped")
            return {"skipped": "file not found"}
        start = time.perf_counter()
        result = module.run(quick)
        record = {"result": result, "seconds": time.perf_counter() - start}
        if callable(getattr(module, "format_table", None)):
            record["table"] = module.format_table(result)
        return record
    except Exception as error:  # noqa: BLE001 - one broken helper must not stop the others
        print(f"{name}: failed with {type(error).__name__}: {error}")
        return {"failed": f"{type(error).__name__}: {error}"}


FIRST_STEP_SCRIPT = """
import json, time
start = time.perf_counter()
import numpy as np
import minigan as mg
imported = time.perf_counter()
G = mg.models.reference_generator(rng=np.random.default_rng(1))
D = mg.models.reference_discriminator(rng=np.random.default_rng(2))
gan = mg.GAN(G, D, latent_dim=100, seed=0)
real = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28)).astype(np.float32)
built = time.perf_counter()
gan.train_step(real)
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "build_s": built - imported, "train_step_s": done - built}))
"""


def cold_start(quick: bool) -> dict[str, Any]:
    """Wall-clock times of fresh processes (medians), including interpreter start-up."""
    import json

    repeats = 3 if quick else 5
    python = sys.executable
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "import minigan": [python, "-c", "import minigan"],
        "python -m minigan --help": [python, "-m", "minigan", "--help"],
    }
    script = Path(python).with_name("minigan")
    if script.exists():
        commands["minigan --help (console script)"] = [str(script), "--help"]
    out: dict[str, Any] = {}
    for label, command in commands.items():
        try:
            times = [common.timed_subprocess(command)[0] for _ in range(repeats)]
            out[label] = {"median_s": common.median(times), "runs_s": times}
        except Exception as error:  # noqa: BLE001
            out[label] = {"failed": str(error)[-500:]}
    # First train_step: an empty Numba cache compiles every kernel; the second run in the
    # same cache directory loads them.
    cold_runs = 1 if quick else 3
    cold, warm, cold_parts, warm_parts = [], [], [], []
    for _ in range(cold_runs):
        cache = tempfile.mkdtemp(prefix="minigan-numba-cache-")
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        try:
            seconds, text = common.timed_subprocess([python, "-c", FIRST_STEP_SCRIPT], env=env)
            cold.append(seconds)
            cold_parts.append(json.loads(text))
            seconds, text = common.timed_subprocess([python, "-c", FIRST_STEP_SCRIPT], env=env)
            warm.append(seconds)
            warm_parts.append(json.loads(text))
        except Exception as error:  # noqa: BLE001
            out["first train_step"] = {"failed": str(error)[-500:]}
            break
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    if cold:
        out["first train_step, empty Numba cache"] = {"median_s": common.median(cold), "runs_s": cold,
                                                      "parts": cold_parts}
    if warm:
        out["first train_step, warm Numba cache"] = {"median_s": common.median(warm), "runs_s": warm,
                                                     "parts": warm_parts}
    return out


# ----------------------------------------------------------------------------
# Printing
# ----------------------------------------------------------------------------
def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def train_table(per_threads: list[dict[str, Any]]) -> str:
    head = (f"{'thr':>3} {'batch':>5} | {'minigan':>8} {'numpy':>8} {'torch':>8} | {'mg/torch':>8} {'mg/numpy':>8}"
            f" | {'GEMM':>7} {'outside':>7} {'step/GEMM':>9} {'GEMM/torch':>10} | {'GF/s mg':>7} {'GF/s GEMM':>9}"
            f" {'peak':>5}")
    lines = ["train_step of the reference GAN, float32, ms per iteration (medians); outside = 1 - GEMM/minigan;",
             "GEMM/torch = the iteration's matrix products alone over PyTorch's whole step (no implementation on",
             "this BLAS can reach a smaller mg/torch)", head, "-" * len(head)]
    for result in per_threads:
        for batch, row in result["batches"].items():
            torch_ms = row.get("torch", {}).get("median_ms")
            lines.append(
                f"{result['threads']:>3} {batch:>5} | {row['minigan']['median_ms']:8.2f} {row['numpy']['median_ms']:8.2f} "
                f"{_fmt(torch_ms, '8.2f'):>8} | {_fmt(row.get('minigan/torch'), '8.2f'):>8} "
                f"{row['minigan/numpy']:8.2f} | {row['gemm']['median_ms']:7.2f} {row['fraction_outside_gemm']:7.0%} "
                f"{row['step_over_gemm']:9.2f} {_fmt(row.get('gemm/torch'), '10.2f'):>10} | "
                f"{row['minigan']['gflops']:7.1f} {row['gemm']['gflops']:9.1f} "
                f"{result['peak_gflops']:5.0f}"
            )
    return "\n".join(lines)


def adam_table(per_threads: list[dict[str, Any]]) -> str:
    lines = ["Adam step over the reference generator's parameters, ms per million parameters (medians)",
             f"{'thr':>3} {'params':>9} | {'minigan':>8} {'numpy':>8} {'torch':>8} | {'mg/torch':>8} {'mg/numpy':>8}"]
    for result in per_threads:
        row = result["adam"]
        lines.append(
            f"{result['threads']:>3} {row['parameters']:>9} | {row['minigan']['ms_per_million_params']:8.3f} "
            f"{row['numpy']['ms_per_million_params']:8.3f} "
            f"{_fmt(row.get('torch', {}).get('ms_per_million_params'), '8.3f'):>8} | "
            f"{_fmt(row.get('minigan/torch'), '8.2f'):>8} {row['minigan/numpy']:8.2f}"
        )
    from minigan.gan import EMA_EVERY

    for result in per_threads:
        if "ema" in result:
            step = result["batches"].get("64", {}).get("minigan", {}).get("median_ms")
            per_step = result["ema"]["median_ms"] / EMA_EVERY
            share = f" = {per_step / step:.1%} of the step at batch 64" if step else ""
            lines.append(f"{result['threads']} thread(s): the generator average (GAN's default ema_decay=0.999, not in "
                         f"the table above) takes {result['ema']['median_ms']:.3f} ms every {EMA_EVERY}th step, "
                         f"{per_step:.3f} ms per step{share}")
    return "\n".join(lines)


def agreement_lines(per_threads: list[dict[str, Any]]) -> str:
    lines = []
    for result in per_threads:
        a = result["agreement"]
        parts = [f"{k} {v:.1e}" for k, v in a.items() if k != "losses"]
        lines.append(f"agreement with minigan over 3 steps ({result['threads']} thread(s)): " + ", ".join(parts))
        load = max(result["load_before"], result["load_after"])
        if load > 0.5 + (os.cpu_count() or 1) - result["threads"]:
            lines.append(f"WARNING: load average {load:.1f} on {os.cpu_count()} cores during the "
                         f"{result['threads']}-thread run: other processes competed for the CPU")
    return "\n".join(lines)


def cold_table(cold: dict[str, Any]) -> str:
    lines = ["cold start, fresh processes (medians, seconds)"]
    for label, row in cold.items():
        lines.append(f"  {label:<40} {_fmt(row.get('median_s'), '6.3f') if 'median_s' in row else row}")
    return "\n".join(lines)


def helper_lines(name: str, record: dict[str, Any], limit: int = 40) -> str:
    """Numeric leaves of a helper's result, one per line (its own format is its business)."""
    if "result" not in record:
        return f"{name}: {record}"
    if "table" in record:
        return f"{name} ({record['seconds']:.0f} s)\n{record['table']}"
    leaves: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                label = next((v for v in inner.values() if isinstance(v, str)), str(i)) if isinstance(inner, dict) else str(i)
                walk(f"{prefix}[{label}]", inner)
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            leaves.append(f"  {prefix}: {value:.4g}")
        elif isinstance(value, str) and len(value) < 80:
            leaves.append(f"  {prefix}: {value}")

    walk("", record["result"])
    more = f"\n  ... {len(leaves) - limit} more in the JSON" if len(leaves) > limit else ""
    return f"{name} ({record['seconds']:.0f} s)\n" + "\n".join(leaves[:limit]) + more


# ----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter blocks (a smoke run)")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write all results")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--batches", default="32,64,128,256", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 30, quick 10)")
    parser.add_argument("--pause", type=float, default=None, help="seconds before every block (default 0.2, quick 0.1)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: train,layers,benford,fit,cold")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.skip = {s for s in args.skip.split(",") if s}
    if args.repeats is None:
        args.repeats = 10 if args.quick else 30
    if args.pause is None:
        args.pause = 0.1 if args.quick else 0.2
    if min(args.threads) < 1 or min(args.batches) < 2:
        parser.error("thread counts must be >= 1 and batch sizes >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _ensure_minigan_importable()
    settings = {"quick": args.quick, "repeats": args.repeats, "pause": args.pause,
                "block_seconds": 0.05 if args.quick else 0.1}
    if args.worker:
        result = worker(args.threads[0], args.batches, settings)
        Path(args.json).write_text(common.dumps(result))
        return 0

    start = time.perf_counter()
    results: dict[str, Any] = {"machine": common.machine_info(), "settings": {**settings, "threads": args.threads,
                                                                              "batches": args.batches},
                               "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import minigan

        results["machine"]["minigan"] = minigan.__version__
    except ImportError:
        print("minigan is not importable: run with PYTHONPATH=. from the repository root")
        return 2
    machine = results["machine"]
    print(f"machine: {machine['cpu']}, {machine['usable_cores']} cores; numpy {machine['numpy']}, "
          f"numba {machine['numba']}, torch {machine['torch'] or 'not installed (skipped)'}")

    if "train" not in args.skip:
        per_threads = [run_worker(t, args) for t in args.threads]
        results["train"] = per_threads
        print()
        print(train_table(per_threads))
        print()
        print(adam_table(per_threads))
        print()
        print(agreement_lines(per_threads))
    for name, key in (("bench_layers", "layers"), ("bench_benford", "benford"), ("bench_fit", "fit")):
        if key not in args.skip:
            print()
            results[key] = run_helper(name, args.quick)
            print(helper_lines(name, results[key]))
    if "cold" not in args.skip:
        results["cold_start"] = cold_start(args.quick)
        print()
        print(cold_table(results["cold_start"]))
    results["total_seconds"] = time.perf_counter() - start
    Path(args.json).write_text(common.dumps(results))
    print(f"\nwrote {args.json} ({results['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
