"""R1 by hand against PyTorch's double backward, and what lazy R1 adds to a training step.

Usage::

    PYTHONPATH=. python benchmarks/bench_penalty.py [--quick] [--threads 1,2] [--json OUT.json]

Two measurements, each thread count in its own subprocess (OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS
set, plus threadpoolctl and ``torch.set_num_threads`` when available):

1. **R1, value and parameter gradients**, on the reference discriminator
   (``minigan.models.reference_discriminator``: 784 -> 512 -> 256 -> 1, LeakyReLU 0.2) at
   batch 64 in float32, on real digits: ``minigan.penalties.r1(D, x, gamma)`` (the public
   call, argument checks included; it adds into ``D.grads``) against PyTorch with the same
   weights: ``g = torch.autograd.grad(D(x).sum(), x, create_graph=True)``, then
   ``(gamma / 2 * g.pow(2).sum(1).mean()).backward()`` into freshly cleared ``.grad``.
   Both compute the same numbers (checked before timing).
2. **Lazy R1 on a train_step** of the reference GAN (batch 64, default settings): without
   a penalty, with ``R1Penalty(gamma, every=16)`` (StyleGAN2's lazy regularization) and
   with R1 on every D step, from the same weights and seed. Every block runs 32 steps,
   so a lazy block holds exactly two penalised steps.

Contenders run interleaved (A, B, A, B, ...) with a pause before each block when more
than one thread is used, and medians of the rounds are reported (see common.py). The
environment variables ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed from the
workers' environment (OpenBLAS then picks its kernels for the CPU it finds) unless
``--keep-blas-env`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import common  # noqa: E402

GAMMA = 10.0
BATCH = 64
LAZY_EVERY = 16
STEPS_PER_BLOCK = 32
BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _digits(n: int, seed: int) -> np.ndarray:
    """``n`` bundled real digits in [-1, 1], float32 (n, 784)."""
    import minigan as mg

    images, _ = mg.datasets.load("mnist-5k")
    pick = np.random.default_rng(seed).choice(len(images), n, replace=False)
    return mg.datasets.to_tanh_range(images[pick]).reshape(n, -1).astype(np.float32)


def _torch_r1(torch: Any, D: Any, x: np.ndarray) -> tuple[Callable[[], Any], Any]:
    """PyTorch's R1 with D's weights: a call computes the value and fills ``.grad``."""
    from torch import nn

    layers = []
    for layer in D.layers:
        if type(layer).__name__ == "Dense":
            linear = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
            layers.append(linear)
        else:
            layers.append(nn.LeakyReLU(layer.alpha))
    net = nn.Sequential(*layers)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)

    def call() -> Any:
        net.zero_grad(set_to_none=True)
        (g,) = torch.autograd.grad(net(xt).sum(), xt, create_graph=True)
        penalty = GAMMA / 2 * g.pow(2).sum(dim=1).mean()
        penalty.backward()
        return penalty

    return call, net


def _agreement(torch: Any, D: Any, x: np.ndarray) -> dict[str, float]:
    """Largest relative difference of the value and of each gradient (relative to its largest entry)."""
    from minigan import penalties

    D.zero_grad()
    value = penalties.r1(D, x, GAMMA)
    call, net = _torch_r1(torch, D, x)
    theirs = float(call())
    mine = [p.grad for p in D.parameters()]
    torch_grads = []
    for module in net:
        if hasattr(module, "weight"):
            # A parameter the penalty does not reach keeps .grad None (the biases of a LeakyReLU net).
            torch_grads += [np.zeros(tuple(p.shape[::-1]) if p.ndim == 2 else tuple(p.shape), dtype=np.float32)
                            if p.grad is None else (p.grad.numpy().T if p.ndim == 2 else p.grad.numpy())
                            for p in (module.weight, module.bias)]
    rel = [float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(mine, torch_grads)]
    return {"value_rel_diff": abs(value - theirs) / abs(theirs), "grad_rel_diff_max": max(rel),
            "bias_grads_zero": float(all(not p.grad.any() for p in D.parameters() if p.name.endswith(".b")))}


def _gan(every: int | None) -> Any:
    import minigan as mg
    from minigan.terms import R1Penalty

    G = mg.models.reference_generator(rng=np.random.default_rng(1))
    D = mg.models.reference_discriminator(rng=np.random.default_rng(2))
    terms = [] if every is None else [R1Penalty(GAMMA, every=every)]
    return mg.GAN(G, D, latent_dim=100, seed=0, discriminator_terms=terms)


def _row(samples: dict[str, list[float]], calls: dict[str, int]) -> dict[str, Any]:
    return {name: {**common.summarize(s), "calls_per_block": calls[name]} for name, s in samples.items()}


def worker(threads: int, quick: bool, repeats: int, pause: float, parts: set[str]) -> dict[str, Any]:
    how = common.limit_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    if threads == 1:
        pause = 0.0
    result: dict[str, Any] = {"threads": threads, "thread_limit": how, "torch": torch is not None,
                              "load_before": os.getloadavg()[0],
                              "blas_env": {k: os.environ.get(k) for k in BLAS_PINS}}

    if "r1" in parts:
        result["r1"], result["agreement"] = _r1_part(threads, torch, quick, repeats, pause)
    if "step" in parts:
        result["train_step"] = _step_part(threads, repeats, pause)
    result["load_after"] = os.getloadavg()[0]
    return result


def _r1_part(threads: int, torch: Any, quick: bool, repeats: int, pause: float) -> tuple[dict[str, Any], Any]:
    import minigan as mg
    from minigan import penalties

    _log(f"[{threads} thread(s)] R1 on the reference discriminator, batch {BATCH} ...")
    D = mg.models.reference_discriminator(rng=np.random.default_rng(2))
    x = _digits(BATCH, seed=3)
    contenders: dict[str, Callable[[], Any]] = {"minigan": lambda: penalties.r1(D, x, GAMMA)}
    agreement = None
    if torch is not None:
        agreement = _agreement(torch, D, x)
        contenders["torch"] = _torch_r1(torch, D, x)[0]
    block = 0.05 if quick else 0.1
    calls = {name: common.calls_per_block(fn, block, minimum=1) for name, fn in contenders.items()}
    samples = common.interleaved(contenders, repeats=repeats, calls=calls, pause=pause)
    r1_row = _row(samples, calls)
    if torch is not None:
        r1_row["minigan/torch"] = r1_row["minigan"]["median_ms"] / r1_row["torch"]["median_ms"]
        r1_row["minigan/torch_paired_median"] = common.median(
            [a / b for a, b in zip(samples["minigan"], samples["torch"])])
    return r1_row, agreement


def _step_part(threads: int, repeats: int, pause: float) -> dict[str, Any]:
    _log(f"[{threads} thread(s)] train_step without R1, with lazy R1 (every {LAZY_EVERY}), with R1 every step ...")
    batches = [_digits(BATCH, seed=s) for s in range(4)]
    steps = {"no R1": common.cycling(_gan(None).train_step, batches),
             f"lazy R1 (every {LAZY_EVERY})": common.cycling(_gan(LAZY_EVERY).train_step, batches),
             "R1 every step": common.cycling(_gan(1).train_step, batches)}
    per_block = {name: STEPS_PER_BLOCK for name in steps}
    samples = common.interleaved(steps, repeats=max(5, repeats // 2), calls=per_block, pause=pause,
                                 warmup_calls=STEPS_PER_BLOCK)
    step_row = _row(samples, per_block)
    base = samples["no R1"]
    for name in steps:
        if name != "no R1":
            step_row[f"{name} / no R1"] = step_row[name]["median_ms"] / step_row["no R1"]["median_ms"]
            step_row[f"{name} / no R1, paired median"] = common.median([a / b for a, b in zip(samples[name], base)])
    return step_row


def run_worker(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    env = common.thread_env(threads)
    if not args.keep_blas_env:
        for name in BLAS_PINS:
            env.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
                   "--repeats", str(args.repeats), "--pause", str(args.pause), "--json", str(out),
                   "--parts", args.parts]
        if args.quick:
            command.append("--quick")
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())


def format_table(per_threads: list[dict[str, Any]]) -> str:
    lines = [f"R1 (gamma {GAMMA:g}), value and parameter gradients, reference D, batch {BATCH}, float32, "
             "ms per call (medians)",
             f"{'thr':>3} | {'minigan':>8} {'torch':>8} | {'mg/torch':>8} {'paired':>7} | agreement (value, grads)"]
    for result in per_threads:
        if "r1" not in result:
            continue
        row = result["r1"]
        torch_ms = row.get("torch", {}).get("median_ms")
        agreement = result.get("agreement")
        agree = (f"{agreement['value_rel_diff']:.1e}, {agreement['grad_rel_diff_max']:.1e}" if agreement else "-")
        lines.append(f"{result['threads']:>3} | {row['minigan']['median_ms']:8.3f} "
                     f"{'-' if torch_ms is None else format(torch_ms, '8.3f'):>8} | "
                     f"{'-' if torch_ms is None else format(row['minigan/torch'], '8.2f'):>8} "
                     f"{'-' if torch_ms is None else format(row['minigan/torch_paired_median'], '7.2f'):>7} | {agree}")
    lines += ["", f"train_step of the reference GAN, batch {BATCH}, ms per step (medians of blocks of "
              f"{STEPS_PER_BLOCK} steps)",
              f"{'thr':>3} | {'no R1':>8} {'lazy/16':>8} {'every':>8} | {'lazy/none':>9} {'paired':>7} | "
              f"{'every/none':>10}"]
    for result in per_threads:
        if "train_step" not in result:
            continue
        row = result["train_step"]
        lazy = f"lazy R1 (every {LAZY_EVERY})"
        lines.append(
            f"{result['threads']:>3} | {row['no R1']['median_ms']:8.3f} {row[lazy]['median_ms']:8.3f} "
            f"{row['R1 every step']['median_ms']:8.3f} | {row[f'{lazy} / no R1']:9.3f} "
            f"{row[f'{lazy} / no R1, paired median']:7.3f} | {row['R1 every step / no R1']:10.3f}")
    for result in per_threads:
        load = max(result["load_before"], result["load_after"])
        if load > 0.5 + (os.cpu_count() or 1) - result["threads"]:
            lines.append(f"WARNING: load average {load:.1f} on {os.cpu_count()} cores during the "
                         f"{result['threads']}-thread run: other processes competed for the CPU")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter blocks (a smoke run)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 30, quick 6)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds before every block with >1 thread")
    parser.add_argument("--json", default=None, help="also write the results as JSON")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the workers' environment")
    parser.add_argument("--parts", default="r1,step", help="what to measure: r1 (against PyTorch), step (lazy R1 "
                        "on a train_step); default both")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 6 if args.quick else 30
    threads = [int(t) for t in args.threads.split(",") if t]
    if args.worker:
        parts = {p for p in args.parts.split(",") if p}
        Path(args.json).write_text(common.dumps(worker(threads[0], args.quick, args.repeats, args.pause, parts)))
        return 0
    machine = common.machine_info()
    print(f"machine: {machine['cpu']}, {machine['usable_cores']} cores; numpy {machine['numpy']}, "
          f"numba {machine['numba']}, torch {machine['torch'] or 'not installed (skipped)'}")
    per_threads = [run_worker(t, args) for t in threads]
    print(format_table(per_threads))
    if args.json:
        Path(args.json).write_text(common.dumps({"machine": machine, "results": per_threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
