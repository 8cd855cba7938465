"""The reference GAN's training iteration in plain NumPy: the baseline minigan must beat.

Matrix products with ``@``, elementwise work as ordinary NumPy expressions, backward
passes and Adam written out by hand; float32 throughout. It does exactly the work of
``minigan.GAN.train_step`` for the reference models (``minigan.models``, after Keras-GAN's ``gan/gan.py``):

1. B fresh noise vectors through G (training mode: BatchNorm uses and updates batch
   statistics) to make B fakes.
2. D forward and backward on the B real images (target 1), then separately on the
   B fakes (target 0); BCE on logits, each gradient weighted 1/2 (the two losses
   averaged); no gradient to D's input. One Adam update of D.
3. B fresh noise vectors through G and D; BCE with target 1; D's backward gives only
   the gradient of its input (no D weight gradients); G's backward; one Adam update of G.

Parameters are kept in a fixed order (see :data:`G_PARAM_NAMES`, :data:`D_PARAM_NAMES`),
the order of ``Sequential.parameters()`` in minigan, so that the same initial weights
can be loaded into all three implementations and their gradients compared.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

F32 = np.float32
LATENT = 100
IMAGE = 784
G_SIZES = (LATENT, 256, 512, 1024, IMAGE)
D_SIZES = (IMAGE, 512, 256, 1)
ALPHA = F32(0.2)  # LeakyReLU slope
BN_MOMENTUM = F32(0.8)  # Keras meaning: running = 0.8 * running + 0.2 * batch
BN_EPS = F32(1e-3)
ADAM = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "eps": 1e-7}  # eps: minigan's (Keras') default

G_PARAM_NAMES = tuple(
    name for i in range(3) for name in (f"W{i}", f"b{i}", f"gamma{i}", f"beta{i}")
) + ("W3", "b3")
D_PARAM_NAMES = ("W0", "b0", "W1", "b1", "W2", "b2")


def glorot_params(rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Keras-style initial weights: glorot-uniform W (in, out), zero biases, gamma 1, beta 0.

    Returns
    -------
    (g_params, d_params), lists of float32 arrays in the order of G_PARAM_NAMES / D_PARAM_NAMES.
    """
    def dense(n_in: int, n_out: int) -> list[np.ndarray]:
        limit = math.sqrt(6.0 / (n_in + n_out))
        return [rng.uniform(-limit, limit, (n_in, n_out)).astype(F32), np.zeros(n_out, F32)]

    g: list[np.ndarray] = []
    for i in range(3):
        g += dense(G_SIZES[i], G_SIZES[i + 1]) + [np.ones(G_SIZES[i + 1], F32), np.zeros(G_SIZES[i + 1], F32)]
    g += dense(G_SIZES[3], G_SIZES[4])
    d: list[np.ndarray] = []
    for i in range(3):
        d += dense(D_SIZES[i], D_SIZES[i + 1])
    return g, d


def leaky_relu(a: np.ndarray) -> np.ndarray:
    return np.where(a > 0, a, ALPHA * a)


def leaky_relu_slope(y: np.ndarray) -> np.ndarray:
    """LeakyReLU's derivative from its output (y > 0 exactly where the input was > 0)."""
    return np.where(y > 0, F32(1.0), ALPHA)


def bce_with_logits(logits: np.ndarray, target: float) -> tuple[float, np.ndarray]:
    """Mean binary cross-entropy of logits (B, 1) against a constant target; returns (loss, dloss/dlogits)."""
    z = logits
    e = np.exp(-np.abs(z))  # never overflows
    loss = np.mean(np.maximum(z, 0) - z * F32(target) + np.log1p(e))
    prob = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return float(loss), ((prob - F32(target)) / F32(z.shape[0])).astype(F32)


class Adam:
    """Adam with bias correction over a list of arrays, updated in place (as minigan's formula)."""

    def __init__(self, params: Sequence[np.ndarray], lr: float, beta1: float, beta2: float, eps: float) -> None:
        self.params = list(params)
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """grads: arrays shaped like the parameters, in the same order."""
        self.t += 1
        b1, b2 = F32(self.beta1), F32(self.beta2)
        step_size = F32(self.lr / (1 - self.beta1**self.t))
        v_scale = F32(1 / math.sqrt(1 - self.beta2**self.t))
        eps = F32(self.eps)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= step_size * m / (np.sqrt(v) * v_scale + eps)


class Generator:
    """z (B, 100) -> 3 x [Dense -> LeakyReLU(0.2) -> BatchNorm] -> Dense -> tanh -> (B, 784)."""

    def __init__(self, params: Sequence[np.ndarray]) -> None:
        self.params = [np.array(p, dtype=F32, copy=True) for p in params]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.running = [(np.zeros(n, F32), np.ones(n, F32)) for n in G_SIZES[1:4]]

    def forward(self, z: np.ndarray) -> np.ndarray:
        """z: (B, 100) -> images (B, 784); keeps what backward needs."""
        p = self.params
        self.cache = []
        h = z
        for i in range(3):
            W, b, gamma, beta = p[4 * i : 4 * i + 4]
            y = leaky_relu(h @ W + b)
            mean = y.mean(axis=0)
            centered = y - mean
            var = (centered * centered).mean(axis=0)
            inv_std = 1 / np.sqrt(var + BN_EPS)
            x_hat = centered * inv_std
            running_mean, running_var = self.running[i]
            running_mean *= BN_MOMENTUM
            running_mean += (1 - BN_MOMENTUM) * mean
            running_var *= BN_MOMENTUM
            running_var += (1 - BN_MOMENTUM) * var
            self.cache.append((h, y, x_hat, inv_std))
            h = gamma * x_hat + beta
        self.h_last = h
        self.out = np.tanh(h @ p[12] + p[13])
        return self.out

    def backward(self, grad_out: np.ndarray) -> None:
        """grad_out: (B, 784). Sets self.grads (no gradient to the noise)."""
        p, g = self.params, self.grads
        n = F32(grad_out.shape[0])
        grad_z = grad_out * (1 - self.out * self.out)
        g[12] = self.h_last.T @ grad_z
        g[13] = grad_z.sum(axis=0)
        grad_h = grad_z @ p[12].T
        for i in (2, 1, 0):
            x_in, y, x_hat, inv_std = self.cache[i]
            gamma = p[4 * i + 2]
            g[4 * i + 3] = grad_h.sum(axis=0)
            g[4 * i + 2] = (grad_h * x_hat).sum(axis=0)
            grad_y = (gamma * inv_std) * (grad_h - g[4 * i + 3] / n - x_hat * (g[4 * i + 2] / n))
            grad_a = grad_y * leaky_relu_slope(y)
            g[4 * i] = x_in.T @ grad_a
            g[4 * i + 1] = grad_a.sum(axis=0)
            if i > 0:
                grad_h = grad_a @ p[4 * i].T


class Discriminator:
    """images (B, 784) -> Dense 512 -> LeakyReLU -> Dense 256 -> LeakyReLU -> Dense 1 -> logits (B, 1)."""

    def __init__(self, params: Sequence[np.ndarray]) -> None:
        self.params = [np.array(p, dtype=F32, copy=True) for p in params]
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (B, 784) -> logits (B, 1); keeps what backward needs."""
        p = self.params
        h1 = leaky_relu(x @ p[0] + p[1])
        h2 = leaky_relu(h1 @ p[2] + p[3])
        self.cache = (x, h1, h2)
        return h2 @ p[4] + p[5]

    def backward(self, grad_logits: np.ndarray, *, weights: bool, accumulate: bool, inputs: bool) -> np.ndarray | None:
        """grad_logits: (B, 1). ``weights``: form weight gradients (added to self.grads when
        ``accumulate``); ``inputs``: return the gradient of the input (B, 784)."""
        p, g = self.params, self.grads
        x, h1, h2 = self.cache
        parts = [None] * 6

        grad = grad_logits
        if weights:
            parts[4], parts[5] = h2.T @ grad, grad.sum(axis=0)
        grad = (grad @ p[4].T) * leaky_relu_slope(h2)
        if weights:
            parts[2], parts[3] = h1.T @ grad, grad.sum(axis=0)
        grad = (grad @ p[2].T) * leaky_relu_slope(h1)
        if weights:
            parts[0], parts[1] = x.T @ grad, grad.sum(axis=0)
            for j, part in enumerate(parts):
                if accumulate:
                    g[j] += part
                else:
                    g[j] = part
        return grad @ p[0].T if inputs else None


class NumpyGAN:
    """The reference GAN's iteration in plain NumPy.

    Parameters
    ----------
    g_params, d_params : lists of float32 arrays
        Initial weights in the order of G_PARAM_NAMES / D_PARAM_NAMES (W as (in, out)).
    seed : int
        Seed of the noise stream: ``default_rng(seed).standard_normal((B, 100), float32)``,
        drawn for the D step then for the G step, as minigan's GAN does.
    """

    def __init__(self, g_params: Sequence[np.ndarray], d_params: Sequence[np.ndarray], seed: int = 0) -> None:
        self.G = Generator(g_params)
        self.D = Discriminator(d_params)
        self.g_opt = Adam(self.G.params, **ADAM)
        self.d_opt = Adam(self.D.params, **ADAM)
        self.rng = np.random.default_rng(seed)

    def train_step(self, real_batch: np.ndarray) -> dict[str, float]:
        """real_batch: float32 (B, 28, 28) or (B, 784) in [-1, 1]. Returns d_loss and g_loss."""
        real = real_batch.reshape(real_batch.shape[0], IMAGE)
        batch = real.shape[0]
        G, D = self.G, self.D

        fake = G.forward(self.rng.standard_normal((batch, LATENT), dtype=F32))
        loss_real, grad = bce_with_logits(D.forward(real), 1.0)
        D.backward(F32(0.5) * grad, weights=True, accumulate=False, inputs=False)
        loss_fake, grad = bce_with_logits(D.forward(fake), 0.0)
        D.backward(F32(0.5) * grad, weights=True, accumulate=True, inputs=False)
        self.d_opt.step(D.grads)

        fake = G.forward(self.rng.standard_normal((batch, LATENT), dtype=F32))
        g_loss, grad = bce_with_logits(D.forward(fake), 1.0)
        G.backward(D.backward(grad, weights=False, accumulate=False, inputs=True))
        self.g_opt.step(G.grads)
        return {"d_loss": 0.5 * (loss_real + loss_fake), "g_loss": g_loss}

    def named_grads(self) -> dict[str, np.ndarray]:
        """The last step's gradients, keyed ``G.W0``, ``D.b2``... (W as (in, out))."""
        out = {f"G.{n}": g for n, g in zip(G_PARAM_NAMES, self.G.grads)}
        out.update({f"D.{n}": g for n, g in zip(D_PARAM_NAMES, self.D.grads)})
        return out


def iteration_gemms(batch: int) -> list[tuple[str, str, int, int, int]]:
    """Every matrix product of one iteration, as (label, kind, rows, in_features, out_features).

    ``kind`` is ``"forward"`` (x (rows, in) @ W (in, out)), ``"input_grad"``
    (G (rows, out) @ W^T (out, in)) or ``"weight_grad"`` (x^T (in, rows) @ G (rows, out)).
    Each costs 2 * rows * in * out FLOPs; the total is the same either way.

    The products are listed as minigan makes them: D has no batch statistics, so the D
    step runs the real batch and the fakes through D as one batch of 2B rows (29
    products). The plain-NumPy and PyTorch versions make the same FLOPs in 37 products
    (two separate D passes of B rows).

    The list, in order:
      D step   G forward on noise: 4 forward products.
               D on [real; fakes] (2B rows): 3 forward;
               weight gradients of all 3 Dense; input gradients of Dense 3 and 2 (not
               Dense 1: its input is data).
      G step   G forward: 4 forward. D forward: 3 forward. D backward: input gradients of
               all 3 Dense (Dense 1's is the gradient of the fakes), no weight gradients.
               G backward: weight gradients of all 4 Dense; input gradients of Dense 4, 3, 2
               (not Dense 1: its input is noise).
    """
    g_layers = [(f"G.dense{i + 1}", G_SIZES[i], G_SIZES[i + 1]) for i in range(4)]
    d_layers = [(f"D.dense{i + 1}", D_SIZES[i], D_SIZES[i + 1]) for i in range(3)]
    products: list[tuple[str, str, int, int, int]] = []
    products += [(f"dstep/G/{n}", "forward", batch, a, b) for n, a, b in g_layers]
    rows = 2 * batch
    products += [(f"dstep/D/{n}", "forward", rows, a, b) for n, a, b in d_layers]
    for i, (n, a, b) in reversed(list(enumerate(d_layers))):
        products.append((f"dstep/D/{n}", "weight_grad", rows, a, b))
        if i > 0:
            products.append((f"dstep/D/{n}", "input_grad", rows, a, b))
    products += [(f"gstep/G/{n}", "forward", batch, a, b) for n, a, b in g_layers]
    products += [(f"gstep/D/{n}", "forward", batch, a, b) for n, a, b in d_layers]
    products += [(f"gstep/D/{n}", "input_grad", batch, a, b) for n, a, b in reversed(d_layers)]
    for i, (n, a, b) in reversed(list(enumerate(g_layers))):
        products.append((f"gstep/G/{n}", "weight_grad", batch, a, b))
        if i > 0:
            products.append((f"gstep/G/{n}", "input_grad", batch, a, b))
    return products
