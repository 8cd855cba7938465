"""Do gradient penalties make better digits? bce against bce + R1, wgan against wgan-gp at equal wall-clock time.

Usage::

    PYTHONPATH=. python benchmarks/quality_penalties.py [--out runs/quality] [--jobs 2] [--seeds 0,1,2]
                                                        [--runs NAME,...] [--iterations 10000]

Every run is the reference GAN on the bundled digits at batch 64, trained and scored
with the command line, one thread each::

    minigan train --seed S --iterations N --out DIR --no-progress [options of the run]
    minigan evaluate --checkpoint DIR --json DIR/evaluate.json    # 5,000 samples, seed 1

The runs (``--runs`` picks some; names below):

* ``bce``: the default objective, ``--iterations`` iterations;
* ``bce+r1=G``: bce with lazy R1 (``--r1 G --r1-every 16``) for G in ``--gammas``;
* ``bce-equal-time``: bce for as long as the R1 runs take (lazy R1 costs a little per step);
* ``wgan-gp``: ``--loss wgan-gp`` (five critic steps, each with its penalty);
* ``wgan-equal-time``: ``--loss wgan`` (weight clipping) for as long as wgan-gp takes;
* ``wgan``: ``--loss wgan`` for ``--iterations`` iterations, for reference;
* ``bce-wgan-gp-time``: bce for as long as wgan-gp takes (is the penalty worth its cost?).

Equal wall-clock time is set by iterations: first, in one process with one thread, a
``train_step`` of each setting is timed side by side (interleaved rounds, the median
of the per-round ratios), and the slower setting's time per iteration over the faster
one's scales the faster one's iterations. Timings on a shared machine move with the
load; the ratio, measured interleaved, moves much less than the times. Results are
written to ``OUT/results.json`` and printed as a table (median over the seeds); runs
already scored in ``OUT`` are reused, so an interrupted study continues.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

LAZY_EVERY = 16
TIMED_SETTINGS = {
    "bce": {"r1": 0.0},  # plain bce: minigan train's default adds lazy R1
    "bce+r1": {"r1": 1.0, "r1_every": LAZY_EVERY},
    "wgan": {"loss": "wgan"},
    "wgan-gp": {"loss": "wgan-gp"},
}


def _options(settings: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in settings.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


# ----------------------------------------------------------------------------- calibration
def calibrate_worker(repeats: int) -> dict[str, Any]:
    """Seconds per train_step of each TIMED_SETTINGS entry, interleaved (runs in a 1-thread subprocess)."""
    import numpy as np

    import minigan as mg
    from minigan.models import build_gan

    common.limit_threads(1)
    images, _ = mg.datasets.load("mnist-5k")
    data = mg.datasets.to_tanh_range(images).reshape(len(images), -1)
    batches = [data[np.random.default_rng(i).choice(len(data), 64, replace=False)] for i in range(8)]
    steppers = {}
    for name, settings in TIMED_SETTINGS.items():
        gan = build_gan({**settings, "seed": 0})
        state = {"i": 0}

        def step(gan: Any = gan, state: dict = state) -> None:
            state["i"] += 1
            gan.train_step(batches[state["i"] % len(batches)])

        steppers[name] = step
    calls = {name: 8 if name == "wgan-gp" else 32 for name in steppers}  # multiples of the lazy period / 2
    samples = common.interleaved(steppers, repeats=repeats, calls=calls, pause=0.0, warmup_calls=32)
    out: dict[str, Any] = {name: common.median(s) for name, s in samples.items()}
    out["wgan-gp/wgan"] = common.median([a / b for a, b in zip(samples["wgan-gp"], samples["wgan"])])
    out["bce+r1/bce"] = common.median([a / b for a, b in zip(samples["bce+r1"], samples["bce"])])
    out["wgan-gp/bce"] = common.median([a / b for a, b in zip(samples["wgan-gp"], samples["bce"])])
    out["load"] = os.getloadavg()[0]
    return out


def calibrate(out_dir: Path, repeats: int) -> dict[str, Any]:
    path = out_dir / "calibration.json"
    if path.exists():
        return json.loads(path.read_text())
    print(f"timing a train_step of each setting, interleaved, {repeats} rounds ...", flush=True)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--calibrate-worker",
                           "--repeats", str(repeats)], env=common.thread_env(1), capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


# ----------------------------------------------------------------------------- runs
def plan(args: argparse.Namespace, timing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    n = args.iterations
    runs: dict[str, dict[str, Any]] = {"bce": {"settings": {"r1": 0.0}, "iterations": n}}
    for gamma in args.gammas:
        runs[f"bce+r1={gamma:g}"] = {"settings": {"r1": gamma, "r1_every": LAZY_EVERY}, "iterations": n}
    runs["bce-equal-time"] = {"settings": {"r1": 0.0}, "iterations": round(n * timing["bce+r1/bce"])}
    runs["wgan-gp"] = {"settings": {"loss": "wgan-gp"}, "iterations": n}
    runs["wgan-equal-time"] = {"settings": {"loss": "wgan"}, "iterations": round(n * timing["wgan-gp/wgan"])}
    runs["wgan"] = {"settings": {"loss": "wgan"}, "iterations": n}
    # (a calibration written before this ratio was recorded: the ratio of the two medians)
    slower = timing.get("wgan-gp/bce", timing["wgan-gp"] / timing["bce"])
    runs["bce-wgan-gp-time"] = {"settings": {}, "iterations": round(n * slower)}
    if args.runs:
        unknown = sorted(set(args.runs) - set(runs))
        if unknown:
            raise SystemExit(f"unknown runs {unknown}; known: {sorted(runs)}")
        runs = {k: v for k, v in runs.items() if k in args.runs}
    return runs


def train_and_score(name: str, spec: dict[str, Any], seed: int, out_dir: Path) -> dict[str, Any]:
    run = out_dir / f"{name}-seed{seed}"
    scored = run / "evaluate.json"
    if scored.exists() and (run / "done.json").exists():
        return {**json.loads((run / "done.json").read_text()), **json.loads(scored.read_text())}
    env = common.thread_env(1)
    command = [sys.executable, "-m", "minigan", "train", "--seed", str(seed), "--iterations", str(spec["iterations"]),
               "--out", str(run), "--no-progress", "--sample-every", "0", "--checkpoint-every", "0",
               *_options(spec["settings"])]
    resume = (run / "checkpoint.npz").exists()
    start = time.perf_counter()
    subprocess.run(command + (["--resume"] if resume else []), env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    subprocess.run([sys.executable, "-m", "minigan", "evaluate", "--checkpoint", str(run), "--json", str(scored)],
                   env=env, check=True, capture_output=True, text=True)
    done = {"name": name, "seed": seed, "iterations": spec["iterations"], "seconds": seconds,
            "command": " ".join(["minigan", *command[3:]]), "load_after": os.getloadavg()[0]}
    (run / "done.json").write_text(json.dumps(done, indent=1) + "\n")
    print(f"{name} seed {seed}: FID {json.loads(scored.read_text())['classifier_fid']:.1f} "
          f"({spec['iterations']} iterations, {seconds:.0f} s)", flush=True)
    return {**done, **json.loads(scored.read_text())}


def table(results: list[dict[str, Any]], runs: dict[str, dict[str, Any]], seeds: list[int]) -> str:
    lines = ["| run | options | iterations | classifier FID per seed | median FID | classes covered (min) | "
             "mean confidence (median) |", "|---|---|---|---|---|---|---|"]
    for name, spec in runs.items():
        rows = sorted((r for r in results if r["name"] == name), key=lambda r: r["seed"])
        if not rows:
            continue
        fids = [r["classifier_fid"] for r in rows]
        lines.append(
            f"| {name} | `{' '.join(_options(spec['settings'])) or '(defaults)'}` | {spec['iterations']:,} | "
            f"{' / '.join(f'{f:.1f}' for f in fids)} | **{statistics.median(fids):.1f}** | "
            f"{' / '.join(str(r['classes_covered']) for r in rows)} ({min(r['classes_covered'] for r in rows)}) | "
            f"{statistics.median(r['mean_confidence'] for r in rows):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quality", help="folder for the runs and results.json")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at the same time, one thread each")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--gammas", default="0.1,1,10", help="R1 weights of the bce+r1 runs")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--runs", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds of the timing")
    parser.add_argument("--calibrate-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calibrate_worker:
        print(json.dumps(calibrate_worker(args.repeats)))
        return 0
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.gammas = [float(g) for g in args.gammas.split(",") if g]
    args.runs = [r for r in args.runs.split(",") if r]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    timing = calibrate(out_dir, args.repeats)
    print("seconds per iteration (1 thread): " + ", ".join(f"{k} {timing[k] * 1e3:.1f} ms" for k in TIMED_SETTINGS)
          + f"; wgan-gp / wgan {timing['wgan-gp/wgan']:.2f}, bce+r1 / bce {timing['bce+r1/bce']:.3f}", flush=True)
    runs = plan(args, timing)
    # the longest runs first, so that the two workers finish together
    jobs = sorted(((name, seed) for name in runs for seed in args.seeds),
                  key=lambda job: -runs[job[0]]["iterations"] * (5 if "gp" in job[0] else 1))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: train_and_score(job[0], runs[job[0]], job[1], out_dir), jobs))
    summary = {"timing": timing, "runs": runs, "results": results, "machine": common.machine_info()}
    (out_dir / "results.json").write_text(common.dumps(summary))
    print(table(results, runs, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
