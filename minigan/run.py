"""Running :meth:`minigan.GAN.fit`: data batches, the run directory, checkpoints, signals.

A run directory holds::

    config.json      every setting, the seed and the library versions
    metrics.csv      one row per iteration: losses, D(x), D(G(z)), elapsed seconds
                     (+ classifier FID, classes covered, confidence every eval_every)
    samples/         iter_000500.png ... : the fixed-noise sample grid over training
    losses.png       loss curves and D outputs over time
    progress.gif     the sample grids as an animation
    checkpoint.npz   the latest checkpoint (see minigan.checkpoint)
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from . import checkpoint as ckpt
from ._validation import check_float_array, check_int, describe
from .gan import GAN, TrainingDiverged, TrainingResult
from .serialization import atomic_write_text

BASE_COLUMNS = ("iteration", "d_loss", "g_loss", "d_real", "d_fake", "seconds")
EVAL_COLUMNS = ("classifier_fid", "classes_covered", "mean_confidence")
FIXED_SAMPLES = 64


def prepare_images(data: Any, gan: GAN) -> np.ndarray:
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


def _resolve_length(iterations: int | None, epochs: int | None, per_epoch: int) -> int:
    if iterations is not None and epochs is not None:
        raise ValueError(f"give iterations or epochs, not both (got iterations={iterations}, epochs={epochs})")
    if epochs is not None:
        return check_int(epochs, "epochs", minimum=1) * per_epoch
    if iterations is None:
        raise ValueError("give iterations=N or epochs=E to say how long to train")
    return check_int(iterations, "iterations", minimum=1)


def train(
    gan: GAN,
    data: Any,
    *,
    iterations: int | None,
    epochs: int | None,
    batch_size: int,
    out_dir: str | Path | None,
    sample_every: int,
    checkpoint_every: int,
    eval_every: int,
    resume: bool,
    progress: bool,
    callbacks: Iterable[Callable[[GAN, int, dict], Any]],
    config: dict | None,
) -> TrainingResult:
    """The body of :meth:`GAN.fit` (see there for the parameters)."""
    images = prepare_images(data, gan)
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

    sampler = BatchSampler(len(images), batch_size, gan.rng)
    # The fixed noise has its own stream so that drawing it does not shift the training stream.
    fixed_noise = gan._noise(FIXED_SAMPLES, np.random.default_rng([gan.seed or 0, 0x5EED]))
    run = Path(out_dir) if out_dir is not None else None
    columns = BASE_COLUMNS + (EVAL_COLUMNS if eval_every else ())
    log = None
    full_config: dict[str, Any] = {}
    settings = {
        "iterations": total, "batch_size": batch_size, "sample_every": sample_every,
        "checkpoint_every": checkpoint_every, "eval_every": eval_every, "seed": gan.seed, "loss": gan.loss_name,
        "latent_dim": gan.latent_dim, "image_shape": list(gan.image_shape), "d_steps": gan.d_steps,
        "label_smoothing": gan.label_smoothing, "dtype": gan.dtype.name, "n_images": len(images),
        "g_optimizer": _optimizer_config(gan.g_optimizer), "d_optimizer": _optimizer_config(gan.d_optimizer),
    }

    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
        checkpoint_file = ckpt.checkpoint_path(run)
        if resume:
            arrays, meta = ckpt.load_checkpoint(checkpoint_file)
            gan.load_state(arrays, meta, source=str(checkpoint_file))
            sampler.order = arrays["data_order"].astype(np.int64)
            sampler.position = int(meta["data_position"])
            fixed_noise = arrays["fixed_noise"].astype(gan.dtype)
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
        full_config = {**(config or {}), **settings, "versions": ckpt.versions()}
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
        return ckpt.save_checkpoint(
            run, gan,
            arrays={"data_order": sampler.order, "fixed_noise": fixed_noise},
            meta={"data_position": sampler.position, "total_iterations": total, "batch_size": batch_size,
                  "config": full_config},
        )

    def write_samples() -> None:
        if run is None:
            return
        from .plots import save_sample_grid

        grid = gan.sample(FIXED_SAMPLES, noise=fixed_noise)
        save_sample_grid(grid, run / "samples" / f"iter_{gan.iteration:06d}.png")

    history: dict[str, list[float]] = {c: [] for c in columns}
    bar = _progress_bar(total, gan.iteration, progress)
    start = time.perf_counter()
    stop = _StopRequest()
    try:
        with stop:
            while gan.iteration < total and stop.signal_name is None:
                batch = images[sampler.next_indices()]
                try:
                    logs = gan.train_step(batch)
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
                    row.update(_quality(gan))
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
                    if it % 25 == 0 or it == total:
                        bar.set_postfix(d_loss=f"{logs['d_loss']:.3f}", g_loss=f"{logs['g_loss']:.3f}",
                                        refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.flush()
    seconds = time.perf_counter() - start

    if run is not None:
        save()
        write_samples()
        _write_plots(run)
        log.close()
    if stop.signal_name is not None:
        where = f"; checkpoint saved to {ckpt.checkpoint_path(run)}, continue with resume=True (--resume)" if run else ""
        print(f"\nstopped by {stop.signal_name} at iteration {gan.iteration}{where}")
    return TrainingResult(history, gan.iteration, stop.signal_name, run, seconds)


def _write_plots(run: Path) -> None:
    from .plots import plot_losses, read_metrics_csv, save_progress_gif_from_run

    metrics = read_metrics_csv(run / "metrics.csv")
    if len(metrics.get("iteration", ())) > 0:
        plot_losses(metrics, run / "losses.png")
    save_progress_gif_from_run(run, run / "progress.gif")


def _quality(gan: GAN) -> dict[str, float]:
    from .metrics import evaluate_samples

    result = evaluate_samples(gan.sample(1000, seed=12345))
    return {key: result[key] for key in EVAL_COLUMNS}


def _optimizer_config(optimizer: Any) -> dict[str, Any]:
    fields = ("lr", "beta1", "beta2", "eps", "weight_decay", "momentum", "nesterov")
    return {"type": type(optimizer).__name__, **{f: getattr(optimizer, f) for f in fields if hasattr(optimizer, f)}}


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
