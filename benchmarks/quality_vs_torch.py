"""Is minigan's GAN at least as good as the same GAN in PyTorch, for the same budget?

Trains the reference architecture (Keras-GAN's ``gan/gan.py``, as minigan.models builds it) in PyTorch CPU with PyTorch's
own default initialisation and random streams, with the iteration minigan runs (D on a
real and a separate fake batch, losses averaged, one Adam step; then G through the
frozen D with fresh noise, one Adam step), for the same number of iterations and batch
size on the same bundled digits. Then both generators, in inference mode, make
``--n`` digits that minigan's built-in classifier scores (classifier FID, classes
covered, mean confidence), and a table compares them.

    python benchmarks/quality_vs_torch.py --minigan-run runs/mnist [--iterations 10000]

PyTorch is only needed here (``pip install torch``); minigan never depends on it.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import minigan as mg
from minigan.metrics import evaluate_samples


def train_torch(iterations: int, batch_size: int, seed: int, init: str = "torch", ema: float = 0.0):
    """Train the reference GAN in PyTorch and return its generator (with ``ema`` > 0, a copy
    holding the moving average of its weights, kept on minigan's schedule)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # its spinning OpenMP threads would starve anything else on 2 cores
    rng = np.random.default_rng(seed)
    sizes = (100, 256, 512, 1024)
    g_layers: list[nn.Module] = []
    for i in range(3):  # Keras momentum 0.8 is PyTorch momentum 0.2; Keras eps 1e-3
        g_layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.LeakyReLU(0.2),
                     nn.BatchNorm1d(sizes[i + 1], eps=1e-3, momentum=0.2)]
    G = nn.Sequential(*g_layers, nn.Linear(1024, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                      nn.Linear(256, 1))
    if init == "keras":  # glorot-uniform weights and zero biases, as Keras (and minigan) start
        for layer in (*G, *D):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-7)
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-7)
    images, _ = mg.datasets.load("mnist-5k")
    data = torch.from_numpy(mg.datasets.to_tanh_range(images).reshape(len(images), -1))
    average = None
    if ema:
        import copy

        from minigan.gan import EMA_EVERY

        average = copy.deepcopy(G)
    ones = torch.ones(batch_size, 1)
    zeros = torch.zeros(batch_size, 1)
    order, position = rng.permutation(len(data)), 0
    for step in range(iterations):
        if position + batch_size > len(order):
            order, position = rng.permutation(len(data)), 0
        real = data[order[position:position + batch_size]]
        position += batch_size
        with torch.no_grad():
            fake = G(torch.randn(batch_size, 100))
        d_opt.zero_grad()
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(D(real), ones)
                        + F.binary_cross_entropy_with_logits(D(fake), zeros))
        d_loss.backward()
        d_opt.step()
        D.requires_grad_(False)
        g_opt.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(D(G(torch.randn(batch_size, 100))), ones)
        g_loss.backward()
        g_opt.step()
        D.requires_grad_(True)
        t = step + 1
        if average is not None and t % EMA_EVERY == 0:  # minigan's update: GAN._update_ema
            decay = min(ema, (1.0 + t) / (10.0 + t)) ** EMA_EVERY
            with torch.no_grad():
                for a, p in zip(average.parameters(), G.parameters()):
                    a.mul_(decay).add_(p, alpha=1.0 - decay)
                for a, b in zip(average.buffers(), G.buffers()):
                    a.copy_(b)
    return average if average is not None else G


def torch_samples(G, n: int, seed: int) -> np.ndarray:
    import torch

    G.eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = G(torch.randn(n, 100, generator=generator))
    return out.numpy().reshape(n, 28, 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minigan-run", required=True, help="a minigan run directory to compare")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=5000, help="samples scored per generator")
    parser.add_argument("--json", default=None)
    parser.add_argument("--ema", type=float, default=0.0,
                        help="also average PyTorch's generator weights with this decay, as minigan does "
                             "(default 0: off)")
    parser.add_argument("--init", choices=("torch", "keras"), default="torch",
                        help="PyTorch's default initialisation, or Keras' (glorot-uniform, zero biases) as minigan")
    args = parser.parse_args()

    gan = mg.load_gan(args.minigan_run, models_only=True)
    ours = evaluate_samples(gan.sample(args.n, seed=1))
    start = time.perf_counter()
    G = train_torch(args.iterations, args.batch_size, args.seed, args.init, args.ema)
    seconds = time.perf_counter() - start
    theirs = evaluate_samples(torch_samples(G, args.n, seed=1))

    print(f"{args.iterations} iterations at batch {args.batch_size}; {args.n} samples each "
          f"(PyTorch, {args.init} init{f', weights averaged with decay {args.ema}' if args.ema else ''}, "
          f"trained in {seconds:.0f} s)")
    print(f"{'':<18}{'minigan':>12}{'PyTorch':>12}")
    for key in ("classifier_fid", "classes_covered", "mean_confidence"):
        print(f"{key:<18}{ours[key]:>12.3f}{theirs[key]:>12.3f}")
    print(f"(classifier FID of real vs real {ours['fid_real_vs_real']:.2f}, of noise {ours['fid_noise']:.1f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"minigan": ours, "torch": theirs, "torch_seconds": seconds, **vars(args)}, handle, indent=2)


if __name__ == "__main__":
    main()
