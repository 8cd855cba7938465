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

def _add_import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this module first (one that registers your own layers with "
                             "minigan.register_layer); may be repeated")


def _import_modules(names: Sequence[str]) -> None:
    import importlib

    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not put the working folder on the path
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any failure of the user's module: say which and why
            raise ValueError(f"--import {name}: cannot import it ({type(exc).__name__}: {exc})") from None


def _cli_type(kind: str) -> Any:
    return {"int": int, "float": float}.get(kind, str)


def _add_train(sub: Any) -> None:
    from .settings import SETTINGS, help_text

    p = sub.add_parser(
        "train", help="train the reference GAN (default: on the bundled MNIST digits)",
        description="Train a GAN and write a run directory: config.json, metrics.csv, samples/, losses.png, "
                    "progress.gif, checkpoint.npz. Ctrl-C saves a checkpoint; --resume continues it. Every option "
                    "can also be set in a TOML file (--config) under the same name.",
    )
    titles = {"model": "networks and objective", "training": "training", "schedule": "length and outputs"}
    groups = {group: p.add_argument_group(title) for group, title in titles.items()}
    for setting in SETTINGS:
        # Defaults are applied later (minigan.settings.resolve) so that --config and --resume can tell what was given.
        if setting.kind == "bool":
            groups[setting.group].add_argument(setting.option, dest=setting.name, default=None,
                                               action=argparse.BooleanOptionalAction, help=help_text(setting))
        else:
            groups[setting.group].add_argument(setting.option, dest=setting.name, type=_cli_type(setting.kind),
                                               default=None, help=help_text(setting),
                                               metavar="W1,W2" if setting.kind == "widths" else None)
    run = p.add_argument_group("run")
    run.add_argument("--out", default=None, help="run directory (default: runs/<date-time>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument("--config", default=None, help="TOML file with any of the options above (flags override it)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_import_option(run)
    p.set_defaults(func=cmd_train)


def _read_toml(path: str) -> dict[str, Any]:
    from .settings import BY_NAME

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
    known = set(BY_NAME) | {"out"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"error: --config {path} has unknown keys {unknown}; known: {sorted(known)}")
    return data


def _data_source(value: str) -> str:
    """A dataset name as it is, a path made absolute (so the run resumes from any folder)."""
    from .datasets import dataset_names

    return value if value in dataset_names() else str(Path(value).expanduser().resolve())


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import load
    from .settings import BY_NAME

    _import_modules(args.imports)
    given = {name: getattr(args, name) for name in BY_NAME if getattr(args, name) is not None}
    if args.config:
        file_settings = _read_toml(args.config)
        if args.out is None and "out" in file_settings:
            args.out = file_settings["out"]
        file_settings.pop("out", None)
        given = {**file_settings, **given}
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if args.resume:
        gan, schedule, source, record = _resume_plan(out, given)
    else:
        from .models import build_gan
        from .settings import resolve

        settings = resolve(given)
        settings["data"] = source = _data_source(settings["data"])
        schedule = {k: settings[k] for k in ("iterations", "epochs", "batch_size", "sample_every",
                                             "checkpoint_every", "eval_every")}
        record = {"settings": settings}
        gan = None
    images, labels = load(source)
    if gan is None:
        from .models import build_gan

        gan = build_gan({**record["settings"], "image_shape": list(images.shape[1:])})
    where = source if source is not None else "in-memory data"
    print(f"training on {where}: {len(images)} images of {tuple(images.shape[1:])}; run directory {out}")
    result = gan.fit(
        images, labels=labels if gan.conditional else None, iterations=schedule["iterations"],
        epochs=schedule["epochs"], batch_size=schedule["batch_size"], out_dir=out,
        sample_every=schedule["sample_every"], checkpoint_every=schedule["checkpoint_every"],
        eval_every=schedule["eval_every"], resume=args.resume, progress=not args.no_progress, config=record,
    )
    print(f"iteration {result.iteration}: {result.rate:.1f} it/s over {result.seconds:.1f} s; "
          f"samples in {out / 'samples'}, plots {out / 'losses.png'}, {out / 'progress.gif'}")
    if result.interrupted:
        return 130 if result.interrupted == "SIGINT" else 143
    return 0


def _resume_plan(out: Path, given: dict[str, Any]) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    """For ``--resume``: the GAN rebuilt as the run records it, the schedule (the run's,
    with any new length or intervals given), the data source and the record to keep.

    Settings that define the run must not change: a given value that differs from the
    recorded one is an error naming both.
    """
    from .models import gan_from_record
    from .settings import BY_NAME

    config_file = out / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"--resume: no run in {out} (no config.json); start it without --resume")
    record = json.loads(config_file.read_text())
    recorded = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    schedule = {k: record.get(k, BY_NAME[k].default) for k in ("iterations", "batch_size", "sample_every",
                                                              "checkpoint_every", "eval_every")}
    schedule["epochs"] = None
    if "epochs" in given:
        schedule["iterations"], schedule["epochs"] = given.get("iterations"), given["epochs"]
    elif "iterations" in given:
        schedule["iterations"] = given["iterations"]
    for key in ("sample_every", "checkpoint_every", "eval_every"):
        if key in given:
            schedule[key] = BY_NAME[key].validate(given[key])
    fixed = {k: v for k, v in given.items()
             if BY_NAME[k].group != "schedule" and k != "data"}
    if "batch_size" in fixed:
        fixed["batch_size"] = BY_NAME["batch_size"].validate(fixed["batch_size"])
    changed = []
    for key, value in sorted(fixed.items()):
        before = recorded.get(key, record.get(key))
        if before is None:
            changed.append(f"{BY_NAME[key].option} {value!r} (the run does not record it: it was made in Python)")
        elif BY_NAME[key].validate(value) != before:
            changed.append(f"{BY_NAME[key].option} {value!r} (the run has {before!r})")
    if changed:
        raise ValueError(f"--resume continues the run in {out} with its own settings; these differ: "
                         + ", ".join(changed) + ". Start a new run (another --out) to change them")
    if "data" in given:
        source = _data_source(given["data"])
    elif recorded.get("data"):
        source = recorded["data"]
    else:
        raise ValueError(f"the run in {out} was trained from Python on in-memory data: pass --data with that "
                         "same data (a dataset name, folder or .npy/.npz) to resume it")
    gan = gan_from_record(record)
    return gan, schedule, source, {"settings": {**recorded, "data": source}} if recorded else {}


def _add_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate images from a trained run",
                       description="Write generated images as a PNG grid or a .npy array (float32 in [-1, 1]).")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint.npz")
    p.add_argument("--n", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: fresh)")
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (n, height, width) float32")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the last generator weights, not their moving average (the default when the run kept one)")
    _add_import_option(p)
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .models import load_gan

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        print(f"error: --out must end in .png or .npy, got {out.name}", file=sys.stderr)
        return 2
    _import_modules(args.imports)
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
    _add_import_option(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate_samples
    from .models import load_gan
    from .serialization import atomic_write_text

    _import_modules(args.imports)
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
    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    print(f"run directory: {run}")
    made = "minigan train" if settings else ("Python (GAN.fit)" if "generator" in config else None)
    rows = {
        "made by": made,
        "data": settings.get("data") or ("in-memory data" if made == "Python (GAN.fit)" else config.get("data")),
        "architecture": settings.get("architecture") or config.get("architecture")
        or ("custom networks" if made else None),
        "loss": config.get("loss"), "iterations": config.get("iterations"), "batch_size": config.get("batch_size"),
        "latent_dim": config.get("latent_dim"),
        "g_lr": (config.get("g_optimizer") or {}).get("lr", config.get("lr")),
        "d_lr": (config.get("d_optimizer") or {}).get("lr", config.get("lr")),
        "d_steps": config.get("d_steps"), "ema_decay": config.get("ema_decay"), "seed": config.get("seed"),
        "dtype": config.get("dtype"),
    }
    for key, value in rows.items():
        if value is not None or key == "ema_decay" and "ema_decay" in config:
            print(f"  {key:<16} {value}")
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
    from .duel import add_duel_command

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
    add_duel_command(sub)
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
