"""The ``minigan`` command: a thin layer of argparse over the library.

Every command parses its options, calls one library function, and prints. Heavy
imports (Numba, matplotlib) happen inside the commands, so ``minigan --help``
starts fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__

TRAIN_OPTIONS = {
    # option: (type, default, help)
    "data": (str, "mnist-5k", "mnist-5k (bundled, default), mnist, fashion-mnist, or a folder / .npy / .npz of images"),
    "iterations": (int, None, "number of training iterations (default 10000 unless --epochs)"),
    "epochs": (int, None, "train for this many passes over the data instead"),
    "batch_size": (int, 64, "images per batch (default 64)"),
    "loss": (str, "bce", "bce (default), lsgan, hinge or wgan"),
    "latent_dim": (int, 100, "size of the noise vector (default 100)"),
    "lr": (float, 2e-4, "Adam learning rate of both networks (default 2e-4)"),
    "beta1": (float, 0.5, "Adam beta1 (default 0.5)"),
    "label_smoothing": (float, 0.0, "one-sided label smoothing of real targets, e.g. 0.1 (default 0)"),
    "d_steps": (int, 1, "discriminator updates per generator update (default 1)"),
    "ema_decay": (float, 0.999, "samples come from a moving average of G's weights with this decay "
                                "(default 0.999; 0 turns it off)"),
    "seed": (int, 0, "random seed: same seed, same machine -> identical weights (default 0)"),
    "sample_every": (int, 500, "write a sample grid every N iterations (default 500)"),
    "checkpoint_every": (int, 1000, "write a checkpoint every N iterations (default 1000)"),
    "eval_every": (int, 0, "log classifier FID / class coverage every N iterations (default 0: off)"),
}
DEFAULT_ITERATIONS = 10000


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train the reference GAN (default: on the bundled MNIST digits)",
        description="Train a GAN and write a run directory: config.json, metrics.csv, samples/, losses.png, "
                    "progress.gif, checkpoint.npz. Ctrl-C saves a checkpoint; --resume continues it.",
    )
    for name, (kind, default, text) in TRAIN_OPTIONS.items():
        # Defaults are applied later so that --config and --resume can tell what was given.
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    p.add_argument("--out", default=None, help="run directory (default: runs/<date-time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--config", default=None, help="TOML file with any of the options above (flags override it)")
    p.add_argument("--architecture", choices=("reference", "mlp"), default=None, help="reference (default) or mlp")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise SystemExit("error: --config needs Python >= 3.11 or the 'tomli' package") from None
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SystemExit(f"error: --config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"error: --config {path} is not valid TOML: {exc}") from None
    data = {key.replace("-", "_"): value for key, value in data.items()}
    known = set(TRAIN_OPTIONS) | {"out", "architecture"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"error: --config {path} has unknown keys {unknown}; known: {sorted(known)}")
    return data


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import load
    from .models import build_gan

    given = {k: getattr(args, k) for k in list(TRAIN_OPTIONS) + ["architecture"] if getattr(args, k) is not None}
    settings: dict[str, Any] = {k: v[1] for k, v in TRAIN_OPTIONS.items()}
    settings["architecture"] = "reference"
    if args.config:
        file_settings = _read_toml(args.config)
        if args.out is None and "out" in file_settings:
            args.out = file_settings["out"]
        file_settings.pop("out", None)
        settings.update(file_settings)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if args.resume:
        config_file = out / "config.json"
        if not config_file.exists():
            print(f"error: --resume: no run in {out} (no config.json); start it without --resume", file=sys.stderr)
            return 2
        recorded = json.loads(config_file.read_text())
        settings.update({k: recorded[k] for k in settings if k in recorded})
        length_given = {k: given[k] for k in ("iterations", "epochs") if k in given}
        other = sorted(set(given) - set(length_given))
        if other:
            print(f"note: --resume keeps the run's recorded settings; ignoring {other}", file=sys.stderr)
        if length_given:
            settings["iterations"], settings["epochs"] = length_given.get("iterations"), length_given.get("epochs")
        else:
            settings["epochs"] = None
    else:
        settings.update(given)
    if settings.get("iterations") is None and settings.get("epochs") is None:
        settings["iterations"] = DEFAULT_ITERATIONS

    images, _ = load(settings["data"])
    settings["image_shape"] = list(images.shape[1:])
    gan = build_gan(settings)
    print(f"training on {settings['data']}: {len(images)} images of {tuple(images.shape[1:])}; run directory {out}")
    result = gan.fit(
        images, iterations=settings["iterations"], epochs=settings["epochs"], batch_size=settings["batch_size"],
        out_dir=out, sample_every=settings["sample_every"], checkpoint_every=settings["checkpoint_every"],
        eval_every=settings["eval_every"], resume=args.resume, progress=not args.no_progress, config=settings,
    )
    rate = (len(result.history["iteration"]) / result.seconds) if result.seconds > 0 else float("nan")
    print(f"iteration {result.iteration}: {rate:.1f} it/s over {result.seconds:.1f} s; "
          f"samples in {out / 'samples'}, plots {out / 'losses.png'}, {out / 'progress.gif'}")
    if result.interrupted:
        return 130 if result.interrupted == "SIGINT" else 143
    return 0


def _add_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate images from a trained run",
                       description="Write generated images as a PNG grid or a .npy array (float32 in [-1, 1]).")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint.npz")
    p.add_argument("--n", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: fresh)")
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (n, height, width) float32")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the last generator weights, not their moving average (the default when the run kept one)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .checkpoint import load_gan

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        print(f"error: --out must end in .png or .npy, got {out.name}", file=sys.stderr)
        return 2
    gan = load_gan(args.checkpoint, models_only=True)
    images = gan.sample(args.n, seed=args.seed, ema=args.ema).astype(np.float32)
    if out.suffix.lower() == ".npy":
        from .serialization import atomic_file

        with atomic_file(out) as handle:
            np.save(handle, images, allow_pickle=False)
    else:
        from .plots import save_sample_grid

        save_sample_grid(images, out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="quality numbers of a trained run (classifier FID, classes covered)",
                       description="Sample the generator and score the digits with the built-in classifier: "
                                   "classifier FID against the bundled real digits, classes covered, confidence.")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint.npz")
    p.add_argument("--n", type=int, default=5000, help="samples to score (default 5000)")
    p.add_argument("--seed", type=int, default=1, help="noise seed (default 1)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the last generator weights, not their moving average (the default when the run kept one)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_gan
    from .metrics import evaluate_samples
    from .serialization import atomic_write_text

    gan = load_gan(args.checkpoint, models_only=True)
    if gan.image_shape != (28, 28):
        print(f"error: evaluate scores 28x28 digits; this run makes {gan.image_shape} images", file=sys.stderr)
        return 2
    result = evaluate_samples(gan.sample(args.n, seed=args.seed, ema=args.ema))
    weights = "the moving average of G's weights" if args.ema and gan.generator_ema is not None else "G's last weights"
    print(f"run: {args.checkpoint} (iteration {gan.iteration}), {args.n} samples, seed {args.seed}, {weights}")
    rows = [
        ("classifier FID", f"{result['classifier_fid']:.2f}",
         f"(real vs real {result['fid_real_vs_real']:.2f}, noise {result['fid_noise']:.1f})"),
        ("classes covered", f"{result['classes_covered']} / 10", f"(a class counts from {result['min_class_share']:.0%} of samples)"),
        ("mean confidence", f"{result['mean_confidence']:.3f}", ""),
        ("class histogram", " ".join(str(c) for c in result["class_histogram"]), "(digits 0..9)"),
    ]
    for name, value, note in rows:
        print(f"  {name:<16} {value:<24} {note}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="what a run was and how far it got")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import checkpoint_path, load_checkpoint
    from .plots import read_metrics_csv

    run = Path(args.run)
    if not run.is_dir():
        print(f"error: {run} is not a run directory", file=sys.stderr)
        return 2
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    print(f"run directory: {run}")
    for key in ("data", "architecture", "loss", "iterations", "batch_size", "latent_dim", "lr", "ema_decay", "seed",
                "dtype"):
        if key in config:
            print(f"  {key:<16} {config[key]}")
    if "versions" in config:
        print("  versions         " + ", ".join(f"{k} {v}" for k, v in sorted(config["versions"].items())))
    path = checkpoint_path(run)
    if path.exists():
        _, meta = load_checkpoint(path)
        total = meta.get("total_iterations", config.get("iterations"))
        print(f"  checkpoint       iteration {meta['iteration']} of {total} "
              f"({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(path.stat().st_mtime))})")
    else:
        print("  checkpoint       none yet")
    if (run / "metrics.csv").exists():
        metrics = read_metrics_csv(run / "metrics.csv")
        if len(metrics["iteration"]):
            last = {k: v[-1] for k, v in metrics.items()}
            rate = last["iteration"] / last["seconds"] if last.get("seconds") else float("nan")
            print(f"  last logged      iteration {int(last['iteration'])}: d_loss {last['d_loss']:.3f}, "
                  f"g_loss {last['g_loss']:.3f}, D(x) {last['d_real']:.3f}, D(G(z)) {last['d_fake']:.3f}")
            print(f"  speed            {rate:.1f} it/s (this session's time only if resumed)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``minigan`` command."""
    from .benford.cli import add_benford_command, add_detect_command

    parser = argparse.ArgumentParser(
        prog="minigan",
        description="minigan: a from-scratch GAN toolkit (Numba-compiled dense layers, an explicit adversarial "
                    "loop) and a Benford's-law detector of GAN-generated images.",
    )
    parser.add_argument("--version", action="version", version=f"minigan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_evaluate(sub)
    _add_info(sub)
    add_benford_command(sub)
    add_detect_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``minigan`` and ``python -m minigan``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Outside the training loop (which saves a checkpoint itself) there is nothing to save.
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        # The library's errors already say what to do; a traceback would only hide that
        # (set MINIGAN_DEBUG=1 to see it).
        if os.environ.get("MINIGAN_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
