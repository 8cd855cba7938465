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
import warnings
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


#: ``minigan train`` refuses, unless told ``--allow-large``, a GAN whose checkpoint would be
#: larger than this: a dense GAN on 256x256 images makes a 1.5 GB checkpoint and trains at
#: a fraction of an iteration per second on 2 cores.
LARGE_CHECKPOINT_BYTES = 512 * 2**20


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
    titles = {"data": "data", "model": "networks and objective", "training": "training",
              "schedule": "length and outputs"}
    groups = {group: p.add_argument_group(title) for group, title in titles.items()}
    for setting in SETTINGS:
        # Defaults are applied later (minigan.settings.resolve) so that --config and --resume can tell what was given.
        if setting.kind == "bool":
            groups[setting.group].add_argument(setting.option, dest=setting.name, default=None,
                                               action=argparse.BooleanOptionalAction, help=help_text(setting))
        else:
            metavar = {"widths": "W1,W2", "size": "HxW"}.get(setting.kind)
            groups[setting.group].add_argument(setting.option, dest=setting.name, type=_cli_type(setting.kind),
                                               default=None, help=help_text(setting), metavar=metavar)
    run = p.add_argument_group("run")
    run.add_argument("--out", default=None, help="run directory (default: runs/<date-time>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument("--config", default=None, help="TOML file with any of the options above (flags override it)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--allow-large", action="store_true",
                     help=f"train even when a checkpoint would exceed {LARGE_CHECKPOINT_BYTES // 2**20} MB "
                          "(dense networks grow with the pixel count)")
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
        data_settings = record.get("settings") or given
    else:
        from .settings import resolve

        settings = resolve(given)
        settings["data"] = source = _data_source(settings["data"])
        schedule = {k: settings[k] for k in ("iterations", "epochs", "batch_size", "sample_every",
                                             "checkpoint_every", "eval_every")}
        gan, record, data_settings = None, {"settings": settings}, settings
    conditional = bool(data_settings.get("conditional"))
    images, labels, class_names = _load_training_data(source, bool(data_settings.get("color")),
                                                      data_settings.get("resize"), labelled=conditional)
    if gan is None:
        from .models import build_gan

        classes = {"num_classes": len(class_names), "class_names": class_names} if conditional else {}
        gan = build_gan({**record["settings"], "image_shape": list(images.shape[1:]), **classes})
    elif conditional and gan.class_names != class_names:
        raise ValueError(f"--resume: the run in {out} was trained on the classes {gan.class_names}, but {source} "
                         f"now has {class_names}; resume with the run's own data")
    in_classes = ""
    if conditional:
        from .conditional.labels import describe_classes

        in_classes = f" in {len(class_names)} classes ({describe_classes(class_names)}), conditional"
    print(f"training on {source}: {len(images)} images of {tuple(images.shape[1:])}{in_classes}; run directory {out}")
    size = gan.checkpoint_nbytes()
    print(f"generator {gan.generator.num_params():,} parameters, discriminator {gan.discriminator.num_params():,}; "
          f"a checkpoint takes {_megabytes(size)}")
    if size > LARGE_CHECKPOINT_BYTES and not args.allow_large and not args.resume:
        raise ValueError(
            f"a dense GAN for {'x'.join(map(str, images.shape[1:]))} images is large: a checkpoint would take "
            f"{_megabytes(size)} and every iteration moves all those weights several times; train on smaller "
            f"images (e.g. --resize 64x64) or pass --allow-large to go on")
    result = gan.fit(
        images, labels=labels if gan.conditional else None, iterations=schedule["iterations"],
        epochs=schedule["epochs"], batch_size=schedule["batch_size"], out_dir=out,
        sample_every=schedule["sample_every"], checkpoint_every=schedule["checkpoint_every"],
        eval_every=schedule["eval_every"], resume=args.resume, progress=not args.no_progress, config=record,
    )
    if result.iterations_run:
        print(f"iteration {result.iteration}: {result.rate:.1f} it/s over {result.seconds:.1f} s; "
              f"samples in {out / 'samples'}, plots {out / 'losses.png'}, {out / 'progress.gif'}")
    if result.interrupted:
        return 130 if result.interrupted == "SIGINT" else 143
    return 0


def _load_training_data(source: str, color: bool, resize: Any, labelled: bool = False) -> tuple[Any, Any, Any]:
    """The images, labels and class names of ``source`` (``labelled``: a conditional run,
    which needs labels: :func:`minigan.datasets.load_labelled`; else the names are None);
    colour images trained as grey get a note."""
    import numpy as np

    from .datasets import dataset_names, load, load_labelled
    from .datasets.images import conform_images
    from .settings import BY_NAME

    size = None if resize is None else tuple(BY_NAME["resize"].validate(resize))

    def read(color_mode: str) -> tuple[Any, Any, Any]:
        if labelled:
            return load_labelled(source, color=color_mode, resize=size)
        return (*load(source, color=color_mode, resize=size), None)

    if color or source in dataset_names():
        return read("rgb" if color else "grey")
    images, labels, names = read("rgb")
    if not (np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])):
        print("note: the images are in colour; training on their grey luma (pass --color to keep the colour)")
    return conform_images(images, color="grey"), labels, names


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MB" if nbytes < 2**30 else f"{nbytes / 2**30:,.2f} GB"


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
    # The data settings say how to load the data again; its fingerprint decides whether it is the same.
    fixed = {k: v for k, v in given.items() if BY_NAME[k].group not in ("schedule", "data")}
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
    for key in ("color", "resize"):
        if key in given and recorded:
            recorded[key] = BY_NAME[key].validate(given[key])
    return gan, schedule, source, {"settings": {**recorded, "data": source}} if recorded else {}


SAMPLE_FORMATS = ("grid", "npy", "png")


def _add_sample(sub: Any) -> None:
    p = sub.add_parser(
        "sample", help="generate images from a trained run",
        description="Write generated images: a PNG grid (--out FILE.png), a .npy array of float32 in [-1, 1] "
                    "(--out FILE.npy), or one PNG per image (--out FOLDER, --format png). With --walk, a latent "
                    "walk: rows of images along paths between random noise vectors, as a grid and a GIF.")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint.npz")
    p.add_argument("--n", type=int, default=None,
                   help="how many images (default 64; for a conditional run 8 per class asked for), or paths with "
                        "--walk (default 8; conditional: one per class asked for)")
    p.add_argument("--label", nargs="+", action="extend", default=None, metavar="K",
                   help="conditional runs: the class(es) to generate, by name or number (e.g. --label 7, --label 3 "
                        "7); the images are split evenly among them, one grid row per class. Default: every class")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: fresh)")
    p.add_argument("--out", required=True, help="FILE.png (a grid), FILE.npy (n, height, width[, 3]) or a FOLDER")
    p.add_argument("--format", choices=SAMPLE_FORMATS, default=None,
                   help="grid, npy or png (one file per image); default: from --out (.png grid, .npy array, "
                        "a folder: png)")
    p.add_argument("--walk", action="store_true",
                   help="a latent walk: --n paths of --steps images each; writes FILE.png (one row per path) and "
                        "FILE.gif (the paths walked together)")
    p.add_argument("--steps", type=int, default=10, help="images per path of --walk (default 10)")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the last generator weights, not their moving average (the default when the run kept one)")
    _add_import_option(p)
    p.set_defaults(func=cmd_sample)


def _sample_format(out: Path, given: str | None) -> str:
    inferred = {".png": "grid", ".npy": "npy", "": "png"}.get(out.suffix.lower())
    if given is None:
        if inferred is None:
            raise ValueError(f"--out must be FILE.png, FILE.npy or a folder, got {out.name}; or give --format")
        return inferred
    if given in ("grid", "npy") and out.suffix.lower() != {"grid": ".png", "npy": ".npy"}[given]:
        raise ValueError(f"--format {given} writes {'FILE.png' if given == 'grid' else 'FILE.npy'}, got --out {out}")
    if given == "png" and out.suffix:
        raise ValueError(f"--format png writes one PNG per image into a folder; --out {out} looks like a file")
    return given


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .models import load_gan

    out = Path(args.out)
    kind = _sample_format(out, args.format)
    if args.walk and kind != "grid":
        raise ValueError(f"--walk writes FILE.png and FILE.gif; give --out FILE.png, got {out}")
    _import_modules(args.imports)
    gan = load_gan(args.checkpoint, models_only=True)
    classes = _requested_classes(gan, args.label)
    if args.n is None:
        args.n = (8 if args.walk else 64) if classes is None else (1 if args.walk else 8) * len(classes)
    from ._validation import check_int

    check_int(args.n, "n", minimum=1)
    labels = None if classes is None else classes[(np.arange(args.n) * len(classes)) // args.n]
    if classes is not None and not args.label:
        from .conditional.labels import describe_classes

        low, high = args.n // len(classes), -(-args.n // len(classes))
        per = str(low) if low == high else f"{low} or {high}"
        noun = "path" if args.walk else "image"
        print(f"note: this run is conditional ({len(classes)} classes: {describe_classes(gan.class_names)}) and no "
              f"--label was given: sampling every class evenly, {per} {noun}{'' if per == '1' else 's'} each, in "
              "class order (--label K for class K)")
    if args.walk:
        return _write_walk(gan, args, out, labels)
    images = gan.sample(args.n, seed=args.seed, ema=args.ema, labels=labels).astype(np.float32)
    if kind == "npy":
        from .serialization import atomic_file

        with atomic_file(out) as handle:
            np.save(handle, images, allow_pickle=False)
    elif kind == "grid":
        from .plots import save_sample_grid

        if labels is None:
            save_sample_grid(images, out)
        else:
            from .plots import class_rows

            cells, width, row_classes = class_rows(images, labels)
            save_sample_grid(cells, out, ncols=width, row_labels=[gan.class_names[k] for k in row_classes])
    else:
        from .datasets import from_tanh_range, save_png

        width = len(str(args.n - 1))
        for index, image in enumerate(from_tanh_range(images)):
            suffix = "" if labels is None else f"_label{labels[index]}"
            save_png(out / f"sample_{index:0{width}d}{suffix}.png", image)
    noun = "sample" if args.n == 1 else "samples"
    where = f"{out}{os.sep}sample_*.png" if kind == "png" else str(out)
    of = "" if labels is None else " of " + _label_summary(gan, labels)
    print(f"wrote {args.n} {noun}{of} to {where}")
    return 0


def _requested_classes(gan: Any, requested: Sequence[str] | None) -> Any:
    """The classes a ``sample`` call asks for: the ``--label`` values as labels (int64), every
    class of a conditional run without them, None for an unconditional run."""
    import numpy as np

    if not gan.conditional:
        if requested:
            raise ValueError(f"--label {' '.join(requested)}: this run is not conditional (it was trained without "
                             "--conditional), so it cannot be asked for a class; leave --label out, or train a "
                             "conditional run with minigan train --conditional")
        return None
    if gan.num_classes is None:
        raise ValueError("this run's generator takes labels but does not say how many classes it knows "
                         "(its conditional layers declare no num_classes); sample it from Python with "
                         "gan.sample(n, labels=...)")
    if not requested:
        return np.arange(gan.num_classes, dtype=np.int64)
    from .conditional.labels import label_from_text

    found = []
    for text in requested:
        try:
            found.append(label_from_text(text, gan.class_names))
        except ValueError as exc:
            raise ValueError(f"--label: {exc}") from None
    return np.asarray(found, dtype=np.int64)


def _label_summary(gan: Any, labels: Any) -> str:
    """``"class 7"`` or ``"classes 3 (x8), 7 (x8)"`` for a message."""
    import numpy as np

    names = gan.class_names
    order = list(dict.fromkeys(int(k) for k in labels))
    if len(order) == 1:
        return f"class {names[order[0]]}"
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    if len(starts) > len(order):  # a class asked for twice (--label 7 3 7): its runs, in order
        runs = np.diff(np.r_[starts, len(labels)])
        more = ", ..." if len(starts) > 12 else ""
        return (f"classes {', '.join(f'{names[labels[i]]} (x{n})' for i, n in zip(starts[:12], runs))}{more}, "
                "in that order")
    counts = np.bincount(labels, minlength=len(names))
    more = ", ..." if len(order) > 12 else ""
    if len({int(counts[k]) for k in order}) == 1:
        return f"classes {', '.join(names[k] for k in order[:12])}{more} ({counts[order[0]]} each, in that order)"
    return f"classes {', '.join(f'{names[k]} (x{counts[k]})' for k in order[:12])}{more}, in that order"


def _write_walk(gan: Any, args: argparse.Namespace, out: Path, labels: Any = None) -> int:
    from .plots import class_rows, grid_picture, save_progress_gif, save_sample_grid

    walks = args.n
    images = gan.latent_walk(walks, args.steps, seed=args.seed, ema=args.ema, labels=labels)
    flat = images.reshape((walks * args.steps, *images.shape[2:]))
    names = None if labels is None else [gan.class_names[k] for k in labels]
    save_sample_grid(flat, out, ncols=args.steps, row_labels=names)  # one path per row

    def frame(step: int) -> Any:
        caption = f"step {step + 1} of {args.steps}"
        if labels is None:
            return grid_picture(images[:, step], label=caption)
        cells, width, row_classes = class_rows(images[:, step], labels)  # the paths by class, as sample --label
        return grid_picture(cells, width, label=caption, row_labels=[gan.class_names[k] for k in row_classes])

    frames = [frame(step) for step in range(args.steps)]
    gif = out.with_suffix(".gif")
    save_progress_gif(frames + frames[-2:0:-1], gif, duration_ms=150, final_hold_ms=150)  # there and back
    of = "" if labels is None else " (" + _label_summary(gan, labels) + ")"
    print(f"wrote a latent walk of {walks} path{'s' if walks != 1 else ''}{of} x {args.steps} steps to {out} and {gif}")
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
    doubt = _not_digits(gan.record or {})
    if doubt:
        print(f"warning: {doubt}; the classifier FID and the classes covered measure likeness to MNIST digits "
              "(the built-in digit classifier), not quality on that data", file=sys.stderr)
    labels = None
    if gan.conditional:
        if gan.num_classes is None:
            raise ValueError("this run's networks take labels but do not say how many classes they know; "
                             "evaluate it from Python with minigan.conditional.metrics")
        from .conditional.labels import even_labels

        labels = even_labels(args.n, gan.num_classes)
    images = gan.sample(args.n, seed=args.seed, ema=args.ema, labels=labels)
    result = evaluate_samples(images)
    weights = "the moving average of G's weights" if args.ema and gan.generator_ema is not None else "G's last weights"
    spread = "" if labels is None else f" spread evenly over the {gan.num_classes} classes"
    print(f"run: {args.checkpoint} (iteration {gan.iteration}), {args.n} samples{spread}, seed {args.seed}, {weights}")
    rows = [
        ("classifier FID", f"{result['classifier_fid']:.2f}",
         f"(real vs real {result['fid_real_vs_real']:.2f}, noise {result['fid_noise']:.1f})"),
        ("classes covered", f"{result['classes_covered']} / 10", f"(a class counts from {result['min_class_share']:.0%} of samples)"),
        ("mean confidence", f"{result['mean_confidence']:.3f}", ""),
        ("class histogram", " ".join(str(c) for c in result["class_histogram"]), "(digits 0..9)"),
    ]
    for name, value, note in rows:
        print(f"  {name:<16} {value:<24} {note}")
    if labels is not None:
        conditional = _evaluate_classes(gan, images, labels, doubt)
        if conditional is not None:
            result["conditional"] = conditional
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _evaluate_classes(gan: Any, images: Any, labels: Any, doubt: str | None) -> dict[str, Any] | None:
    """Print (and return) a conditional run's label accuracy and per-class FID; None, with a
    note, when its classes are not the ten digits (the classifier reads only those)."""
    from .conditional.labels import default_class_names
    from .conditional.metrics import evaluate_conditional

    if gan.class_names != default_class_names(10):
        print(f"  label accuracy   not measured: the built-in classifier reads the digits 0 .. 9, and this run's "
              f"classes are {gan.num_classes} others")
        return None
    found = evaluate_conditional(images, labels)
    accuracy, fids = found["label_accuracy"], found["per_class_fid"]
    per_class = images.shape[0] // gan.num_classes
    print(f"  label accuracy   {accuracy['mean']:.3f} mean over the classes, worst {accuracy['worst']:.3f} "
          f"(class {accuracy['worst_class']}): the share of images made for label k that the classifier reads as k"
          + (" (the data may not be digits: read with care)" if doubt else ""))
    print(f"  per class        {'class':>5} {'accuracy':>9} {'FID':>7}   (FID: ~{per_class} samples of the class "
          "vs its 500 real digits)")
    for k in range(gan.num_classes):
        print(f"  {'':<16} {k:>5} {accuracy['per_class'][k]:>9.3f} {fids[k]:>7.2f}")
    print(f"  {'':<16} {'mean':>5} {accuracy['mean']:>9.3f} {found['mean_class_fid']:>7.2f}")
    return found


def _not_digits(record: dict[str, Any]) -> str | None:
    """Why the run's data may not be MNIST digits, or None when it is recorded as them."""
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else None
    if settings is not None:
        if settings.get("data") in ("mnist-5k", "mnist") and not settings.get("color") and not settings.get("resize"):
            return None
        return f"this run was trained on {settings.get('data')}, not on MNIST digits"
    fingerprint = record.get("data_fingerprint")
    if fingerprint:
        from .datasets import load
        from .run import data_fingerprint

        if fingerprint.get("sha256") == data_fingerprint(load("mnist-5k")[0])["sha256"]:
            return None
        return "this run was trained from Python on data not recorded as MNIST digits"
    if record.get("data") in ("mnist-5k", "mnist"):  # a run recorded by an older minigan
        return None
    return "this run does not record what it was trained on"


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
        "dtype": config.get("dtype"), "conditional": _classes_text(config),
        "loss terms": ", ".join(
            f"{t.get('class')}({', '.join(f'{k}={v}' for k, v in (t.get('config') or {}).items())})"
            for t in (config.get("discriminator_terms") or []) + (config.get("generator_terms") or [])
            if isinstance(t, dict)) or None,
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
            print(f"  last logged      iteration {int(last['iteration'])}: d_loss {last['d_loss']:.3f}, "
                  f"g_loss {last['g_loss']:.3f}, D(x) {last['d_real']:.3f}, D(G(z)) {last['d_fake']:.3f}")
            if "seconds" in metrics:
                from .run import training_speed

                rate, sessions = training_speed(metrics["seconds"])
                over = f" over {sessions} sessions" if sessions > 1 else ""
                print(f"  speed            {rate:.1f} it/s{over} (training time; writing included)")
    return 0


def _classes_text(config: dict[str, Any]) -> str | None:
    """``"yes, 10 classes: 0 .. 9 (D: projection)"`` for a conditional run's record, else None."""
    if not config.get("conditional"):
        return None
    names = config.get("class_names")
    if not isinstance(names, list) or not names:
        return "yes (the number of classes is not recorded)"
    from .conditional.labels import describe_classes

    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    parts = [f"{net}: {settings[key]}" for net, key in (("G", "g_conditioning"), ("D", "d_conditioning"))
             if settings.get(key)]
    how = f" ({', '.join(parts)})" if parts else ""
    return f"yes, {len(names)} classes: {describe_classes(names, limit=32)}{how}"


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


def _print_note(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"note: {message}", file=sys.stderr)


def _one_blas_thread_for_detect(argv: Sequence[str]) -> None:
    """``detect`` runs one BLAS thread per process, as its Dask workers do: a thread count changes
    the last bits of matrix products, and a scan must give the same scores in one process and on a
    cluster. Its products are small (a second thread buys nothing); the environment must say it
    before NumPy loads, and a value the user set is kept."""
    if "numpy" in sys.modules or next((a for a in argv if not a.startswith("-")), None) != "detect":
        return
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``minigan`` and ``python -m minigan``; returns the exit code."""
    _one_blas_thread_for_detect(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            # The library's warnings (a skipped file, a detector far from its training images) are
            # notes for the user here: the message alone, not Python's source line.
            warnings.showwarning = _print_note
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Outside the training loop (which saves a checkpoint itself) there is nothing to save.
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``minigan info run | head``): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so that flushing it at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        # The library's errors already say what to do (a failed download, a file that is not
        # what it should be, a bad argument); a traceback would only hide that
        # (set MINIGAN_DEBUG=1 to see it).
        if os.environ.get("MINIGAN_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
