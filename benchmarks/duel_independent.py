"""A second opinion on a duel: does round 1's generator evade a Benford detector the duel never built?

``minigan duel`` scores round 1's digits with the Benford detector it fitted on round 0's
digits, the very detector round 1 was trained against. This script fits a fresh
:class:`~minigan.benford.BenfordDetector` (another seed, another split of the real
digits, the other half of round 0's digits) on round 0's digits against real ones, then
scores it on all of round 1's digits against the real digits it did not see (ROC AUC
and true-positive rate at 1% false positives), and, as a reference, on round 0's
digits it did not see. ``--fit-start`` picks how the detector's features fit the
generalized Benford law (``BenfordDetector(fit_start=...)``): a duel's detectors were
fitted with the default of the minigan that ran it.

Run: ``PYTHONPATH=. python benchmarks/duel_independent.py DUEL_DIR [--seed 7] [--fit-start ones]``;
prints a JSON record (also written to ``DUEL_DIR/independent.json``, or
``independent_<fit start>.json`` with ``--fit-start``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import minigan as mg
from minigan.benford import BenfordDetector, roc_auc, tpr_at_fpr
from minigan.benford.digits import FIT_STARTS
from minigan.serialization import atomic_write_text


def _scores(detector: BenfordDetector, real: np.ndarray, fakes: np.ndarray) -> dict[str, float]:
    images = np.concatenate([real, fakes])
    labels = np.r_[np.zeros(len(real), np.int64), np.ones(len(fakes), np.int64)]
    scores = detector.decision_function(images)
    return {"roc_auc": roc_auc(labels, scores), "tpr_at_1pct_fpr": tpr_at_fpr(labels, scores, 0.01),
            "n_real": int(len(real)), "n_fake": int(len(fakes))}


def run(duel_dir: Path, seed: int, fit_start: str = "grid") -> dict[str, object]:
    real, _ = mg.datasets.load("mnist-5k")
    real = np.asarray(real)
    round_0 = np.load(duel_dir / "round_0" / "fakes.npy", allow_pickle=False)
    round_1 = np.load(duel_dir / "round_1" / "fakes.npy", allow_pickle=False)
    rng = np.random.default_rng([seed, 0x1DE])
    real_order, fake_order = rng.permutation(len(real)), rng.permutation(len(round_0))
    real_train, real_test = real_order[: len(real) // 2], real_order[len(real) // 2:]
    fake_train, fake_test = fake_order[: len(round_0) // 2], fake_order[len(round_0) // 2:]
    start = time.perf_counter()
    detector = BenfordDetector(seed=seed, fit_start=fit_start).fit(
        np.concatenate([real[real_train], round_0[fake_train]]),
        np.r_[np.zeros(real_train.size, np.int64), np.ones(fake_train.size, np.int64)])
    fitted = time.perf_counter() - start
    return {"detector_seed": seed, "fit_start": fit_start, "fit_seconds": fitted,
            "round_0_held_out": _scores(detector, real[real_test], round_0[fake_test]),
            "round_1_all": _scores(detector, real[real_test], round_1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("duel_dir", type=Path)
    parser.add_argument("--seed", type=int, default=7, help="the fresh detector's seed (the duel's is its own)")
    parser.add_argument("--fit-start", choices=FIT_STARTS, default=None,
                        help="how the detector fits the generalized Benford law (default: BenfordDetector's)")
    args = parser.parse_args()
    record = run(args.duel_dir, args.seed, args.fit_start or BenfordDetector().fit_start)
    text = json.dumps(record, indent=2)
    name = "independent.json" if args.fit_start is None else f"independent_{args.fit_start}.json"
    atomic_write_text(args.duel_dir / name, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
