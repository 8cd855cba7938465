"""What ``GAN.fit`` costs on top of its training steps: the main job's loop, timed by parts.

Runs ``GAN.fit`` on the bundled digits with the settings of ``minigan train`` (batch 64,
a sample grid every 500 iterations, a checkpoint every 1000, the progress bar on, a run
directory) and times, inside that one run, the calls to ``train_step`` and each kind of
work around them:

* sample grids: ``GAN.sample`` of the fixed noise and ``save_sample_grid`` (PNG, atomic);
* checkpoints: ``checkpoint.save_checkpoint`` (``.npz`` + JSON, fsync, atomic);
* loss plots: ``losses.png``, redrawn with every sample grid;
* the GIF: ``progress.gif``, made from the grids at the end of the run;
* the loop itself: batch selection, the progress bar, the metrics log and history
  (the fit's wall-clock time minus everything above).

Each is reported as a share of the time spent in ``train_step``. The wrappers cost two
``perf_counter`` calls each.

Run: ``PYTHONPATH=. python benchmarks/bench_fit.py [--quick]``.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from typing import Any, Callable, Iterator

import minigan as mg
import minigan.checkpoint
import minigan.plots
import minigan.run

import common  # benchmarks/common.py (this folder is on sys.path when run as a script)

PARTS = {
    "sample_grids": "sample grids (generate + PNG)",
    "checkpoints": "checkpoints",
    "loss_plots": "loss plots (losses.png, at every grid)",
    "gif": "progress.gif (at the end)",
    "loop": "loop: batches, progress bar, metrics log",
}


@contextlib.contextmanager
def _timing(targets: list[tuple[Any, str, str]], totals: dict[str, float]) -> Iterator[None]:
    """Replace ``owner.name`` by a wrapper that adds its call time to ``totals[part]``; restore after."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]

    def timed(function: Callable[..., Any], part: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[part] = totals.get(part, 0.0) + time.perf_counter() - start
        return wrapper

    for (owner, name, part), (_, _, function) in zip(targets, originals):
        setattr(owner, name, timed(function, part))
    try:
        yield
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def run(quick: bool = False) -> dict[str, Any]:
    iterations = 1000 if quick else 10_000
    images, _ = mg.datasets.load("mnist-5k")
    gan = mg.models.build_gan({"seed": 0})
    totals: dict[str, float] = {}
    targets = [
        (gan, "train_step", "train_step"),
        (gan, "sample", "sample_grids"),
        (minigan.plots, "save_sample_grid", "sample_grids"),
        (minigan.checkpoint, "save_checkpoint", "checkpoints"),
        (minigan.run, "_write_loss_plot", "loss_plots"),
        (minigan.plots, "save_progress_gif_from_run", "gif"),
    ]
    with tempfile.TemporaryDirectory() as out, _timing(targets, totals), contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        gan.fit(images, iterations=iterations, batch_size=64, out_dir=out, sample_every=500,
                checkpoint_every=1000, progress=True)
        wall = time.perf_counter() - start
    totals["loop"] = wall - sum(totals.values())
    step = totals["train_step"]
    return {
        "iterations": iterations, "batch_size": 64, "fit_s": wall, "train_step_s": step,
        "parts_s": {part: totals[part] for part in PARTS},
        "share_of_train_step": {part: totals[part] / step for part in PARTS},
        "progress_logging_sampling_share": (totals["loop"] + totals["sample_grids"]) / step,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"GAN.fit, {result['iterations']} iterations at batch {result['batch_size']}, the main job's settings: "
             f"{result['fit_s']:.1f} s, of which train_step {result['train_step_s']:.1f} s",
             f"{'part':45s} {'seconds':>8} {'of train_step':>14}"]
    for part, label in PARTS.items():
        lines.append(f"{label:45s} {result['parts_s'][part]:8.2f} {result['share_of_train_step'][part]:14.2%}")
    lines.append(f"{'progress bar + metrics log + sample grids':45s} {'':8} "
                 f"{result['progress_logging_sampling_share']:14.2%}")
    return "\n".join(lines)


def main() -> None:
    common.script_main(__doc__, run, format_table, "1000 iterations instead of 10000")


if __name__ == "__main__":
    main()
