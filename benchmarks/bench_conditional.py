"""The cost of conditioning: one ``GAN.train_step`` of a conditional GAN against the unconditional one.

Builds, with ``minigan.models.build_gan`` and the same seed, the reference GAN of
``minigan train`` and its conditional variants (``--conditional``: by default the
label's one-hot code joined to G's noise and a projection discriminator; also G by a
learned embedding or by conditional BatchNorm, and D by the one-hot code joined to the
image), and times ``train_step`` on the same batches of the bundled digits (batch 64,
float32). The contenders run side by side in this one
process, interleaved in rounds (A, B, C, A, B, C, ...), each round one block of steps
per contender; the table gives the median over the rounds of the time per step and
its ratio to the unconditional step.

The numbers depend on the machine, its BLAS and the thread count (set
``OPENBLAS_NUM_THREADS`` / ``NUMBA_NUM_THREADS``), and on other work running: the
ratio, measured in one process, is what carries over.

Run: ``PYTHONPATH=. python benchmarks/bench_conditional.py [--quick]``.
"""
from __future__ import annotations

import sys
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
    gan = build_gan({**settings, "seed": 0, **extra})
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


def run(quick: bool) -> dict[str, Any]:
    raw, labels = datasets.load("mnist-5k")
    images = datasets.to_tanh_range(raw, dtype=np.float32)
    labels = labels.astype(np.int64)
    steps = {name: _stepper(settings, images, labels) for name, settings in CONTENDERS.items()}
    calls = {name: common.calls_per_block(fn, 0.05 if quick else 0.15) for name, fn in steps.items()}
    samples = common.interleaved(steps, repeats=5 if quick else 31, calls=calls, pause=0.05, warmup_calls=5)
    summary = {name: common.summarize(values) for name, values in samples.items()}
    base = summary["unconditional"]["median_ms"]
    ratios = {name: [s / b for s, b in zip(values, samples["unconditional"])] for name, values in samples.items()}
    return {"batch": BATCH, "summary": summary, "ratio_of_medians": {n: s["median_ms"] / base for n, s in summary.items()},
            "median_of_round_ratios": {n: common.median(r) for n, r in ratios.items()},
            "rounds": len(samples["unconditional"]), "machine": common.machine_info()}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"train_step at batch {result['batch']}, float32, {result['rounds']} interleaved rounds (median ms per step)",
             f"{'contender':<28}{'median ms':>10}{'q1':>8}{'q3':>8}{'ratio':>8}{'round ratio':>13}"]
    for name, s in result["summary"].items():
        lines.append(f"{name:<28}{s['median_ms']:>10.3f}{s['q1_ms']:>8.3f}{s['q3_ms']:>8.3f}"
                     f"{result['ratio_of_medians'][name]:>8.3f}{result['median_of_round_ratios'][name]:>13.3f}")
    lines.append("ratio: median over the median of the unconditional step; round ratio: the median of the "
                 "per-round ratios")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "5 short rounds (a smoke run)")


if __name__ == "__main__":
    main()
