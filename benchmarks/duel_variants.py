"""Which part of the evasion costs quality? Round 1 of a duel, trained several ways from one round 0.

Each variant continues a finished duel's round-0 generator (weights, optimizers and
average) for the duel's ``evade_iterations`` with one recipe, then scores its digits as
``minigan duel`` does before refitting: the classifier FID, and round 0's Benford and
pixel detectors on the held-out halves (ROC AUC, true-positive rate at 1% false
positives). The variants:

* ``plain``: plain bce (``--r1 0``), no extra term: how far plain bce drifts by itself;
* ``r1``: ``minigan train``'s default (lazy R1), no extra term;
* ``detectors``: lazy R1 and round 0's two frozen detectors (``--evade-weight 1``);
* ``benford``: lazy R1 and the Benford term at weight 1, all three parts;
* ``digits`` / ``shares`` / ``unquantized``: the same with only one of the term's parts
  (``BenfordTerm(digit_weight=..., share_weight=..., unquantized_weight=...)``);
* ``benford_0.3``: lazy R1 and the Benford term at weight 0.3;
* ``default``: what ``minigan duel`` trains: lazy R1, the Benford term at 0.3 and the
  detectors at 1.

Run: ``PYTHONPATH=. python benchmarks/duel_variants.py DUEL_DIR [--only NAME ...]`` after
``minigan duel --out DUEL_DIR --rounds 0`` (or more rounds); each variant is a duel
directory ``DUEL_DIR/variants/NAME`` (its round_0 copied) and its record
``DUEL_DIR/variants/NAME.json``; the table is printed and kept in
``DUEL_DIR/variants.json``. A variant already recorded is not trained again.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import minigan.benford.evasion as evasion
from minigan.duel import DETECTORS, Duel
from minigan.serialization import atomic_write_text

PARTS_OFF = {"digit_weight": 0.0, "share_weight": 0.0, "unquantized_weight": 0.0}
#: name -> (duel settings, extra ``minigan train`` settings, BenfordTerm parts)
VARIANTS: dict[str, tuple[dict[str, float], dict[str, Any], dict[str, float]]] = {
    "plain": ({"benford_weight": 0.0, "evade_weight": 0.0}, {"r1": 0.0}, {}),
    "r1": ({"benford_weight": 0.0, "evade_weight": 0.0}, {}, {}),
    "detectors": ({"benford_weight": 0.0, "evade_weight": 1.0}, {}, {}),
    "benford": ({"benford_weight": 1.0, "evade_weight": 0.0}, {}, {}),
    "digits": ({"benford_weight": 1.0, "evade_weight": 0.0}, {}, {**PARTS_OFF, "digit_weight": 1.0}),
    "shares": ({"benford_weight": 1.0, "evade_weight": 0.0}, {}, {**PARTS_OFF, "share_weight": 1.0}),
    "unquantized": ({"benford_weight": 1.0, "evade_weight": 0.0}, {}, {**PARTS_OFF, "unquantized_weight": 1.0}),
    "benford_0.3": ({"benford_weight": 0.3, "evade_weight": 0.0}, {}, {}),
    "default": ({"benford_weight": 0.3, "evade_weight": 1.0}, {}, {}),
}


class _Variant(Duel):
    """A duel whose round-1 generator is trained with extra ``minigan train`` settings."""

    def __init__(self, out: Path, settings: dict[str, Any], extra: dict[str, Any]) -> None:
        super().__init__(out, settings, progress=False)
        self.extra = extra

    def generator_settings(self, k: int) -> dict[str, Any]:
        given = super().generator_settings(k)
        if k > 0:
            if self.settings["evade_weight"] == 0:
                for key in ("evade", "evade_weight", "evade_images"):
                    given.pop(key)
            given.update(self.extra)
        return given


@contextlib.contextmanager
def _with_parts(parts: dict[str, float]) -> Iterator[None]:
    """Make every BenfordTerm built inside take these part weights (``minigan train`` has no
    setting for them)."""
    original = evasion.BenfordTerm.__init__

    def init(term: Any, *args: Any, **kwargs: Any) -> None:
        original(term, *args, **{**kwargs, **parts})

    evasion.BenfordTerm.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        evasion.BenfordTerm.__init__ = original  # type: ignore[method-assign]


def run_variant(duel_dir: Path, name: str) -> dict[str, Any]:
    duel_settings, extra, parts = VARIANTS[name]
    record_path = duel_dir / "variants" / f"{name}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    out = duel_dir / "variants" / name
    if not out.exists():
        state = json.loads((duel_dir / "duel.json").read_text())
        out.mkdir(parents=True)
        shutil.copytree(duel_dir / "round_0", out / "round_0",
                        ignore=shutil.ignore_patterns("samples", "progress.gif"))
        state["settings"].update(duel_settings)
        state["rounds"] = state["rounds"][:1]
        atomic_write_text(out / "duel.json", json.dumps(state, indent=2) + "\n")
    duel = _Variant(out, json.loads((out / "duel.json").read_text())["settings"], extra)
    with _with_parts(parts):
        start = time.perf_counter()
        duel.train(1)
        seconds = time.perf_counter() - start
    fakes = duel.fakes(1)
    record = {"variant": name, "duel_settings": duel_settings, "train_settings": extra, "benford_parts": parts,
              "train_seconds": round(seconds, 1), "fid": duel.quality(1)["fid"],
              "before": {d: duel.score(duel.detector(0, d), fakes) for d in DETECTORS}}
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("duel_dir", type=Path)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="these variants only")
    args = parser.parse_args()
    state = json.loads((args.duel_dir / "duel.json").read_text())
    if not state["rounds"] or "after" not in state["rounds"][0]:
        raise SystemExit(f"{args.duel_dir} has no finished round 0: run minigan duel --out {args.duel_dir} "
                         "--rounds 0 first")
    print(f"round 0: classifier FID {state['rounds'][0]['fid']:.2f}")
    print("| variant | train s | classifier FID | Benford AUC | Benford TPR at 1% FPR | pixel AUC | pixel TPR |")
    print("|---|---|---|---|---|---|---|")
    records = []
    for name in args.only or VARIANTS:
        r = run_variant(args.duel_dir, name)
        records.append(r)
        b, p = r["before"]["benford"], r["before"]["pixel"]
        print(f"| {name} | {r['train_seconds']:.0f} | {r['fid']:.2f} | {b['roc_auc']:.3f} | "
              f"{b['tpr_at_1pct_fpr']:.3f} | {p['roc_auc']:.3f} | {p['tpr_at_1pct_fpr']:.3f} |", flush=True)
    atomic_write_text(args.duel_dir / "variants.json", json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
