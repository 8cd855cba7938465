"""The article's GAN, in minigan: dense generator and discriminator trained on MNIST digits.

The models are the article's, in the canonical form of Keras-GAN's ``gan/gan.py``
(github.com/eriklindernoren/Keras-GAN): G maps 100 noise values
through Dense 256/512/1024 (LeakyReLU 0.2, BatchNorm momentum 0.8) to 784 tanh pixels;
D maps 784 pixels through Dense 512/256 (LeakyReLU 0.2) to one logit. Both learn with
Adam(2e-4, beta1=0.5) on binary cross-entropy. The data are the 5,000 MNIST digits that
ship with minigan, so nothing is downloaded.

Run: ``python examples/train_mnist.py --iterations 2000`` (a few minutes on 2 cores).
The run directory gets metrics.csv, samples/, losses.png, progress.gif, a checkpoint,
and ``digits.png``: 64 digits from the trained generator.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import minigan as mg
from minigan.datasets import load_bundled_mnist, to_tanh_range
from minigan.optim import Adam
from minigan.plots import save_sample_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the article's dense GAN on the bundled MNIST digits.")
    parser.add_argument("--iterations", type=int, default=2000, help="training iterations (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default="runs/train_mnist", help="run directory (default runs/train_mnist)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args(argv)

    digits, _ = load_bundled_mnist()  # uint8 (5000, 28, 28)
    real = to_tanh_range(digits)  # float32 in [-1, 1], the range of G's tanh

    init = np.random.default_rng(args.seed)
    generator = mg.models.reference_generator(latent_dim=100, image_shape=(28, 28), rng=init)
    discriminator = mg.models.reference_discriminator(image_shape=(28, 28), rng=init)
    gan = mg.GAN(
        generator, discriminator, latent_dim=100, loss="bce", seed=args.seed,
        g_optimizer=Adam(generator.parameters(), lr=2e-4, beta1=0.5, beta2=0.999),
        d_optimizer=Adam(discriminator.parameters(), lr=2e-4, beta1=0.5, beta2=0.999),
    )
    print(generator.summary(), discriminator.summary(), sep="\n\n")

    # Each iteration: one D update on a real and a fake batch, then one G update through the frozen D.
    result = gan.fit(real, iterations=args.iterations, batch_size=args.batch_size, out_dir=args.out,
                     sample_every=500, checkpoint_every=500, resume=args.resume)

    grid = save_sample_grid(gan.sample(64, seed=1), Path(args.out) / "digits.png")
    print(f"{result}; 64 generated digits in {grid}")


if __name__ == "__main__":
    main()
