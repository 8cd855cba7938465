"""The cat and mouse: generators that learn to evade detectors, and detectors that learn back.

``minigan duel --out DIR [--rounds N]`` plays the game on the bundled digits:

* **round 0**: the reference generator is trained with plain bce (``DIR/round_0``, as
  ``minigan train --r1 0`` would: the article's GAN, whose digits the Benford
  detector tells from real ones at ROC AUC 0.999); its digits, published as 8-bit
  images, and the real digits are split in halves; a
  :class:`~minigan.benford.BenfordDetector` and a :class:`~minigan.benford.PixelDetector`
  learn on the first halves and are scored on the second (ROC AUC, true-positive rate
  at 1% false positives);
* **round k >= 1**: a generator starts from round k - 1's (weights, optimizers and
  average) and trains ``evade_iterations`` more iterations as ``minigan train`` does by
  default (bce with lazy R1: without it, 3,000 more iterations of plain bce alone
  raised the classifier FID from 7.5 to 11.7, which would leave no room to measure
  what evasion costs), with the Benford term and round k - 1's two detectors as frozen
  terms (:mod:`minigan.benford.evasion`);
  its digits are scored by those detectors ("before": did it evade them?) and by the
  built-in classifier FID (what did evasion cost?); then both detectors are refitted
  on its digits ("after": the mouse learns back) and scored again.

``DIR/round_K`` is a run directory (``minigan sample --checkpoint DIR/round_K``);
``DIR/duel.json`` holds the table, rewritten after every step, so Ctrl-C keeps what
is done and running the command again continues (a training run resumes from its
checkpoint); ``DIR/duel.png`` plots the AUCs before and after each refit and the
FID per round.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._validation import check_int, check_real
from .serialization import atomic_write_text

#: 2: the evading rounds train with lazy R1 (format 1: plain bce in every round).
FORMAT_VERSION = 2
DETECTORS = ("benford", "pixel")
#: The game's defaults (``minigan duel --help``); the round-0 generator is ``minigan train --r1 0``'s,
#: the later ones ``minigan train``'s defaults plus the evasion terms.
DUEL_DEFAULTS: dict[str, Any] = {
    "iterations": 10000,
    "evade_iterations": 3000,
    "samples": 5000,
    "benford_weight": 0.3,
    "evade_weight": 1.0,
    "evade_images": 16,
    "seed": 0,
}


class DuelInterrupted(Exception):
    """A training run of the duel was stopped by a signal (its checkpoint is saved)."""


def _check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    s = {**DUEL_DEFAULTS, **settings}
    unknown = sorted(set(s) - set(DUEL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown duel settings {unknown}; known: {sorted(DUEL_DEFAULTS)}")
    for name in ("iterations", "evade_iterations"):
        s[name] = check_int(s[name], name, minimum=1)
    s["samples"] = check_int(s["samples"], "samples", minimum=8)
    s["evade_images"] = check_int(s["evade_images"], "evade_images", minimum=1)
    s["seed"] = check_int(s["seed"], "seed", minimum=0)
    for name in ("benford_weight", "evade_weight"):
        s[name] = check_real(s[name], name, minimum=0.0)
    return s


class Duel:
    """The state of a duel in a directory (see the module docstring).

    Parameters
    ----------
    out : path
        The duel's directory (created).
    settings : dict
        Any of :data:`DUEL_DEFAULTS`; a directory that holds a duel must be continued
        with its own settings (an error says what differs).
    progress : bool
        A progress bar over the rounds.
    log : callable
        Where step messages go (default: print, through the bar).
    """

    def __init__(self, out: str | Path, settings: dict[str, Any] | None = None, *, progress: bool = True,
                 log: Callable[[str], Any] | None = None) -> None:
        self.out = Path(out)
        self.settings = _check_settings(dict(settings or {}))
        self.progress = bool(progress)
        self._log = log
        self.state = self._load_state()
        self._real: np.ndarray | None = None
        self._bar: Any = None

    # -- the record ------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.out / "duel.json"

    def _load_state(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"format_version": FORMAT_VERSION, "settings": self.settings, "rounds": []}
        state = json.loads(self.path.read_text())
        if state.get("format_version") == 1:
            raise ValueError(f"{self.path} is a duel of an earlier minigan, whose evading rounds trained with plain "
                             "bce; this minigan trains them with lazy R1 and cannot continue it: choose another "
                             "--out (its round_0 can be copied there to skip round 0's training)")
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path} is not a duel record this minigan reads "
                             f"(format {state.get('format_version')!r})")
        recorded = state.get("settings", {})
        differences = [f"{key}: the duel has {recorded.get(key)!r}, now {value!r}"
                       for key, value in self.settings.items() if recorded.get(key) != value]
        if differences:
            raise ValueError(f"{self.out} holds a duel with other settings ({'; '.join(differences)}); continue it "
                             "with its own settings (only --rounds may change) or choose another --out")
        return state

    def _save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.state, indent=2) + "\n")

    def _row(self, k: int) -> dict[str, Any]:
        rounds = self.state["rounds"]
        while len(rounds) <= k:
            rounds.append({"round": len(rounds), "run": f"round_{len(rounds)}"})
        return rounds[k]

    def say(self, message: str) -> None:
        if self._log is not None:
            self._log(message)
        elif self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    # -- data ------------------------------------------------------------------------------
    def real(self) -> np.ndarray:
        if self._real is None:
            from .datasets import load

            self._real = np.asarray(load("mnist-5k")[0])
        return self._real

    def halves(self, n: int, which: str) -> tuple[np.ndarray, np.ndarray]:
        """A seeded split of ``range(n)`` into a training and a held-out half."""
        stream = {"real": 1, "fake": 2}[which]
        order = np.random.default_rng([self.settings["seed"], 0xD0E1, stream]).permutation(n)
        return np.sort(order[: n // 2]), np.sort(order[n // 2:])

    def run_dir(self, k: int) -> Path:
        return self.out / f"round_{k}"

    # -- the game ------------------------------------------------------------------------
    def play(self, rounds: int) -> dict[str, Any]:
        """Play (or continue) rounds ``0..rounds``; returns the record."""
        rounds = check_int(rounds, "rounds", minimum=0)
        self.out.mkdir(parents=True, exist_ok=True)
        self._save()
        done = sum(1 for r in self.state["rounds"][: rounds + 1] if "after" in r)
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=rounds + 1, initial=done, unit="round", dynamic_ncols=True)
        try:
            for k in range(rounds + 1):
                row = self._row(k)
                if "after" in row:
                    continue
                self._play_round(k, row)
                if self._bar is not None:
                    self._bar.update(1)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        self.plot()
        return self.state

    def _step(self, k: int, what: str) -> None:
        if self._bar is not None:
            self._bar.set_description(f"round {k}: {what}")
        self.say(f"round {k}: {what}")

    def _play_round(self, k: int, row: dict[str, Any]) -> None:
        seconds = row.setdefault("seconds", {})
        if "iterations" not in row:
            self._step(k, "training the generator" + ("" if k == 0 else " to evade round %d's detectors" % (k - 1)))
            start = time.perf_counter()
            row["iterations"] = self.train(k)
            seconds["train"] = seconds.get("train", 0.0) + time.perf_counter() - start
            self._save()
        fakes = self.fakes(k)
        if "fid" not in row:
            start = time.perf_counter()
            row.update(self.quality(k))
            seconds["quality"] = time.perf_counter() - start
            self._save()
            self.say(f"round {k}: classifier FID {row['fid']:.2f}")
        if k > 0 and "before" not in row:
            self._step(k, f"scoring with round {k - 1}'s detectors")
            start = time.perf_counter()
            row["before"] = {name: self.score(self.detector(k - 1, name), fakes) for name in DETECTORS}
            seconds["score_before"] = time.perf_counter() - start
            self._save()
            self.say(f"round {k}: before refit " + self._summary(row["before"]))
        self._step(k, "fitting the detectors on its digits")
        start = time.perf_counter()
        row["after"] = {name: self.fit_detector(k, name, fakes) for name in DETECTORS}
        seconds["refit"] = time.perf_counter() - start
        self._save()
        self.say(f"round {k}: {'after refit' if k else 'detectors'} " + self._summary(row["after"]))

    @staticmethod
    def _summary(scores: dict[str, dict[str, float]]) -> str:
        return ", ".join(f"{name} AUC {s['roc_auc']:.3f} (TPR at 1% FPR {s['tpr_at_1pct_fpr']:.3f})"
                         for name, s in scores.items())

    def generator_settings(self, k: int) -> dict[str, Any]:
        """The ``minigan train`` settings of round ``k``'s generator."""
        s = self.settings
        given: dict[str, Any] = {"seed": s["seed"]}
        if k == 0:
            given["r1"] = 0.0
        else:
            paths = [str(self.detector_path(k - 1, name).resolve()) for name in DETECTORS]
            given.update(benford_weight=s["benford_weight"], evade=",".join(paths), evade_weight=s["evade_weight"],
                         evade_images=s["evade_images"])
        return given

    def train(self, k: int) -> int:
        """Train (or resume) round ``k``'s generator; returns its iterations."""
        from .checkpoint import checkpoint_path, load_checkpoint
        from .models import build_gan
        from .settings import resolve

        s = self.settings
        total = s["iterations"] + k * s["evade_iterations"]
        settings = resolve(self.generator_settings(k))
        settings["iterations"] = total
        run = self.run_dir(k)
        gan = build_gan(settings)
        resume = checkpoint_path(run).exists()
        extra: dict[str, Any] = {"round": k}
        if k > 0:
            extra["starts_from"] = str(self.run_dir(k - 1).resolve())
            if not resume:
                gan.load_state(*load_checkpoint(self.run_dir(k - 1)), source=str(self.run_dir(k - 1)))
        result = gan.fit(self.real(), iterations=total, out_dir=run, resume=resume, progress=self.progress,
                         config={"settings": settings, "duel": extra})
        if result.interrupted:
            self.signal = result.interrupted
            raise DuelInterrupted(f"stopped by {result.interrupted} while training {run} (checkpoint saved at "
                                  f"iteration {result.iteration}); run the same command again to continue")
        return int(result.iteration)

    def fakes(self, k: int) -> np.ndarray:
        """Round ``k``'s digits as published: ``samples`` 8-bit images (kept in ``fakes.npy``)."""
        from .datasets import from_tanh_range
        from .models import load_gan
        from .serialization import atomic_file

        path = self.run_dir(k) / "fakes.npy"
        if path.exists():
            return np.load(path, allow_pickle=False)
        gan = load_gan(self.run_dir(k), models_only=True)
        images = from_tanh_range(gan.sample(self.settings["samples"], seed=self.settings["seed"] + 1000 + k))
        with atomic_file(path) as handle:
            np.save(handle, images, allow_pickle=False)
        return images

    def quality(self, k: int) -> dict[str, Any]:
        """The built-in quality numbers of round ``k``'s digits (as published)."""
        from .metrics import evaluate_samples

        result = evaluate_samples(self.fakes(k))
        return {"fid": result["classifier_fid"], "classes_covered": result["classes_covered"],
                "fid_real_vs_real": result["fid_real_vs_real"]}

    def detector_path(self, k: int, name: str) -> Path:
        return self.run_dir(k) / f"{name}_detector.npz"

    def detector(self, k: int, name: str) -> Any:
        from .benford import load_detector

        return load_detector(self.detector_path(k, name))

    def _test_set(self, fakes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        real = self.real()
        real_test = self.halves(len(real), "real")[1]
        fake_test = self.halves(len(fakes), "fake")[1]
        images = np.concatenate([real[real_test], fakes[fake_test]])
        labels = np.r_[np.zeros(real_test.size, np.int64), np.ones(fake_test.size, np.int64)]
        return images, labels

    def score(self, detector: Any, fakes: np.ndarray) -> dict[str, float]:
        """ROC AUC and TPR at 1% FPR of ``detector`` on the held-out halves."""
        from .benford import roc_auc, tpr_at_fpr

        images, labels = self._test_set(fakes)
        scores = detector.decision_function(images)
        return {"roc_auc": roc_auc(labels, scores), "tpr_at_1pct_fpr": tpr_at_fpr(labels, scores, 0.01)}

    def fit_detector(self, k: int, name: str, fakes: np.ndarray) -> dict[str, float]:
        """Fit detector ``name`` on the training halves of the real and round ``k``'s digits,
        save it beside the run and score it on the held-out halves."""
        from .benford import BenfordDetector, PixelDetector

        path = self.detector_path(k, name)
        if path.exists():
            detector = self.detector(k, name)
        else:
            real = self.real()
            real_train = self.halves(len(real), "real")[0]
            fake_train = self.halves(len(fakes), "fake")[0]
            images = np.concatenate([real[real_train], fakes[fake_train]])
            labels = np.r_[np.zeros(real_train.size, np.int64), np.ones(fake_train.size, np.int64)]
            make = BenfordDetector if name == "benford" else PixelDetector
            detector = make(seed=self.settings["seed"]).fit(images, labels)
            detector.save(path)
        return self.score(detector, fakes)

    # -- the table and the plot --------------------------------------------------------------
    def table(self) -> str:
        """The record as a Markdown table."""
        lines = ["| round | iterations | classifier FID | Benford AUC before / after refit | Benford TPR at 1% FPR "
                 "before / after | pixel AUC before / after | pixel TPR at 1% FPR before / after |",
                 "|---|---|---|---|---|---|---|"]
        for row in self.state["rounds"]:
            if "after" not in row:
                continue
            cells = [str(row["round"]), str(row.get("iterations", "")), f"{row['fid']:.2f}"]
            for name in DETECTORS:
                for metric in ("roc_auc", "tpr_at_1pct_fpr"):
                    before = row.get("before", {}).get(name, {}).get(metric)
                    after = row["after"][name][metric]
                    cells.append(f"{'-' if before is None else f'{before:.3f}'} / {after:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot(self) -> Path | None:
        """Write ``duel.png`` (:func:`duel_figure`) when a round is complete."""
        rows = [r for r in self.state["rounds"] if "after" in r]
        if not rows:
            return None
        from .benford.plots import _save

        return _save(duel_figure(rows), self.out / "duel.png")


def duel_figure(rows: list[dict[str, Any]]) -> Any:
    """The duel's picture: ROC AUC per round of each detector refitted on the round's digits
    (solid) and of the previous round's detector (dashed), and the classifier FID per round."""
    from .benford.plots import _new_figure

    figure = _new_figure((10.0, 4.0))
    auc_axes, fid_axes = figure.subplots(1, 2)
    rounds = [r["round"] for r in rows]
    colors = {"benford": "tab:blue", "pixel": "tab:orange"}
    for name in DETECTORS:
        after = [r["after"][name]["roc_auc"] for r in rows]
        auc_axes.plot(rounds, after, "o-", color=colors[name], label=f"{name}, refitted on the round's digits")
        before = [(r["round"], r["before"][name]["roc_auc"]) for r in rows if "before" in r]
        if before:
            auc_axes.plot([b[0] for b in before], [b[1] for b in before], "s--", color=colors[name],
                          alpha=0.7, label=f"{name}, previous round's detector")
    auc_axes.axhline(0.5, color="grey", lw=0.8, ls=":")
    auc_axes.set_xlabel("round")
    auc_axes.set_ylabel("ROC AUC (real vs generated, held-out halves)")
    auc_axes.set_ylim(0.0, 1.02)
    auc_axes.set_xticks(rounds)
    auc_axes.legend(fontsize=8, loc="lower left")
    auc_axes.set_title("Detectors before and after they learn back")
    fid_axes.plot(rounds, [r["fid"] for r in rows], "o-", color="tab:green", label="classifier FID")
    fid_axes.axhline(1.3 * rows[0]["fid"], color="tab:red", lw=0.8, ls="--", label="1.3 x round 0")
    fid_axes.set_xlabel("round")
    fid_axes.set_ylabel("classifier FID (lower is better)")
    fid_axes.set_xticks(rounds)
    fid_axes.set_ylim(bottom=0.0)
    fid_axes.legend(fontsize=8)
    fid_axes.set_title("What evasion costs in quality")
    return figure


def run_duel(out: str | Path, rounds: int = 2, *, progress: bool = True, **settings: Any) -> dict[str, Any]:
    """Play ``rounds`` rounds after round 0 in ``out`` (continuing what is there); returns the record."""
    return Duel(out, settings, progress=progress).play(rounds)


# -- the command line ------------------------------------------------------------------------------
def add_duel_command(sub: Any) -> None:
    """Register ``minigan duel``."""
    p = sub.add_parser(
        "duel", help="generators that evade the detectors, detectors that learn back, round by round",
        description="Round 0 trains the reference generator with plain bce (as minigan train --r1 0) and fits "
                    "the Benford and pixel detectors on its digits; "
                    "each later round trains a generator (from the previous one, with minigan train's default "
                    "lazy R1) to evade the previous round's "
                    "detectors, scores it with them and with the classifier FID, then refits the detectors on it. "
                    "Writes DIR/round_K (run directories), DIR/duel.json and DIR/duel.png. Ctrl-C keeps what is "
                    "done; the same command continues.")
    p.add_argument("--out", required=True, metavar="DIR", help="the duel's directory")
    p.add_argument("--rounds", type=int, default=2, help="rounds after round 0 (default 2)")
    d = DUEL_DEFAULTS
    p.add_argument("--iterations", type=int, default=d["iterations"],
                   help=f"training iterations of round 0's generator (default {d['iterations']})")
    p.add_argument("--evade-iterations", type=int, default=d["evade_iterations"],
                   help=f"iterations each later round trains on (default {d['evade_iterations']})")
    p.add_argument("--samples", type=int, default=d["samples"],
                   help=f"digits generated per round, halved into training and held-out sets (default {d['samples']})")
    p.add_argument("--benford-weight", type=float, default=d["benford_weight"],
                   help=f"weight of the Benford term in the evading rounds (default {d['benford_weight']})")
    p.add_argument("--evade-weight", type=float, default=d["evade_weight"],
                   help=f"weight of each detector's term in the evading rounds (default {d['evade_weight']})")
    p.add_argument("--evade-images", type=int, default=d["evade_images"],
                   help=f"fakes per batch the detectors judge (default {d['evade_images']})")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"seed of everything (default {d['seed']})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_duel)


def cmd_duel(args: Any) -> int:
    settings = {"iterations": args.iterations, "evade_iterations": args.evade_iterations, "samples": args.samples,
                "benford_weight": args.benford_weight, "evade_weight": args.evade_weight,
                "evade_images": args.evade_images, "seed": args.seed}
    duel = Duel(args.out, settings, progress=not args.no_progress)
    try:
        duel.play(args.rounds)
    except DuelInterrupted as exc:
        duel.plot()
        print(f"\n{exc}")
        return 143 if getattr(duel, "signal", None) == "SIGTERM" else 130
    print(duel.table())
    print(f"table in {duel.path}, plot in {duel.out / 'duel.png'}")
    return 0
