"""What the Benford term adds to a training step: ``train_step`` at batch 64 with and without it.

Four GANs of the reference architecture, same seed, side by side in one process
(interleaved blocks, medians of the rounds, see ``common.py``):

* ``plain``: the ``minigan train`` step (bce with its default lazy R1, as the duel's
  evading rounds train);
* ``benford``: with ``BenfordTerm`` as ``--benford-weight W`` builds it (the detector's
  five quality factors, base 10, nine coefficients, matched against real digits of the
  batch's class mix, which the built-in digit classifier estimates on every batch), the
  soft statistics of the 64 fakes, the divergence and its gradient;
* ``benford_pooled``: the same against the pooled real digits (no classifier);
* ``benford_all_bases``: the same term over the detector's four bases (10, 20, 40, 60).

Also times the term by itself (forward and backward of the pooled statistics) and
the frozen-detector term (``--evade``) per judged image, which is not part of the
budget: it runs the detector's generalized-Benford fits on every judged image.

Run: ``PYTHONPATH=. python benchmarks/bench_soft_benford.py [--quick]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import minigan as mg
from minigan.benford import BenfordDetector, PixelDetector
from minigan.benford.evasion import BenfordTerm, DetectorTerm

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)


def _gan(terms: list[Any]) -> Any:
    gan = mg.models.build_gan({"seed": 0})
    gan.generator_terms = terms
    return gan


def run(quick: bool = False) -> dict[str, Any]:
    images, _ = mg.datasets.load("mnist-5k")
    data = mg.datasets.to_tanh_range(images).reshape(len(images), -1)
    rng = np.random.default_rng(0)
    batches = [data[rng.integers(0, len(data), 64)] for _ in range(16)]
    gans = {
        "plain": _gan([]),
        "benford": _gan([BenfordTerm("mnist-5k")]),
        "benford_pooled": _gan([BenfordTerm(images, match_classes=False)]),
        "benford_all_bases": _gan([BenfordTerm("mnist-5k", bases=(10, 20, 40, 60))]),
    }
    position = {name: 0 for name in gans}

    def stepper(name: str) -> Any:
        def step() -> None:
            gans[name].train_step(batches[position[name] % len(batches)])
            position[name] += 1
        return step

    repeats = 5 if quick else 30
    samples = common.interleaved({name: stepper(name) for name in gans}, repeats=repeats, calls=10, pause=0.1)
    steps = {name: common.summarize(s) for name, s in samples.items()}

    fakes = gans["plain"].generator.forward_unchecked(gans["plain"].noise(64)).copy()
    term = gans["benford"].generator_terms[0]

    def term_alone() -> None:
        term.divergence(fakes)
        term.gradient()

    # the evasion term, per judged image, on detectors fitted to the default generator's first steps
    fake_digits = mg.datasets.from_tanh_range(fakes.reshape(-1, 28, 28))
    train = np.concatenate([images[:64], fake_digits])
    labels = np.r_[np.zeros(64, np.int64), np.ones(64, np.int64)]
    evade = {
        "evade_benford_16_images": DetectorTerm(BenfordDetector(epochs=2, jpeg_augment=None).fit(train, labels),
                                                max_images=16),
        "evade_pixel_16_images": DetectorTerm(PixelDetector(epochs=2).fit(train, labels), max_images=16),
    }
    received = np.full_like(fakes, 1e-3)

    def judged(name: str) -> Any:
        return lambda: evade[name].add_image_gradient(fakes, None, received.copy())

    parts = common.interleaved({"benford_term_alone": term_alone, **{n: judged(n) for n in evade}},
                               repeats=3 if quick else 10, calls=5, pause=0.1)
    return {
        "steps": steps,
        "ratio_benford": steps["benford"]["median_ms"] / steps["plain"]["median_ms"],
        "ratio_benford_pooled": steps["benford_pooled"]["median_ms"] / steps["plain"]["median_ms"],
        "ratio_benford_all_bases": steps["benford_all_bases"]["median_ms"] / steps["plain"]["median_ms"],
        "parts": {name: common.summarize(s) for name, s in parts.items()},
        "machine": common.machine_info(),
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| batch-64 train_step | median ms | q1 | q3 | / plain |", "|---|---|---|---|---|"]
    plain = result["steps"]["plain"]["median_ms"]
    for name, s in result["steps"].items():
        lines.append(f"| {name} | {s['median_ms']:.2f} | {s['q1_ms']:.2f} | {s['q3_ms']:.2f} | "
                     f"{s['median_ms'] / plain:.2f} |")
    lines += ["", "| part | median ms |", "|---|---|"]
    for name, s in result["parts"].items():
        lines.append(f"| {name} | {s['median_ms']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    common.script_main(__doc__, run, table, "5 rounds instead of 30")
