"""Running :meth:`minigan.GAN.fit`: data batches, the run directory, checkpoints, signals.

A run directory holds::

    config.json      every setting, the seed and the library versions
    metrics.csv      one row per iteration: losses, D(x), D(G(z)), elapsed seconds
                     (+ classifier FID, classes covered, confidence every eval_every)
    samples/         iter_000500.png ... : the fixed-noise sample grid over training
    losses.png       loss curves and D outputs over time
    progress.gif     the sample grids as an animation
    checkpoint.npz   the latest checkpoint (see minigan.checkpoint)

``config.json`` records how the run was made: the networks (``generator`` and
``discriminator``: :meth:`minigan.Sequential.get_config`), everything else that
defines the GAN (:meth:`minigan.GAN.describe`), the training schedule, a
fingerprint of the data (shape, dtype, SHA-256), the caller's own settings (the
command line's options) and the library versions. :func:`minigan.load_gan`
rebuilds the GAN from it, and a resumed run must match it.
"""
from __future__ import annotations

import hashlib
import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from . import checkpoint as ckpt
from ._validation import check_float_array, check_int, describe
from .errors import TrainingDiverged
from .serialization import atomic_write_text

if TYPE_CHECKING:  # the loop is given a GAN; importing gan here would be a cycle (gan.fit calls train)
    from .gan import GAN

EVAL_COLUMNS = ("classifier_fid", "classes_covered", "mean_confidence")
FIXED_SAMPLES = 64


def prepare_images(data: Any, gan: "GAN") -> np.ndarray:
    """Training images as a flat (n, prod(image_shape)) array in [-1, 1] of the GAN's dtype.

    uint8 pixels are scaled with :func:`minigan.datasets.to_tanh_range`; floats must
    already lie in [-1, 1].
    """
    from .datasets.scaling import to_tanh_range

    if not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a NumPy array of images, got {describe(data)}")
    if data.dtype == np.uint8:
        data = to_tanh_range(data, dtype=gan.dtype)
    else:
        data = check_float_array(data, "data")
        if data.min() < -1.0 - 1e-6 or data.max() > 1.0 + 1e-6:
            raise ValueError(
                f"data must be uint8 pixels or floats in [-1, 1], got floats from {data.min():.3g} to {data.max():.3g}"
            )
        data = data.astype(gan.dtype, copy=False)
    size = int(np.prod(gan.image_shape))
    if data.ndim < 2 or int(np.prod(data.shape[1:])) != size:
        raise ValueError(f"data must hold images of shape {gan.image_shape}, got an array of shape {data.shape}")
    return np.ascontiguousarray(data.reshape(len(data), size))


class BatchSampler:
    """Shuffled mini-batches, epoch after epoch, from the GAN's random stream.

    The permutation and the position in it are part of the checkpoint, so a resumed
    run sees the same batches as an uninterrupted one.
    """

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator) -> None:
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.order = np.arange(0)
        self.position = 0

    def next_indices(self) -> np.ndarray:
        if self.position + self.batch_size > len(self.order):
            self.order = self.rng.permutation(self.n)
            self.position = 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch


class MetricsLog:
    """Appends one CSV row per iteration; ``truncate`` drops rows past a checkpoint on resume."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns = path, columns
        if not path.exists():
            atomic_write_text(path, ",".join(columns) + "\n")
        else:
            header = path.read_text().splitlines()[:1]
            if header != [",".join(columns)]:
                raise ValueError(f"{path} has columns {header[:1]}, expected {','.join(columns)}: a different run?")
        self.handle = open(path, "a", buffering=1 << 16)

    @staticmethod
    def truncate(path: Path, iteration: int) -> None:
        if not path.exists():
            return
        lines = path.read_text().splitlines()
        kept = lines[:1] + [line for line in lines[1:] if line and int(float(line.split(",")[0])) <= iteration]
        atomic_write_text(path, "\n".join(kept) + "\n")

    def write(self, row: dict[str, float]) -> None:
        self.handle.write(",".join(_format(row.get(c)) for c in self.columns) + "\n")

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.6g}"


class _StopRequest:
    """Turns SIGINT (Ctrl-C) and SIGTERM into a flag the loop checks after each iteration."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def prepare_labels(labels: Any, n: int, gan: "GAN") -> np.ndarray | None:
    """The condition of a conditional GAN: one integer label per image, shape (n,), int64.

    When the networks declare their number of classes (the built-in conditional
    layers do), every label must lie below it and every class must have images.
    """
    from .conditional.labels import check_labels

    if labels is None:
        if gan.conditional:
            raise ValueError("this GAN is conditional: pass labels= (one integer label per image) to fit")
        return None
    if not gan.conditional:
        raise ValueError("labels were given but neither network takes a condition; build conditional "
                         "networks to use them, or leave labels out")
    return check_labels(labels, n, gan.num_classes, every_class=True)


def data_fingerprint(data: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Shape, dtype and SHA-256 of the training data (and labels): what ``resume`` compares."""
    digest = hashlib.sha256(np.ascontiguousarray(data).tobytes())
    found: dict[str, Any] = {"shape": list(data.shape), "dtype": data.dtype.name}
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
        found["labels"] = True
    found["sha256"] = digest.hexdigest()
    return found


def _fingerprint_text(fingerprint: dict[str, Any]) -> str:
    labels = " with labels" if fingerprint.get("labels") else ""
    return f"{tuple(fingerprint['shape'])} {fingerprint['dtype']}{labels} (sha256 {fingerprint['sha256'][:12]})"


def describe_networks(gan: "GAN") -> dict[str, Any]:
    """``{"generator": config, "discriminator": config}``; a network holding a layer without
    ``get_config`` is recorded as ``{"unrecorded": reason}``."""
    found: dict[str, Any] = {}
    for name, net in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        try:
            found[name] = net.get_config()
        except NotImplementedError as exc:
            found[name] = {"unrecorded": str(exc)}
    return found


def run_record(gan: "GAN", schedule: dict[str, Any], fingerprint: dict[str, Any],
               extra: dict[str, Any] | None) -> dict[str, Any]:
    """What ``config.json`` holds (see the module docstring)."""
    described = gan.describe()
    classes = {"num_classes": gan.num_classes, "class_names": gan.class_names} if gan.num_classes else {}
    return {
        **(extra or {}),
        **schedule,
        **described,
        "loss": gan.loss_name,
        "conditional": gan.conditional,
        **classes,
        **describe_networks(gan),
        "data_fingerprint": fingerprint,
        "versions": ckpt.versions(),
    }


#: What a resumed run must share with its record (the schedule may change).
_MUST_MATCH = ("objective", "g_optimizer", "d_optimizer", "d_steps", "ema_decay", "seed", "latent_dim", "image_shape",
               "dtype", "discriminator_terms", "generator_terms", "generator", "discriminator", "class_names")


def check_resumable(recorded: dict[str, Any], current: dict[str, Any], source: str) -> None:
    """Raise a ValueError naming every setting in which ``current`` differs from the run's
    ``recorded`` config (keys a run made by an older minigan lacks are not compared)."""
    differences = []
    for key in (*_MUST_MATCH, "batch_size"):
        if key in recorded and key in current and _jsonable(recorded[key]) != _jsonable(current[key]):
            differences.append(f"{key}: the run has {_short(recorded[key])}, now {_short(current[key])}")
    old, new = recorded.get("data_fingerprint"), current.get("data_fingerprint")
    if old and new and (old["sha256"], old["shape"], old["dtype"]) != (new["sha256"], new["shape"], new["dtype"]):
        differences.append(f"data: the run was trained on {_fingerprint_text(old)}, this data is {_fingerprint_text(new)}")
    if differences:
        raise ValueError(f"cannot resume {source}: it differs from the recorded run in\n  " + "\n  ".join(differences)
                         + "\nresume with the run's own settings and data, or start a new run in another directory")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _resolve_length(iterations: int | None, epochs: int | None, per_epoch: int) -> int:
    if iterations is not None and epochs is not None:
        raise ValueError(f"give iterations or epochs, not both (got iterations={iterations}, epochs={epochs})")
    if epochs is not None:
        return check_int(epochs, "epochs", minimum=1) * per_epoch
    if iterations is None:
        raise ValueError("give iterations=N or epochs=E to say how long to train")
    return check_int(iterations, "iterations", minimum=1)


class TrainingResult:
    """What :meth:`GAN.fit` returns: ``history`` (dict of metric -> list), ``interrupted``
    (the signal name if Ctrl-C/SIGTERM stopped the run, else None), ``iteration`` reached,
    ``iterations_run`` (in this session), ``out_dir``, and ``seconds`` of training in this
    session."""

    def __init__(self, history: dict[str, list[float]], iteration: int, interrupted: str | None,
                 out_dir: Path | None, seconds: float, iterations_run: int = 0) -> None:
        self.history = history
        self.iteration = iteration
        self.interrupted = interrupted
        self.out_dir = out_dir
        self.seconds = seconds
        self.iterations_run = iterations_run

    @property
    def rate(self) -> float:
        """Iterations per second in this session (NaN when none ran)."""
        return self.iterations_run / self.seconds if self.iterations_run and self.seconds > 0 else float("nan")

    def __repr__(self) -> str:
        state = f"interrupted by {self.interrupted}" if self.interrupted else "finished"
        return f"TrainingResult(iteration={self.iteration}, {state}, seconds={self.seconds:.1f})"


def training_speed(seconds: np.ndarray) -> tuple[float, int]:
    """Iterations per second of a run and its number of sessions, from the ``seconds``
    column of ``metrics.csv`` (time since each session's start, so it falls back to
    near zero where a resumed session begins): all rows over the sum of the sessions'
    durations."""
    seconds = np.asarray(seconds, dtype=np.float64)
    if seconds.size == 0:
        return float("nan"), 0
    starts = np.flatnonzero(np.diff(seconds) < 0) + 1
    ends = np.append(starts - 1, seconds.size - 1)
    duration = float(seconds[ends].sum())
    return (seconds.size / duration if duration > 0 else float("nan")), int(ends.size)


def fixed_condition(labels: np.ndarray | None, n: int) -> np.ndarray | None:
    """Labels for the fixed sample grid: the data's classes in turn."""
    if labels is None:
        return None
    classes = np.unique(labels)
    return classes[np.arange(n) % classes.size].astype(np.int64)


def class_grid_columns(num_classes: int) -> int:
    """Images per class in a conditional run's sample grid: 8 (as wide as the 8 x 8
    grid of an unconditional run) up to 32 classes, fewer for more classes."""
    return max(2, min(8, 256 // num_classes))


def class_grid(num_classes: int, gan: "GAN") -> tuple[np.ndarray, np.ndarray]:
    """The fixed noise and labels of a conditional run's sample grid: one row per class,
    and in each column the same noise vector for every class (so that a column shows
    one "style" across the classes). Returns noise (K * C, latent_dim) and labels (K * C,)."""
    columns = class_grid_columns(num_classes)
    column_noise = gan.noise(columns, np.random.default_rng([gan.seed or 0, 0x5EED]))
    noise = np.tile(column_noise, (num_classes, 1))
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), columns)
    return noise, labels


def train(
    gan: "GAN",
    data: Any,
    *,
    labels: Any,
    iterations: int | None,
    epochs: int | None,
    batch_size: int,
    out_dir: str | Path | None,
    sample_every: int,
    checkpoint_every: int,
    eval_every: int,
    resume: bool,
    progress: bool,
    callbacks: Iterable[Callable[["GAN", int, dict], Any]],
    config: dict | None,
) -> TrainingResult:
    """The body of :meth:`GAN.fit` (see there for the parameters)."""
    images = prepare_images(data, gan)
    conditions = prepare_labels(labels, len(images), gan)
    batch_size = check_int(batch_size, "batch_size", minimum=2, maximum=len(images))
    total = _resolve_length(iterations, epochs, len(images) // batch_size)
    sample_every = check_int(sample_every, "sample_every", minimum=0)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=0)
    eval_every = check_int(eval_every, "eval_every", minimum=0)
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable f(gan, iteration, logs), got {describe(cb)}")
    if eval_every and gan.image_shape != (28, 28):
        raise ValueError(f"eval_every needs 28x28 digit images (the built-in classifier), got image_shape {gan.image_shape}")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict of JSON-compatible settings, got {describe(config)}")

    sampler = BatchSampler(len(images), batch_size, gan.rng)
    # The fixed noise has its own stream so that drawing it does not shift the training stream.
    if conditions is not None and gan.num_classes:
        fixed_noise, fixed_labels = class_grid(gan.num_classes, gan)
    else:
        fixed_noise = gan.noise(FIXED_SAMPLES, np.random.default_rng([gan.seed or 0, 0x5EED]))
        fixed_labels = fixed_condition(conditions, FIXED_SAMPLES)
    grid_columns = class_grid_columns(gan.num_classes) if conditions is not None and gan.num_classes else None
    run = Path(out_dir) if out_dir is not None else None
    columns = ("iteration", *gan.log_names, "seconds") + (EVAL_COLUMNS if eval_every else ())
    log = None
    schedule = {"iterations": total, "batch_size": batch_size, "sample_every": sample_every,
                "checkpoint_every": checkpoint_every, "eval_every": eval_every, "n_images": len(images)}
    full_config: dict[str, Any] = {}

    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
        checkpoint_file = ckpt.checkpoint_path(run)
        full_config = run_record(gan, schedule, data_fingerprint(data, conditions), config)
        if resume:
            arrays, meta = ckpt.load_checkpoint(checkpoint_file)
            recorded = dict(meta.get("config") or {})
            recorded.setdefault("batch_size", meta.get("batch_size"))
            check_resumable(recorded, full_config, str(run))
            gan.load_state(arrays, meta, source=str(checkpoint_file))
            sampler.order = arrays["data_order"].astype(np.int64)
            sampler.position = int(meta["data_position"])
            fixed_noise = arrays["fixed_noise"].astype(gan.dtype)
            if "fixed_condition" in arrays:
                fixed_labels = arrays["fixed_condition"].astype(np.int64)
            MetricsLog.truncate(run / "metrics.csv", gan.iteration)
            if gan.iteration >= total:
                print(f"{run}: already at iteration {gan.iteration} of {total}; nothing to do")
        elif checkpoint_file.exists():
            raise FileExistsError(
                f"{run} already holds a run (checkpoint at iteration {_peek_iteration(checkpoint_file)}); "
                "pass resume=True (--resume) to continue it, or choose another out_dir"
            )
        elif (run / "metrics.csv").exists():
            (run / "metrics.csv").unlink()  # a run that never reached a checkpoint: start it afresh
        atomic_write_text(run / "config.json", json.dumps(full_config, indent=2, sort_keys=True) + "\n")
        log = MetricsLog(run / "metrics.csv", columns)
    elif resume:
        raise ValueError("resume=True needs out_dir: the run directory holding checkpoint.npz")

    def diverged(what: str) -> str:
        if run is None:
            where = "nothing was saved (no out_dir)"
        elif ckpt.checkpoint_path(run).exists():
            where = f"the last good checkpoint {ckpt.checkpoint_path(run)} is left untouched"
        else:
            where = "no checkpoint had been written yet"
        return f"{what}; {where}. Lower the learning rate or try label smoothing."

    def save() -> Path | None:
        if run is None:
            return None
        if not gan.weights_finite():
            raise TrainingDiverged(diverged(f"a weight became NaN or inf by iteration {gan.iteration}"))
        if log is not None:
            log.flush()
        arrays = {"data_order": sampler.order, "fixed_noise": fixed_noise}
        if fixed_labels is not None:
            arrays["fixed_condition"] = fixed_labels
        return ckpt.save_checkpoint(
            run, gan, arrays=arrays,
            meta={"data_position": sampler.position, "total_iterations": total, "batch_size": batch_size,
                  "config": full_config},
        )

    def write_samples() -> None:
        """The fixed-noise grid, captioned with its iteration, and the loss plot so far."""
        if run is None:
            return
        from .plots import save_sample_grid

        grid = gan.sample(len(fixed_noise), noise=fixed_noise, labels=fixed_labels)
        caption = f"iteration {gan.iteration}" + (", one row per class" if grid_columns else "")
        save_sample_grid(grid, run / "samples" / f"iter_{gan.iteration:06d}.png", ncols=grid_columns, label=caption,
                         row_labels=gan.class_names if grid_columns else None)
        if log is not None:
            log.flush()
            _write_loss_plot(run, gan.objective.score_kind)

    history: dict[str, list[float]] = {c: [] for c in columns}
    bar = _progress_bar(total, gan.iteration, progress)
    postfix: dict[str, str] = {}
    start = time.perf_counter()
    first_iteration = gan.iteration
    stop = _StopRequest()
    try:
        with stop:
            while gan.iteration < total and stop.signal_name is None:
                index = sampler.next_indices()
                try:
                    logs = gan.train_step(images[index], None if conditions is None else conditions[index])
                except TrainingDiverged as exc:
                    raise TrainingDiverged(diverged(str(exc))) from None
                it = gan.iteration
                row: dict[str, float] = {"iteration": it, **logs, "seconds": time.perf_counter() - start}
                if not all(math.isfinite(logs[k]) for k in ("d_loss", "g_loss")):
                    if log is not None:
                        log.write(row)
                    raise TrainingDiverged(diverged(
                        f"the loss became NaN or inf at iteration {it} (d_loss={logs['d_loss']}, g_loss={logs['g_loss']})"
                    ))
                if eval_every and it % eval_every == 0:
                    row.update(_quality(gan, fixed_labels))
                for key in columns:
                    history[key].append(row.get(key, math.nan))
                if log is not None:
                    log.write(row)
                for callback in callbacks:
                    callback(gan, it, row)
                if sample_every and it % sample_every == 0:
                    write_samples()
                if checkpoint_every and it % checkpoint_every == 0:
                    save()
                if bar is not None:
                    bar.update(1)
                    if "classifier_fid" in row:
                        postfix["fid"] = f"{row['classifier_fid']:.2f}"
                    if it % 25 == 0 or it == total:
                        postfix.update(d_loss=f"{logs['d_loss']:.3f}", g_loss=f"{logs['g_loss']:.3f}")
                        bar.set_postfix(postfix, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.flush()
    seconds = time.perf_counter() - start

    if run is not None:
        from .plots import save_progress_gif_from_run

        save()
        write_samples()  # the last grid and the loss plot
        save_progress_gif_from_run(run, run / "progress.gif")
        log.close()
    if stop.signal_name is not None:
        where = f"; checkpoint saved to {ckpt.checkpoint_path(run)}, continue with resume=True (--resume)" if run else ""
        print(f"\nstopped by {stop.signal_name} at iteration {gan.iteration}{where}")
    return TrainingResult(history, gan.iteration, stop.signal_name, run, seconds, gan.iteration - first_iteration)


def _write_loss_plot(run: Path, score_kind: str) -> None:
    from .plots import plot_losses, read_metrics_csv

    metrics = read_metrics_csv(run / "metrics.csv")
    if len(metrics.get("iteration", ())) > 0:
        plot_losses(metrics, run / "losses.png", score_kind=score_kind)



def _quality(gan: "GAN", fixed_labels: np.ndarray | None) -> dict[str, float]:
    from .metrics import evaluate_samples

    n = 1000
    condition = None if fixed_labels is None else np.resize(np.unique(fixed_labels), n)
    result = evaluate_samples(gan.sample(n, seed=12345, labels=condition))
    return {key: result[key] for key in EVAL_COLUMNS}


def _peek_iteration(path: Path) -> Any:
    try:
        return ckpt.load_checkpoint(path)[1]["iteration"]
    except Exception:  # only for the message
        return "?"


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, mininterval=0.5)
