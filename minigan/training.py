"""One mini-batch training loop, shared by the digit classifier and the detectors.

Each epoch visits the training rows in the order ``epoch_order(epoch)`` gives, in
mini-batches of ``batch_size`` rows; each batch runs forward through the chained
networks, the loss, backward (the first network skips its input gradient, which
nothing uses) and one optimizer step. Everything random (the order, an augmentation)
comes from the callables, so the caller's seed fixes the whole run.

The GAN has its own loop (:meth:`minigan.GAN.train_step`): two networks with
opposed objectives do not fit this one.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["train_minibatches"]


def train_minibatches(
    networks: Sequence[Any],
    loss: Any,
    optimizer: Any,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    epoch_order: Callable[[int], np.ndarray],
    learning_rate: Callable[[int], float] | None = None,
    augment: Callable[[np.ndarray], np.ndarray] | None = None,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``networks`` (applied one after the other) on ``inputs`` and ``targets``.

    Parameters
    ----------
    networks : sequence of minigan.Sequential
        ``networks[-1](... networks[0](x))`` is the model; each is put in training
        mode for the loop and in evaluation mode after it.
    loss : minigan loss
        ``loss.forward(output, targets[batch])`` returns the batch mean;
        ``loss.backward()`` its gradient with respect to the output.
    optimizer : minigan optimizer
        Over the parameters of every network.
    inputs : ndarray, shape (n, ...)
    targets : ndarray, shape (n, ...)
        Indexed with the same rows as ``inputs``.
    epochs, batch_size : int
        Already validated by the caller (>= 1).
    epoch_order : callable epoch -> ndarray of int, shape (m,)
        The rows of one epoch in their order (a permutation, or a class-balanced
        resample with repeats).
    learning_rate : callable step -> float, optional
        Sets ``optimizer.lr`` before each step (step 0, 1, ... over the whole run).
    augment : callable batch -> batch, optional
        Applied to each batch of inputs before the forward pass.
    on_epoch_end : callable (epoch, mean_loss), optional
        Called after each epoch (a progress bar, a printed line).

    Returns
    -------
    list of float
        The mean training loss of each epoch (batch means weighted by batch size).
    """
    for network in networks:
        network.train()
    history: list[float] = []
    step = 0
    for epoch in range(epochs):
        order = epoch_order(epoch)
        total = 0.0
        for start in range(0, order.size, batch_size):
            if learning_rate is not None:
                optimizer.lr = learning_rate(step)
            step += 1
            index = order[start : start + batch_size]
            batch = inputs[index]
            if augment is not None:
                batch = augment(batch)
            optimizer.zero_grad()
            out = batch
            for network in networks:
                out = network.forward(out)
            total += loss.forward(out, targets[index]) * index.shape[0]
            grad = loss.backward()
            for network in reversed(networks[1:]):
                grad = network.backward(grad)
            networks[0].backward(grad, input_grad=False)
            optimizer.step()
        history.append(total / order.size)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history[-1])
    for network in networks:
        network.eval()
    return history
