"""The reference GAN's iteration in PyTorch (CPU), for the side-by-side benchmark only.

PyTorch is never a dependency of minigan: ``benchmarks/run.py`` imports this module
only when ``torch`` is importable. The work is exactly that of ``minigan.GAN.train_step``
(see ``numpy_gan.py``): BatchNorm1d in training mode with ``eps=1e-3`` and
``momentum=0.2`` (PyTorch's meaning; Keras' 0.8), fakes for the D step made under
``no_grad``, D's real and fake batches run separately, D frozen with
``requires_grad_(False)`` during the G step so no D weight gradient is formed, and
``torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999), eps=1e-7)`` with its CPU defaults.
Noise comes from the same NumPy stream as in the other two implementations.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from numpy_gan import ADAM, D_PARAM_NAMES, D_SIZES, G_PARAM_NAMES, G_SIZES, IMAGE, LATENT


def _generator() -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [nn.Linear(G_SIZES[i], G_SIZES[i + 1]), nn.LeakyReLU(0.2),
                   nn.BatchNorm1d(G_SIZES[i + 1], eps=1e-3, momentum=0.2)]
    layers += [nn.Linear(G_SIZES[3], G_SIZES[4]), nn.Tanh()]
    return nn.Sequential(*layers)


def _discriminator() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(D_SIZES[0], D_SIZES[1]), nn.LeakyReLU(0.2),
        nn.Linear(D_SIZES[1], D_SIZES[2]), nn.LeakyReLU(0.2),
        nn.Linear(D_SIZES[2], D_SIZES[3]),
    )


def _ordered_params(model: nn.Sequential) -> list[nn.Parameter]:
    """Parameters in minigan's order: per layer W, b (Linear) or gamma, beta (BatchNorm)."""
    return [p for layer in model for p in layer.parameters(recurse=False)]


def _load(model: nn.Sequential, arrays: Sequence[np.ndarray]) -> None:
    params = _ordered_params(model)
    if len(params) != len(arrays):
        raise ValueError(f"expected {len(params)} arrays, got {len(arrays)}")
    with torch.no_grad():
        for p, a in zip(params, arrays):
            a = np.asarray(a, dtype=np.float32)
            p.copy_(torch.from_numpy(np.ascontiguousarray(a.T if a.ndim == 2 else a)))  # Linear keeps W as (out, in)


class TorchGAN:
    """Same constructor and ``train_step`` as :class:`numpy_gan.NumpyGAN`."""

    def __init__(self, g_params: Sequence[np.ndarray], d_params: Sequence[np.ndarray], seed: int = 0) -> None:
        self.G, self.D = _generator(), _discriminator()
        _load(self.G, g_params)
        _load(self.D, d_params)
        self.G.train()
        self.D.train()
        adam = {"lr": ADAM["lr"], "betas": (ADAM["beta1"], ADAM["beta2"]), "eps": ADAM["eps"]}
        self.g_opt = torch.optim.Adam(self.G.parameters(), **adam)
        self.d_opt = torch.optim.Adam(self.D.parameters(), **adam)
        self.rng = np.random.default_rng(seed)
        self._targets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _noise(self, batch: int) -> torch.Tensor:
        return torch.from_numpy(self.rng.standard_normal((batch, LATENT), dtype=np.float32))

    def train_step(self, real_batch: np.ndarray) -> dict[str, float]:
        """real_batch: float32 (B, 28, 28) or (B, 784) in [-1, 1]. Returns d_loss and g_loss."""
        batch = real_batch.shape[0]
        real = torch.from_numpy(real_batch.reshape(batch, IMAGE))
        if batch not in self._targets:
            self._targets[batch] = (torch.ones(batch, 1), torch.zeros(batch, 1))
        ones, zeros = self._targets[batch]

        with torch.no_grad():
            fake = self.G(self._noise(batch))
        self.d_opt.zero_grad()
        loss_real = F.binary_cross_entropy_with_logits(self.D(real), ones)
        loss_fake = F.binary_cross_entropy_with_logits(self.D(fake), zeros)
        d_loss = 0.5 * (loss_real + loss_fake)
        d_loss.backward()
        self.d_opt.step()

        for p in self.D.parameters():
            p.requires_grad_(False)
        self.g_opt.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(self.D(self.G(self._noise(batch))), ones)
        g_loss.backward()
        self.g_opt.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def named_grads(self) -> dict[str, np.ndarray]:
        """The last step's gradients, keyed ``G.W0``, ``D.b2``... (W as (in, out), like minigan)."""
        out: dict[str, np.ndarray] = {}
        for prefix, model, names in (("G", self.G, G_PARAM_NAMES), ("D", self.D, D_PARAM_NAMES)):
            for name, p in zip(names, _ordered_params(model)):
                grad = p.grad.detach().numpy()
                out[f"{prefix}.{name}"] = grad.T if grad.ndim == 2 else grad
        return out


def adam_for(params: Sequence[np.ndarray]) -> tuple[torch.optim.Adam, list[torch.Tensor]]:
    """A torch Adam over copies of ``params`` with random gradients set; returns (optimizer, tensors)."""
    rng = np.random.default_rng(1)
    tensors = []
    for a in params:
        t = torch.nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32, copy=True)))
        t.grad = torch.from_numpy(rng.standard_normal(a.shape, dtype=np.float32))
        tensors.append(t)
    opt = torch.optim.Adam(tensors, lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])
    return opt, tensors
