"""Tell minigan's generated digits from real ones: the Benford detector and the pixel detector, end to end.

How well each detector tells generated digits from real ones, measured as a platform would meet them:

1. two generators: RUN_A (``--checkpoint``; trained here with the BCE loss, seed 0,
   if not given) and RUN_B (``--unseen``; LSGAN loss, seed 1), a differently
   trained generator the detectors never see in training;
2. ``n`` digits from each, saved as 8-bit PNGs exactly as a user would publish
   them (``from_tanh_range`` then ``save_png``) and read back from disk;
3. the real digits: the bundled 5,000 MNIST digits (a seeded subset of ``n`` of
   them when ``n`` < 5000);
4. real and RUN_A digits are split in halves (seeded); :class:`BenfordDetector`
   (the ICPR 2020 divergences plus, by default, the share of blocks with a
   non-zero coefficient) and :class:`PixelDetector` (one hidden layer of 128)
   learn on the training halves and are scored on the
   held-out halves: balanced accuracy, ROC AUC, true-positive rate at 1%
   false positives; then ROC AUC on held-out real vs all RUN_B digits;
5. JPEG robustness: held-out real and fake digits re-saved as JPEG quality 90
   (Pillow, in memory), scored (a) by the detectors trained on PNGs and (b) by
   detectors trained on the JPEG'd training halves.

Writes to ``--out``: ``results.json``, ``results.md`` (the table, also printed),
``benford_chart.png`` (first digits of the quantized DCT coefficients of real vs
generated digits against Benford's law), ``roc.png`` (both detectors, held-out
halves), ``roc_unseen.png``, ``roc_jpeg.png``, and the PNGs in ``fakes_a/`` and
``fakes_b/``. Every random choice comes from ``--seed``: the same inputs give the
same numbers.

Run::

    python examples/benford_detection.py --checkpoint runs/a --unseen runs/b --out runs/benford
    python examples/benford_detection.py --out runs/benford --iterations 10000   # trains both GANs first
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

# The detectors multiply small matrices (batches of 64 x 585 by 585 x 64): one BLAS thread is
# as fast, and a second thread that spins while another process holds the other core
# made their training 50x slower on a busy 2-core machine. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread settings: OpenBLAS reads them when NumPy loads)

import minigan as mg  # noqa: E402
from minigan.benford import (  # noqa: E402
    BenfordDetector,
    PixelDetector,
    balanced_accuracy,
    benford_test,
    quantized_dct,
    roc_auc,
    tpr_at_fpr,
)
from minigan.serialization import atomic_write_text  # noqa: E402

JPEG_QUALITY = 90
N_REAL = 5000
GAN_SETTINGS = {
    "a": {"architecture": "reference", "loss": "bce", "r1": 0.0, "seed": 0},  # plain bce, as the table was measured
    "b": {"architecture": "reference", "loss": "lsgan", "seed": 1},
}


def _log(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)


def get_gan(path: str | None, which: str, out: Path, iterations: int, real: np.ndarray) -> tuple[Any, str]:
    """The GAN of a run directory, or one trained here into ``out/run_<which>`` (resumed if already there)."""
    if path is not None:
        return mg.load_gan(path), str(path)
    settings = GAN_SETTINGS[which]
    run = out / f"run_{which}"
    gan = mg.models.build_gan(settings)
    resume = (run / "checkpoint.npz").exists()
    gan.fit(real, iterations=iterations, out_dir=run, resume=resume, config=dict(settings))
    return gan, str(run)


def publish_and_read_back(gan: Any, n: int, seed: int, folder: Path, ema: bool = True) -> np.ndarray:
    """Generate ``n`` digits, save each as an 8-bit PNG, read them back: uint8 (n, 28, 28)."""
    pixels = mg.datasets.from_tanh_range(gan.sample(n, seed=seed, ema=ema))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.png" for i in range(n)]
    for path, image in zip(paths, pixels):
        mg.datasets.save_png(path, image)
    return np.stack([mg.datasets.read_image(path) for path in paths])


def jpeg(images: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Every image (uint8 (n, h, w)) re-saved as a baseline JPEG in memory and decoded."""
    return np.stack([mg.datasets.jpeg_roundtrip(image, quality) for image in images])


def halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into a training and a held-out half."""
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def scores_of(detector: Any, images: np.ndarray) -> np.ndarray:
    """Probability of "GAN-generated", shape (n,)."""
    return detector.predict_proba(images)[:, 1]


def summarize(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "balanced_accuracy": balanced_accuracy(y, (scores >= 0.5).astype(np.int64)),
        "roc_auc": roc_auc(y, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(y, scores, 0.01),
    }


def make_detectors(seed: int) -> dict[str, Any]:
    return {"benford": BenfordDetector(seed=seed), "pixel": PixelDetector(seed=seed)}


def evaluate(
    real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, seed: int, out: Path, start: float
) -> dict[str, Any]:
    """Fit both detectors on training halves; score held-out halves, the unseen generator and JPEGs."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    real_train, real_test = halves(len(real), rng)
    fake_train, fake_test = halves(len(fake_a), rng)
    x_train = np.concatenate([real[real_train], fake_a[fake_train]])
    y_train = np.r_[np.zeros(real_train.size, np.int64), np.ones(fake_train.size, np.int64)]
    x_test = np.concatenate([real[real_test], fake_a[fake_test]])
    y_test = np.r_[np.zeros(real_test.size, np.int64), np.ones(fake_test.size, np.int64)]
    y_unseen = np.r_[np.zeros(real_test.size, np.int64), np.ones(len(fake_b), np.int64)]
    x_train_jpeg, x_test_jpeg = jpeg(x_train), jpeg(x_test)

    results: dict[str, Any] = {}
    curves: dict[str, dict[str, np.ndarray]] = {"heldout": {}, "unseen": {}, "jpeg": {}}
    for name, detector in make_detectors(seed).items():
        detector.fit(x_train, y_train)
        _log(f"{name}: fitted on {len(x_train)} PNG digits", start)
        s_test = scores_of(detector, x_test)
        s_unseen = np.r_[s_test[: real_test.size], scores_of(detector, fake_b)]
        s_jpeg_png_trained = scores_of(detector, x_test_jpeg)
        jpeg_detector = make_detectors(seed)[name].fit(x_train_jpeg, y_train)
        s_jpeg_jpeg_trained = scores_of(jpeg_detector, x_test_jpeg)
        _log(f"{name}: scored held-out, unseen and JPEG digits", start)
        results[name] = {
            "heldout": summarize(y_test, s_test),
            "unseen_auc": roc_auc(y_unseen, s_unseen),
            "unseen_tpr_at_1pct_fpr": tpr_at_fpr(y_unseen, s_unseen, 0.01),
            "jpeg_auc_png_trained": roc_auc(y_test, s_jpeg_png_trained),
            "jpeg_auc_jpeg_trained": roc_auc(y_test, s_jpeg_jpeg_trained),
            "jpeg_heldout_jpeg_trained": summarize(y_test, s_jpeg_jpeg_trained),
        }
        curves["heldout"][name] = s_test
        curves["unseen"][name] = s_unseen
        curves["jpeg"][f"{name}, trained on PNG"] = s_jpeg_png_trained
        curves["jpeg"][f"{name}, trained on JPEG"] = s_jpeg_jpeg_trained

    from minigan.benford.plots import plot_roc

    plot_roc(y_test, curves["heldout"], out / "roc.png", title="Held-out halves: real vs generated (RUN_A)")
    plot_roc(y_unseen, curves["unseen"], out / "roc_unseen.png", title="Held-out real vs unseen generator (RUN_B)")
    plot_roc(y_test, curves["jpeg"], out / "roc_jpeg.png", title=f"Held-out halves re-saved as JPEG q{JPEG_QUALITY}")
    results["sizes"] = {
        "train_real": int(real_train.size), "train_fake": int(fake_train.size),
        "test_real": int(real_test.size), "test_fake": int(fake_test.size), "unseen_fake": int(len(fake_b)),
    }
    return results


def benford_chart(real: np.ndarray, fake: np.ndarray, path: Path) -> dict[str, Any]:
    """First digits of the quantized DCT coefficients (9 AC, quality 100) of real vs generated digits."""
    from minigan.benford.plots import plot_digit_comparison

    real_test = benford_test(quantized_dct(real)[0])
    fake_test = benford_test(quantized_dct(fake)[0])
    plot_digit_comparison(
        real_test, fake_test, path, labels=("real (bundled MNIST)", "generated (RUN_A, 8-bit PNG)"),
        title="First digits of block-DCT coefficients: real vs generated",
    )
    return {
        "real": {"mad": real_test.mad, "conformity": real_test.conformity, "observed": real_test.observed.tolist()},
        "generated": {"mad": fake_test.mad, "conformity": fake_test.conformity, "observed": fake_test.observed.tolist()},
    }


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| detector | balanced accuracy | ROC AUC | TPR at 1% FPR | AUC, unseen generator "
        f"| AUC, JPEG q{JPEG_QUALITY} (trained on PNG) | AUC, JPEG q{JPEG_QUALITY} (trained on JPEG) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("benford", "pixel"):
        r = results[name]
        h = r["heldout"]
        lines.append(
            f"| {name} | {h['balanced_accuracy']:.4f} | {h['roc_auc']:.4f} | {h['tpr_at_1pct_fpr']:.4f} "
            f"| {r['unseen_auc']:.4f} | {r['jpeg_auc_png_trained']:.4f} | {r['jpeg_auc_jpeg_trained']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="run directory (or checkpoint) of the generator to detect (RUN_A)")
    parser.add_argument("--unseen", help="run directory (or checkpoint) of a generator kept out of training (RUN_B)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=5000, help="digits per generator, and real digits (max 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, splits and detectors (default 0)")
    parser.add_argument("--iterations", type=int, default=10000,
                        help="training iterations of a GAN that is not given (default 10000)")
    parser.add_argument("--no-ema", dest="ema", action="store_false",
                        help="sample the generators' last weights instead of their moving averages (the default)")
    args = parser.parse_args(argv)
    if args.n < 4:
        parser.error(f"--n must be at least 4 (two per half and class), got {args.n}")
    if args.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {args.iterations}")
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    digits, _ = mg.datasets.load("mnist-5k")
    seeds = np.random.SeedSequence(args.seed).generate_state(3)
    real_idx = np.sort(np.random.default_rng(int(seeds[0])).permutation(len(digits))[: min(args.n, N_REAL)])
    real = digits[real_idx]
    gan_a, source_a = get_gan(args.checkpoint, "a", out, args.iterations, digits)
    gan_b, source_b = get_gan(args.unseen, "b", out, args.iterations, digits)
    _log(f"generators: RUN_A = {source_a}, RUN_B = {source_b}", start)
    fake_a = publish_and_read_back(gan_a, args.n, int(seeds[1]), out / "fakes_a", args.ema)
    fake_b = publish_and_read_back(gan_b, args.n, int(seeds[2]), out / "fakes_b", args.ema)
    _log(f"{args.n} digits per generator saved as PNG and read back; {len(real)} real digits", start)

    chart = benford_chart(real, fake_a, out / "benford_chart.png")
    results = evaluate(real, fake_a, fake_b, args.seed, out, start)
    report = {
        "command": {"checkpoint": source_a, "unseen": source_b, "n": args.n, "seed": args.seed,
                    "iterations_if_trained": args.iterations, "ema": args.ema},
        "jpeg_quality": JPEG_QUALITY,
        "benford_chart": chart,
        **results,
    }
    text = table(results)
    atomic_write_text(out / "results.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out / "results.md", f"# Benford and pixel detectors: RUN_A = {source_a}, "
                                          f"unseen RUN_B = {source_b}, n = {args.n}, seed = {args.seed}, "
                                          f"{'averaged' if args.ema else 'last'} generator weights\n\n"
                                          + text + "\n")
    print(text)
    _log(f"results in {out}", start)
    return report


if __name__ == "__main__":
    main()
