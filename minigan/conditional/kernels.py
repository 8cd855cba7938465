"""The compiled kernels of the conditional layers: label embeddings and the projection.

Plain functions over arrays, ``@njit(cache=True, error_model="numpy")``, with the
conventions of :mod:`minigan.kernels`: 2-D arrays are ``(batch, features)`` and
C-contiguous, outputs are passed in, loops run in a fixed order (no fastmath), so
results are bit-for-bit reproducible. ``labels`` are integer arrays (N,) whose values
the public API has checked to lie in ``0 .. num_classes - 1``: nothing here checks
them (a label out of range would read or write outside the table).

The gradient of an embedding table is a scatter-add: row ``c`` of ``dL/dE`` is the sum
of the output gradients of the rows whose label is ``c``, and rows no label uses stay
zero. The loops add rows in batch order, so a class used twice gets its two
contributions in a fixed order.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..kernels import GRAD_ADD, GRAD_SKIP, GRAD_WRITE, batch_statistics


@njit(cache=True, error_model="numpy")
def concat_embedding_forward(x, labels, table, y):
    """``y[i] = [x[i], table[labels[i]]]``: x (N, M), table (C, D) -> y (N, M + D)."""
    n, m = x.shape
    d = table.shape[1]
    for i in range(n):
        for j in range(m):
            y[i, j] = x[i, j]
        c = labels[i]
        for j in range(d):
            y[i, m + j] = table[c, j]


@njit(cache=True, error_model="numpy")
def concat_one_hot_forward(x, labels, num_classes, y):
    """``y[i] = [x[i], one_hot(labels[i])]``: x (N, M) -> y (N, M + num_classes)."""
    n, m = x.shape
    zero = y.dtype.type(0)
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            y[i, j] = x[i, j]
        for j in range(num_classes):
            y[i, m + j] = zero
        y[i, m + labels[i]] = one


@njit(cache=True, error_model="numpy")
def scatter_add_rows(grad_y, offset, labels, grad_table, grad_mode):
    """``grad_table[labels[i]] += grad_y[i, offset:offset + D]`` for every row i, in order.

    ``GRAD_WRITE`` zeroes the table's gradient first (rows no label uses end at zero),
    ``GRAD_ADD`` adds into it, ``GRAD_SKIP`` does nothing. grad_y (N, >= offset + D),
    grad_table (C, D).
    """
    if grad_mode == GRAD_SKIP:
        return
    if grad_mode == GRAD_WRITE:
        grad_table[:, :] = 0
    n = grad_y.shape[0]
    d = grad_table.shape[1]
    for i in range(n):
        c = labels[i]
        for j in range(d):
            grad_table[c, j] += grad_y[i, offset + j]


@njit(cache=True, error_model="numpy")
def leading_columns(grad_y, m, grad_x):
    """``grad_x = grad_y[:, :m]`` (N, m): the input's share of a concatenation's gradient."""
    n = grad_x.shape[0]
    for i in range(n):
        for j in range(m):
            grad_x[i, j] = grad_y[i, j]


@njit(cache=True, error_model="numpy")
def projection_forward(h, labels, w, b, table, y):
    """``y[i, 0] = sum_j h[i, j] * (w[j, 0] + table[labels[i], j]) + b[0]``.

    h (N, H), w (H, 1), b (1,), table (C, H) -> y (N, 1).
    """
    n, k = h.shape
    for i in range(n):
        c = labels[i]
        acc = h.dtype.type(0)
        for j in range(k):
            acc += h[i, j] * (w[j, 0] + table[c, j])
        y[i, 0] = acc + b[0]


@njit(cache=True, error_model="numpy")
def _store(acc, grad, grad_mode):
    """``grad = acc`` (GRAD_WRITE) or ``grad += acc`` (GRAD_ADD), any shape."""
    flat_acc = acc.reshape(-1)
    flat = grad.reshape(-1)
    if grad_mode == GRAD_WRITE:
        for j in range(flat.size):
            flat[j] = flat_acc[j]
    elif grad_mode == GRAD_ADD:
        for j in range(flat.size):
            flat[j] += flat_acc[j]


@njit(cache=True, error_model="numpy")
def projection_backward(grad_y, h, labels, w, table, grad_h, grad_w, grad_b, grad_table, grad_mode, input_grad):
    """Backward of :func:`projection_forward` with ``g = grad_y[:, 0]``:

    ``dL/dh[i] = g_i (w + table[c_i])`` (when ``input_grad``), ``dL/dw = sum_i g_i h[i]``,
    ``dL/db = sum_i g_i``, ``dL/dtable[c] = sum_{i: c_i = c} g_i h[i]`` (a scatter-add),
    stored by ``grad_mode``.
    """
    n, k = h.shape
    if input_grad:
        for i in range(n):
            c = labels[i]
            g = grad_y[i, 0]
            for j in range(k):
                grad_h[i, j] = g * (w[j, 0] + table[c, j])
    if grad_mode == GRAD_SKIP:
        return
    acc_w = grad_w.copy()
    acc_w[:, :] = 0
    acc_b = grad_b.copy()
    acc_b[:] = 0
    if grad_mode == GRAD_WRITE:
        grad_table[:, :] = 0
    for i in range(n):
        c = labels[i]
        g = grad_y[i, 0]
        acc_b[0] += g
        for j in range(k):
            acc_w[j, 0] += g * h[i, j]
            grad_table[c, j] += g * h[i, j]
    _store(acc_w, grad_w, grad_mode)
    _store(acc_b, grad_b, grad_mode)


@njit(cache=True, error_model="numpy")
def projection_tangent_forward(h_dot, labels, w, table, y_dot):
    """``y_dot[i, 0] = sum_j h_dot[i, j] * (w[j, 0] + table[labels[i], j])`` (the bias drops out)."""
    n, k = h_dot.shape
    for i in range(n):
        c = labels[i]
        acc = h_dot.dtype.type(0)
        for j in range(k):
            acc += h_dot[i, j] * (w[j, 0] + table[c, j])
        y_dot[i, 0] = acc


@njit(cache=True, error_model="numpy")
def projection_tangent_backward(grad_y, grad_y_dot, has_dot, h, h_dot, labels, w, table,
                                grad_h_dot, grad_w, grad_b, grad_table, grad_mode):
    """The tangent of :func:`projection_backward` along ``(h_dot, grad_y_dot)``, with
    ``g = grad_y[:, 0]`` and ``g_dot = grad_y_dot[:, 0]`` (zero unless ``has_dot``):

    ``R{dL/dh[i]} = g_dot_i (w + table[c_i])`` (written only when ``has_dot``),
    ``R{dL/dw} = sum_i (g_i h_dot[i] + g_dot_i h[i])``, ``R{dL/db} = sum_i g_dot_i``,
    ``R{dL/dtable[c]} = sum_{i: c_i = c} (g_i h_dot[i] + g_dot_i h[i])``, stored by ``grad_mode``.
    """
    n, k = h.shape
    if has_dot:
        for i in range(n):
            c = labels[i]
            g_dot = grad_y_dot[i, 0]
            for j in range(k):
                grad_h_dot[i, j] = g_dot * (w[j, 0] + table[c, j])
    if grad_mode == GRAD_SKIP:
        return
    acc_w = grad_w.copy()
    acc_w[:, :] = 0
    acc_b = grad_b.copy()
    acc_b[:] = 0
    if grad_mode == GRAD_WRITE:
        grad_table[:, :] = 0
    for i in range(n):
        c = labels[i]
        g = grad_y[i, 0]
        g_dot = grad_y_dot[i, 0] if has_dot else h.dtype.type(0)
        acc_b[0] += g_dot
        for j in range(k):
            value = g * h_dot[i, j] + g_dot * h[i, j]
            acc_w[j, 0] += value
            grad_table[c, j] += value
    _store(acc_w, grad_w, grad_mode)
    _store(acc_b, grad_b, grad_mode)


# ----------------------------------------------------------------------------
# Conditional BatchNorm: batch statistics shared, scale and shift per class
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def conditional_batchnorm_forward(x, labels, gamma, beta, eps, momentum, training, running_mean, running_var,
                                  y, x_hat, inv_std):
    """``y[i] = gamma[c_i] * x_hat[i] + beta[c_i]`` with ``x_hat`` normalized per feature.

    Training mode: the batch mean and biased variance (two passes), and the running
    statistics move as in Keras (``running = momentum * running + (1 - momentum) * batch``),
    exactly as :func:`minigan.kernels.batchnorm_forward_train`; evaluation mode: the
    running statistics. x (N, F), gamma and beta (C, F) -> y, x_hat (N, F), inv_std (F,).
    """
    n, m = x.shape
    if training:
        mean = batch_statistics(x, eps, momentum, running_mean, running_var, inv_std)
    else:
        mean = np.zeros(m, dtype=x.dtype)
        for j in range(m):
            mean[j] = running_mean[j]
            inv_std[j] = 1 / np.sqrt(running_var[j] + eps)
    for i in range(n):
        c = labels[i]
        for j in range(m):
            h = (x[i, j] - mean[j]) * inv_std[j]
            x_hat[i, j] = h
            y[i, j] = gamma[c, j] * h + beta[c, j]


@njit(cache=True, error_model="numpy")
def conditional_batchnorm_backward(grad_y, x_hat, labels, gamma, inv_std, training, grad_x, grad_gamma, grad_beta,
                                   grad_mode):
    """Backward of :func:`conditional_batchnorm_forward` with ``g = grad_y``:

    ``dbeta[c] = sum_{i: c_i = c} g_i``, ``dgamma[c] = sum_{i: c_i = c} g_i x_hat_i`` (scatter-adds,
    stored by ``grad_mode``); with ``u_i = g_i gamma[c_i]`` (the gradient of ``x_hat``),
    ``dx_i = inv_std (u_i - mean_i(u) - x_hat_i mean_i(u x_hat))`` in training mode (the batch
    statistics depend on every row) and ``dx_i = inv_std u_i`` in evaluation mode.
    """
    n, m = grad_y.shape
    if grad_mode == GRAD_WRITE:
        grad_gamma[:, :] = 0
        grad_beta[:, :] = 0
    if grad_mode != GRAD_SKIP:
        for i in range(n):
            c = labels[i]
            for j in range(m):
                g = grad_y[i, j]
                grad_beta[c, j] += g
                grad_gamma[c, j] += g * x_hat[i, j]
    if training:
        s1 = np.zeros(m, dtype=grad_y.dtype)
        s2 = np.zeros(m, dtype=grad_y.dtype)
        for i in range(n):
            c = labels[i]
            for j in range(m):
                u = grad_y[i, j] * gamma[c, j]
                s1[j] += u
                s2[j] += u * x_hat[i, j]
        for j in range(m):
            s1[j] /= n
            s2[j] /= n
        for i in range(n):
            c = labels[i]
            for j in range(m):
                grad_x[i, j] = inv_std[j] * (grad_y[i, j] * gamma[c, j] - s1[j] - x_hat[i, j] * s2[j])
    else:
        for i in range(n):
            c = labels[i]
            for j in range(m):
                grad_x[i, j] = grad_y[i, j] * gamma[c, j] * inv_std[j]


@njit(cache=True, error_model="numpy")
def conditional_batchnorm_eval_tangent_forward(x_dot, labels, gamma, inv_std, y_dot):
    """Tangent of evaluation-mode conditional BatchNorm: ``y_dot_i = x_dot_i gamma[c_i] inv_std``."""
    n, m = x_dot.shape
    for i in range(n):
        c = labels[i]
        for j in range(m):
            y_dot[i, j] = x_dot[i, j] * (gamma[c, j] * inv_std[j])


@njit(cache=True, error_model="numpy")
def conditional_batchnorm_eval_tangent_backward(grad_y, grad_y_dot, has_dot, x_hat, x_dot, labels, gamma, inv_std,
                                                grad_x_dot, grad_gamma, grad_beta, grad_mode):
    """Tangent of the evaluation-mode backward along ``(x_dot, grad_y_dot)`` (zero unless ``has_dot``):

    ``R{dgamma[c]} = sum_{i: c_i = c} (g_dot_i x_hat_i + g_i x_dot_i inv_std)``,
    ``R{dbeta[c]} = sum_{i: c_i = c} g_dot_i``, ``R{dx_i} = g_dot_i gamma[c_i] inv_std``
    (written only when ``has_dot``).
    """
    n, m = grad_y.shape
    if grad_mode == GRAD_WRITE:
        grad_gamma[:, :] = 0
        grad_beta[:, :] = 0
    for i in range(n):
        c = labels[i]
        for j in range(m):
            curvature = grad_y[i, j] * x_dot[i, j] * inv_std[j]
            if has_dot:
                g_dot = grad_y_dot[i, j]
                grad_x_dot[i, j] = g_dot * (gamma[c, j] * inv_std[j])
                if grad_mode != GRAD_SKIP:
                    grad_gamma[c, j] += g_dot * x_hat[i, j] + curvature
                    grad_beta[c, j] += g_dot
            elif grad_mode != GRAD_SKIP:
                grad_gamma[c, j] += curvature
