"""The cost of conditioning: one ``GAN.train_step`` of a conditional GAN against the unconditional one.

Builds, with ``minigan.models.build_gan`` and the same seed, the reference GAN of
``minigan train --r1 0`` (plain bce, no penalty) and its conditional variants (``--conditional``: by default the
label's one-hot code joined to G's noise and a projection discriminator; also G by a
learned embedding or by conditional BatchNorm, and D by the one-hot code joined to the
image), and times ``train_step`` on the same batches of the bundled digits (batch 64,
float32). The contenders run side by side in this one
process, interleaved in rounds (A, B, C, A, B, C, ...), each round one block of steps
per contender; the table gives the median over the rounds of the time per step and
its ratio to the unconditional step.

Each block is timed by the wall clock and by the process's CPU time; with one thread
(``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1``) the CPU time is the steadier of the two
on a machine that other work shares. The numbers depend on the machine, its BLAS and
the thread count, and on other work running: the ratio, measured in one process, is
what carries over.

Run: ``PYTHONPATH=. python benchmarks/bench_conditional.py [--quick]``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minigan import datasets  # noqa: E402
from minigan.models import build_gan  # noqa: E402

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)

BATCH = 64
CONTENDERS = {
    "unconditional": {},
    "conditional (default)": {"conditional": True},
    "G embedding, D projection": {"conditional": True, "g_conditioning": "embedding"},
    "G batchnorm, D projection": {"conditional": True, "g_conditioning": "batchnorm"},
    "G one-hot, D concat": {"conditional": True, "d_conditioning": "concat"},
}


def _stepper(settings: dict[str, Any], images: np.ndarray, labels: np.ndarray) -> Callable[[], Any]:
    """A zero-argument call of one ``train_step`` on the next batch (the same batch sequence for every contender)."""
    extra = {"num_classes": 10} if settings.get("conditional") else {}
    gan = build_gan({**settings, "seed": 0, "r1": 0.0, **extra})  # the objective alone: no penalty
    conditional = gan.conditional
    order = np.random.default_rng(1).permutation(len(images))
    state = {"position": 0}

    def step() -> Any:
        start = state["position"]
        if start + BATCH > len(order):
            start = 0
        index = order[start:start + BATCH]
        state["position"] = start + BATCH
        return gan.train_step(images[index], labels[index] if conditional else None)

    return step


def _interleaved_clocks(steps: dict[str, Callable[[], Any]], calls: dict[str, int], repeats: int,
                        pause: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Like ``common.interleaved``, timing each block by the wall clock and by this
    process's CPU time (``time.process_time``): on a machine shared with other work the
    CPU time moves less, as long as one thread does the work (with several, it adds
    their spinning too)."""
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            time.sleep(pause)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls[name]):
                fn()
            wall[name].append((time.perf_counter() - start_wall) / calls[name])
            cpu[name].append((time.process_time() - start_cpu) / calls[name])
    return wall, cpu


def _ratios(samples: dict[str, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    base = common.median(samples["unconditional"])
    of_medians = {name: common.median(values) / base for name, values in samples.items()}
    per_round = {name: common.median([v / b for v, b in zip(values, samples["unconditional"])])
                 for name, values in samples.items()}
    return of_medians, per_round


def run(quick: bool) -> dict[str, Any]:
    raw, labels = datasets.load("mnist-5k")
    images = datasets.to_tanh_range(raw, dtype=np.float32)
    labels = labels.astype(np.int64)
    steps = {name: _stepper(settings, images, labels) for name, settings in CONTENDERS.items()}
    for fn in steps.values():  # compile and warm up before sizing the blocks
        for _ in range(5):
            fn()
    calls = {name: common.calls_per_block(fn, 0.05 if quick else 0.15) for name, fn in steps.items()}
    wall, cpu = _interleaved_clocks(steps, calls, 5 if quick else 31, 0.05)
    result: dict[str, Any] = {"batch": BATCH, "rounds": len(wall["unconditional"]), "machine": common.machine_info()}
    for clock, samples in (("wall", wall), ("cpu", cpu)):
        of_medians, per_round = _ratios(samples)
        result[clock] = {"summary": {name: common.summarize(values) for name, values in samples.items()},
                         "ratio_of_medians": of_medians, "median_of_round_ratios": per_round}
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"train_step at batch {result['batch']}, float32, {result['rounds']} interleaved rounds "
             "(median ms per step; wall clock, then this process's CPU time)",
             f"{'contender':<28}{'wall ms':>9}{'q1':>8}{'q3':>8}{'ratio':>7}{'rounds':>7}"
             f"{'cpu ms':>9}{'ratio':>7}{'rounds':>7}"]
    wall, cpu = result["wall"], result["cpu"]
    for name, s in wall["summary"].items():
        lines.append(f"{name:<28}{s['median_ms']:>9.3f}{s['q1_ms']:>8.3f}{s['q3_ms']:>8.3f}"
                     f"{wall['ratio_of_medians'][name]:>7.3f}{wall['median_of_round_ratios'][name]:>7.3f}"
                     f"{cpu['summary'][name]['median_ms']:>9.3f}{cpu['ratio_of_medians'][name]:>7.3f}"
                     f"{cpu['median_of_round_ratios'][name]:>7.3f}")
    lines.append("ratio: the median over the unconditional step's median; rounds: the median of the per-round "
                 "ratios")
    name = "conditional (default)"
    worst = max(wall["ratio_of_medians"][name], wall["median_of_round_ratios"][name])
    lines.append(f"\nconditional (default) step / unconditional step: {wall['ratio_of_medians'][name]:.3f} by the "
                 f"wall clock ({wall['median_of_round_ratios'][name]:.3f} per round), "
                 f"{cpu['ratio_of_medians'][name]:.3f} by CPU time ({cpu['median_of_round_ratios'][name]:.3f} per "
                 f"round); at most 1.1 wanted: {'yes' if worst <= 1.1 else 'NO'} (wall clock)")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "5 short rounds (a smoke run)")


if __name__ == "__main__":
    main()
