"""The compiled kernels of the layers, losses and optimizers.

These are plain functions over arrays, compiled with ``@njit(cache=True)``. They
do the memory-bound work of a training step -- bias + activation, activation
derivative + bias gradient, BatchNorm, losses, optimizer updates -- each in as
few sweeps over memory as the math allows. (The Benford detector's kernels live
beside it, in :mod:`minigan.benford.kernels`.) Matrix products are not here: the
layers call BLAS through NumPy's ``matmul`` around these kernels.

Conventions
-----------
* 2-D arrays are ``(batch, features)`` and C-contiguous; 1-D arrays are per-feature.
* Outputs are passed in (``out`` arguments) so that callers control allocation.
* Loops run in a fixed order, with no ``fastmath``, so that results are
  bit-for-bit reproducible and gradients checkable. ``error_model="numpy"``
  lets a division by zero give inf/NaN as NumPy does instead of raising; that
  removes a per-element check and lets LLVM vectorize loops with ``/`` and
  ``sqrt`` (the Adam update ran 1.8 ms per million float32 values scalar).
  It changes no result: inputs are validated before any kernel runs.
* The activation is selected by an integer code (``ACT_*``); its derivative is
  computed from the activation's *output* ``y``, so the pre-activation need not be kept.

Nothing here validates its input: the public API does that
(:mod:`minigan._validation`) before any kernel runs.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

ACT_IDENTITY = 0
ACT_RELU = 1
ACT_LEAKY_RELU = 2
ACT_TANH = 3
ACT_SIGMOID = 4

# What a backward kernel does with a parameter gradient.
GRAD_SKIP = 0   # leave it alone (e.g. the frozen discriminator in the generator step)
GRAD_WRITE = 1  # overwrite it (the first backward after the gradients were logically cleared)
GRAD_ADD = 2    # add into it (the public contract of Layer.backward)


# ----------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def _activate(v, alpha):
    # (Leaky) ReLU; ``alpha`` carries the array's dtype, so float32 math stays float32.
    return v if v > 0 else v * alpha


@njit(cache=True, error_model="numpy", inline="always")
def _derivative_from_output(y, kind, alpha, one):
    # Valid because every activation here is monotone and, for the (leaky) ReLU
    # with alpha >= 0, y > 0 exactly when the input was > 0.
    if kind == ACT_RELU or kind == ACT_LEAKY_RELU:
        return one if y > 0 else alpha
    if kind == ACT_TANH:
        return one - y * y
    if kind == ACT_SIGMOID:
        return y * (one - y)
    return one


@njit(cache=True, error_model="numpy")
def activation_backward(grad_y, y, kind, alpha, grad_x):
    """``grad_x = grad_y * act'(.)`` computed from the activation output ``y``."""
    n, m = y.shape
    a = y.dtype.type(alpha)
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            grad_x[i, j] = grad_y[i, j] * _derivative_from_output(y[i, j], kind, a, one)


@njit(cache=True, error_model="numpy")
def bias_activation_forward(z, b, kind, alpha, y):
    """Fused ``y[i, j] = act(z[i, j] + b[j])`` for ``kind`` in ACT_IDENTITY (the bias
    only), ACT_RELU and ACT_LEAKY_RELU, in one sweep. Tanh and sigmoid go through
    :func:`bias_activation` (NumPy's SIMD ufuncs). ``y`` may be ``z``, but then
    :func:`bias_activation_inplace` is faster (see there)."""
    n, m = z.shape
    a = z.dtype.type(alpha)
    if kind == ACT_IDENTITY:
        for i in range(n):
            for j in range(m):
                y[i, j] = z[i, j] + b[j]
    else:
        for i in range(n):
            for j in range(m):
                y[i, j] = _activate(z[i, j] + b[j], a)


@njit(cache=True, error_model="numpy")
def bias_activation_inplace(y, b, kind, alpha):
    """:func:`bias_activation_forward` with ``z = y``: ``y[i, j] = act(y[i, j] + b[j])`` in place.

    The same numbers, but ~7x faster at 64 x 512 (4 us against 30 us): with two array
    arguments LLVM vectorizes the loop only behind a run-time check that they do not
    overlap, and an in-place call fails that check and runs the scalar loop; with one
    array (and ``b``, which does not overlap it) the vectorized loop runs.
    """
    n, m = y.shape
    a = y.dtype.type(alpha)
    if kind == ACT_IDENTITY:
        for i in range(n):
            for j in range(m):
                y[i, j] = y[i, j] + b[j]
    else:
        for i in range(n):
            for j in range(m):
                y[i, j] = _activate(y[i, j] + b[j], a)


@njit(cache=True, error_model="numpy")
def sigmoid_from_exp(y, e):
    """Given ``y = v`` and ``e = exp(-|v|)``, write ``y = sigmoid(v)`` in place:
    ``1 / (1 + e)`` for ``v >= 0`` and ``e / (1 + e)`` otherwise (never overflows,
    keeps full relative precision for very negative v)."""
    n, m = y.shape
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            if y[i, j] >= 0:
                y[i, j] = one / (one + e[i, j])
            else:
                y[i, j] = e[i, j] / (one + e[i, j])


def bias_activation(z, b, kind, alpha, y):
    """``y = act(z + b)``: the entry point the layers use (``b=None`` for no bias).

    Numba compiles ``tanh`` and ``exp`` to a scalar libm call per element, which
    measured ~90x slower than NumPy's SIMD ``np.tanh`` (756 us against 8.6 us at
    64 x 784), so tanh and sigmoid add the bias in a kernel sweep and then use
    NumPy's vectorized ufuncs; every other activation is one fused sweep.
    """
    if b is None and kind == ACT_TANH:
        np.tanh(z, out=y)
        return
    if b is None:
        b = np.zeros(z.shape[1], dtype=z.dtype)
    smooth = kind == ACT_TANH or kind == ACT_SIGMOID
    sweep = ACT_IDENTITY if smooth else kind  # tanh and sigmoid: the bias in the sweep, then NumPy
    if y is z:
        bias_activation_inplace(y, b, sweep, alpha)
    else:
        bias_activation_forward(z, b, sweep, alpha, y)
    if kind == ACT_TANH:
        np.tanh(y, out=y)
    elif kind == ACT_SIGMOID:
        e = np.abs(y)
        np.negative(e, out=e)
        with np.errstate(under="ignore"):  # exp(-|v|) -> 0 for large |v| is the right answer
            np.exp(e, out=e)
        sigmoid_from_exp(y, e)


@njit(cache=True, error_model="numpy")
def activation_backward_bias_grad(grad_y, y, kind, alpha, grad_z, grad_b, grad_mode):
    """Fused backward of ``y = act(z + b)``.

    ``grad_z[i, j] = grad_y[i, j] * act'(y[i, j])`` and ``grad_b[j] (+)= sum_i grad_z[i, j]``
    (by ``grad_mode``) in one sweep. ``grad_z`` may be ``grad_y``.
    """
    n, m = y.shape
    a = y.dtype.type(alpha)
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            grad_z[i, j] = grad_y[i, j] * _derivative_from_output(y[i, j], kind, a, one)
    column_sums(grad_z, grad_b, grad_mode)


@njit(cache=True, error_model="numpy")
def column_sums(x, out, grad_mode):
    """``out[j] = sum_i x[i, j]`` (GRAD_WRITE) or ``out[j] += ...`` (GRAD_ADD); rows summed in order."""
    if grad_mode == GRAD_SKIP:
        return
    n, m = x.shape
    acc = np.zeros(m, dtype=x.dtype)
    for i in range(n):
        for j in range(m):
            acc[j] += x[i, j]
    _store_grad(acc, out, grad_mode)


@njit(cache=True, error_model="numpy", inline="always")
def _store_grad(value, grad, grad_mode):
    """``grad = value`` (GRAD_WRITE), ``grad += value`` (GRAD_ADD), or nothing (GRAD_SKIP)."""
    if grad_mode == GRAD_WRITE:
        for j in range(grad.size):
            grad[j] = value[j]
    elif grad_mode == GRAD_ADD:
        for j in range(grad.size):
            grad[j] += value[j]


@njit(cache=True, error_model="numpy")
def multiply(x, mask, out):
    """``out = x * mask`` elementwise over 2-D arrays (the Dropout pass)."""
    n, m = x.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = x[i, j] * mask[i, j]


@njit(cache=True, error_model="numpy")
def dropout_mask(uniform, rate, mask):
    """``mask = (uniform >= rate) / (1 - rate)``: inverted dropout's scaled keep mask."""
    keep_scale = mask.dtype.type(1.0 / (1.0 - rate))
    n, m = uniform.shape
    for i in range(n):
        for j in range(m):
            mask[i, j] = keep_scale if uniform[i, j] >= rate else mask.dtype.type(0)


# ----------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def batch_statistics(x, eps, momentum, running_mean, running_var, inv_std):
    """The batch mean (returned, (F,)) and ``inv_std = 1 / sqrt(var + eps)`` of x (N, F) over
    the batch axis, and the running statistics' update (shared by the BatchNorm kernels).

    ``mean_j = (1/N) sum_i x_ij``, ``var_j = (1/N) sum_i (x_ij - mean_j)^2`` (biased, two
    passes for accuracy); ``running = momentum * running + (1 - momentum) * batch`` (Keras).
    """
    n, m = x.shape
    mean = np.zeros(m, dtype=x.dtype)
    var = np.zeros(m, dtype=x.dtype)
    for i in range(n):
        for j in range(m):
            mean[j] += x[i, j]
    for j in range(m):
        mean[j] /= n
    for i in range(n):
        for j in range(m):
            d = x[i, j] - mean[j]
            var[j] += d * d
    for j in range(m):
        var[j] /= n
        inv_std[j] = 1 / np.sqrt(var[j] + eps)
        running_mean[j] = momentum * running_mean[j] + (1 - momentum) * mean[j]
        running_var[j] = momentum * running_var[j] + (1 - momentum) * var[j]
    return mean


@njit(cache=True, error_model="numpy")
def batchnorm_forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, y, x_hat, inv_std):
    """Training-mode BatchNorm over the batch axis, and the running-statistics update.

    ``mean_j = (1/N) sum_i x_ij``, ``var_j = (1/N) sum_i (x_ij - mean_j)^2`` (biased),
    ``x_hat = (x - mean) / sqrt(var + eps)``, ``y = gamma * x_hat + beta``;
    ``running = momentum * running + (1 - momentum) * batch`` (the Keras convention,
    with the biased batch variance as Keras uses). Two-pass variance for accuracy.
    """
    n, m = x.shape
    mean = batch_statistics(x, eps, momentum, running_mean, running_var, inv_std)
    for i in range(n):
        for j in range(m):
            h = (x[i, j] - mean[j]) * inv_std[j]
            x_hat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


@njit(cache=True, error_model="numpy")
def batchnorm_forward_eval(x, gamma, beta, eps, running_mean, running_var, y, x_hat, inv_std):
    """Inference-mode BatchNorm with the running statistics (same outputs as training mode)."""
    n, m = x.shape
    for j in range(m):
        inv_std[j] = 1 / np.sqrt(running_var[j] + eps)
    for i in range(n):
        for j in range(m):
            h = (x[i, j] - running_mean[j]) * inv_std[j]
            x_hat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


@njit(cache=True, error_model="numpy")
def batchnorm_backward_train(grad_y, x_hat, gamma, inv_std, grad_x, grad_gamma, grad_beta, grad_mode):
    """Backward of training-mode BatchNorm in two sweeps.

    With ``s1_j = sum_i g_ij`` and ``s2_j = sum_i g_ij x_hat_ij``:
    ``dbeta_j += s1_j``, ``dgamma_j += s2_j`` and
    ``dx_ij = gamma_j inv_std_j (g_ij - s1_j / N - x_hat_ij s2_j / N)``
    (the batch mean and variance depend on every row, hence the two correction terms).
    """
    n, m = grad_y.shape
    s1 = np.zeros(m, dtype=grad_y.dtype)
    s2 = np.zeros(m, dtype=grad_y.dtype)
    for i in range(n):
        for j in range(m):
            g = grad_y[i, j]
            s1[j] += g
            s2[j] += g * x_hat[i, j]
    _store_grad(s1, grad_beta, grad_mode)
    _store_grad(s2, grad_gamma, grad_mode)
    for j in range(m):
        s1[j] /= n
        s2[j] /= n
    for i in range(n):
        for j in range(m):
            grad_x[i, j] = gamma[j] * inv_std[j] * (grad_y[i, j] - s1[j] - x_hat[i, j] * s2[j])


@njit(cache=True, error_model="numpy")
def batchnorm_backward_eval(grad_y, x_hat, gamma, inv_std, grad_x, grad_gamma, grad_beta, grad_mode):
    """Backward of inference-mode BatchNorm: the statistics are constants,
    so ``dx = g * gamma * inv_std``; ``dgamma (+)= sum g x_hat``, ``dbeta (+)= sum g``."""
    n, m = grad_y.shape
    s1 = np.zeros(m, dtype=grad_y.dtype)
    s2 = np.zeros(m, dtype=grad_y.dtype)
    for i in range(n):
        for j in range(m):
            g = grad_y[i, j]
            s1[j] += g
            s2[j] += g * x_hat[i, j]
            grad_x[i, j] = g * gamma[j] * inv_std[j]
    _store_grad(s1, grad_beta, grad_mode)
    _store_grad(s2, grad_gamma, grad_mode)


# ----------------------------------------------------------------------------
# Losses: each kernel returns the summed loss and writes d(sum / denominator)/d(pred)
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def bce_with_logits(logits, target, denominator, grad):
    """Stable binary cross-entropy on logits, summed; ``grad = (sigmoid(z) - t) / denominator``
    (the gradient of the sum divided by ``denominator``: the mean for ``pred.size``).

    ``l(z, t) = max(z, 0) - z t + log(1 + exp(-|z|))`` never overflows.
    """
    z = logits.ravel()
    t = target.ravel()
    g = grad.ravel()
    total = 0.0
    for k in range(z.size):
        v = z[k]
        total += max(v, 0.0) - v * t[k] + math.log1p(math.exp(-abs(v)))
        if v >= 0:
            s = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            s = e / (1.0 + e)
        g[k] = (s - t[k]) / denominator
    return total


@njit(cache=True, error_model="numpy")
def bce_on_probabilities(prob, target, clip_eps, denominator, grad):
    """Binary cross-entropy on probabilities clipped to ``[eps, 1 - eps]`` (Keras'
    ``binary_crossentropy``), summed; the gradient of the clipped function."""
    p = prob.ravel()
    t = target.ravel()
    g = grad.ravel()
    total = 0.0
    lo = clip_eps
    hi = 1.0 - clip_eps
    for k in range(p.size):
        v = p[k]
        clipped = v < lo or v > hi
        q = min(max(v, lo), hi)
        total += -(t[k] * math.log(q) + (1.0 - t[k]) * math.log(1.0 - q))
        g[k] = 0.0 if clipped else (-t[k] / q + (1.0 - t[k]) / (1.0 - q)) / denominator
    return total


@njit(cache=True, error_model="numpy")
def squared_error(pred, target, denominator, grad):
    """``sum (p - t)^2`` and ``grad = 2 (p - t) / denominator``."""
    p = pred.ravel()
    t = target.ravel()
    g = grad.ravel()
    total = 0.0
    for k in range(p.size):
        d = p[k] - t[k]
        total += d * d
        g[k] = 2.0 * d / denominator
    return total


@njit(cache=True, error_model="numpy")
def hinge(pred, target, denominator, grad):
    """``sum max(0, 1 - s p)`` with the sign ``s = +1`` for target 1 (real) and ``-1`` for
    target 0 or -1 (fake); ``grad = -s [1 - s p > 0] / denominator``."""
    p = pred.ravel()
    t = target.ravel()
    g = grad.ravel()
    total = 0.0
    for k in range(p.size):
        s = 1.0 if t[k] > 0 else -1.0
        margin = 1.0 - s * p[k]
        if margin > 0:
            total += margin
            g[k] = -s / denominator
        else:
            g[k] = 0.0
    return total


@njit(cache=True, error_model="numpy")
def wasserstein(pred, target, denominator, grad):
    """``sum -s p`` with the sign ``s = +1`` for target 1 (real: the critic raises its score)
    and ``-1`` for target 0 or -1 (fake); ``grad = -s / denominator``."""
    p = pred.ravel()
    t = target.ravel()
    g = grad.ravel()
    total = 0.0
    for k in range(p.size):
        s = 1.0 if t[k] > 0 else -1.0
        total += -s * p[k]
        g[k] = -s / denominator
    return total


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy(logits, labels, probs, grad):
    """Mean-reduced softmax cross-entropy over integer labels, summed loss returned.

    ``probs`` receives the softmax; ``grad = (probs - onehot(labels)) / n``.
    """
    n, m = logits.shape
    total = 0.0
    for i in range(n):
        peak = logits[i, 0]
        for j in range(1, m):
            peak = max(peak, logits[i, j])
        norm = 0.0
        for j in range(m):
            e = math.exp(logits[i, j] - peak)
            probs[i, j] = e
            norm += e
        for j in range(m):
            probs[i, j] /= norm
            grad[i, j] = probs[i, j] / n
        label = labels[i]
        grad[i, label] -= 1.0 / n
        total += -(logits[i, label] - peak - math.log(norm))
    return total


# ----------------------------------------------------------------------------
# Optimizers (flat 1-D views of a parameter and its state)
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def _adam_constants(param, lr, beta1, beta2, eps, weight_decay, step):
    dt = param.dtype.type
    c1 = 1.0 - beta1**step
    c2 = 1.0 - beta2**step
    return (dt(beta1), dt(beta2), dt(1.0 - beta1), dt(1.0 - beta2), dt(1.0 / c1), dt(1.0 / c2),
            dt(lr), dt(eps), dt(weight_decay))


@njit(cache=True, error_model="numpy", inline="always")
def _adam_element(param, grad, m, v, k, b1, b2, one_b1, one_b2, inv_c1, inv_c2, lr, eps, wd):
    g = grad[k]
    if wd != 0:
        g = g + wd * param[k]
    mk = b1 * m[k] + one_b1 * g
    vk = b2 * v[k] + one_b2 * g * g
    m[k] = mk
    v[k] = vk
    param[k] -= lr * (mk * inv_c1) / (np.sqrt(vk * inv_c2) + eps)


@njit(cache=True, error_model="numpy")
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One Adam step (Kingma & Ba 2015, Algorithm 1) on flat arrays, in one sweep.

    ``g = grad + weight_decay * param`` (L2 penalty, as PyTorch's Adam),
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``param -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """
    b1, b2, one_b1, one_b2, inv_c1, inv_c2, lr_t, eps_t, wd = _adam_constants(
        param, lr, beta1, beta2, eps, weight_decay, step)
    for k in range(param.size):
        _adam_element(param, grad, m, v, k, b1, b2, one_b1, one_b2, inv_c1, inv_c2, lr_t, eps_t, wd)


@njit(cache=True, error_model="numpy")
def sgd_update(param, grad, buf, lr, momentum, nesterov, weight_decay):
    """SGD with optional (Nesterov) momentum and L2 weight decay, PyTorch convention:
    ``g = grad + wd p``; ``buf = momentum buf + g``; ``p -= lr (g + momentum buf)`` if
    Nesterov else ``p -= lr buf`` (plain SGD when momentum is 0)."""
    dt = param.dtype.type
    lr_t = dt(lr)
    mu = dt(momentum)
    wd = dt(weight_decay)
    for k in range(param.size):
        g = grad[k]
        if weight_decay != 0.0:
            g = g + wd * param[k]
        if momentum != 0.0:
            b = mu * buf[k] + g
            buf[k] = b
            if nesterov:
                g = g + mu * b
            else:
                g = b
        param[k] -= lr_t * g


@njit(cache=True, error_model="numpy")
def ema_update(average, value, decay):
    """``average = decay * average + (1 - decay) * value`` over flat arrays (a moving
    average of weights, one sweep)."""
    d = average.dtype.type(decay)
    one_d = average.dtype.type(1.0 - decay)
    for k in range(average.size):
        average[k] = d * average[k] + one_d * value[k]


@njit(cache=True, error_model="numpy")
def clip_inplace(x, limit):
    """Clamp every entry of the flat array ``x`` to ``[-limit, limit]`` (WGAN weight clipping)."""
    lim = x.dtype.type(limit)
    for k in range(x.size):
        if x[k] > lim:
            x[k] = lim
        elif x[k] < -lim:
            x[k] = -lim


@njit(cache=True, error_model="numpy")
def sigmoid_mean(logits):
    """Mean of ``sigmoid(z)`` over the flat array ``logits``, in float64, as
    ``0.5 + 0.5 tanh(z / 2)`` (never overflows)."""
    total = 0.0
    for k in range(logits.size):
        total += 0.5 + 0.5 * math.tanh(0.5 * float(logits[k]))
    return total / logits.size


@njit(cache=True, error_model="numpy")
def all_finite(x):
    """True when the flat array ``x`` has no NaN or inf (stops at the first bad entry)."""
    for k in range(x.size):
        if not np.isfinite(x[k]):
            return False
    return True


# ----------------------------------------------------------------------------
# Second order: a perturbation of the input carried through forward and backward
# ----------------------------------------------------------------------------
# The gradient penalties (minigan.penalties) differentiate a backward pass. Each layer
# carries a tangent: the derivative of its forward values (x_dot -> y_dot) and of its
# backward values (grad_y_dot -> grad_x_dot, and the parameter gradients' tangents)
# along one direction of the input. These kernels do the elementwise sweeps of that
# pass; its matrix products go to BLAS in the layers, as in the first-order pass.


@njit(cache=True, error_model="numpy", inline="always")
def _second_derivative_from_output(y, kind, one):
    # act''(z) written in terms of y = act(z): tanh'' = -2 y (1 - y^2), sigmoid'' =
    # y (1 - y) (1 - 2 y). The (leaky) ReLU and the identity are piecewise linear: their
    # second derivative is 0 everywhere except at the kink, a set of measure zero.
    if kind == ACT_TANH:
        return -(one + one) * y * (one - y * y)
    if kind == ACT_SIGMOID:
        return y * (one - y) * (one - (one + one) * y)
    return one - one


@njit(cache=True, error_model="numpy")
def activation_tangent_backward(grad_y, grad_y_dot, y, z_dot, kind, alpha, grad_z_dot):
    """Tangent of ``grad_z = grad_y * act'(z)`` along a perturbation of z and grad_y.

    ``grad_z_dot = grad_y_dot * act'(z) + grad_y * act''(z) * z_dot``, with ``act'`` and
    ``act''`` computed from the output ``y = act(z)``; one sweep over (N, F) arrays.
    """
    n, m = y.shape
    a = y.dtype.type(alpha)
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            v = y[i, j]
            grad_z_dot[i, j] = (grad_y_dot[i, j] * _derivative_from_output(v, kind, a, one)
                                + grad_y[i, j] * _second_derivative_from_output(v, kind, one) * z_dot[i, j])


@njit(cache=True, error_model="numpy")
def activation_curvature(grad_y, y, z_dot, kind, grad_z_dot):
    """The tangent above when ``grad_y_dot`` is zero: ``grad_z_dot = grad_y * act''(z) * z_dot``."""
    n, m = y.shape
    one = y.dtype.type(1)
    for i in range(n):
        for j in range(m):
            grad_z_dot[i, j] = grad_y[i, j] * _second_derivative_from_output(y[i, j], kind, one) * z_dot[i, j]


@njit(cache=True, error_model="numpy")
def batchnorm_eval_tangent_forward(x_dot, gamma, inv_std, y_dot):
    """Tangent of eval-mode BatchNorm (a per-feature affine map): ``y_dot = x_dot * gamma * inv_std``."""
    n, m = x_dot.shape
    for i in range(n):
        for j in range(m):
            y_dot[i, j] = x_dot[i, j] * (gamma[j] * inv_std[j])


@njit(cache=True, error_model="numpy")
def batchnorm_eval_tangent_backward(grad_y, grad_y_dot, x_hat, x_dot, gamma, inv_std,
                                    grad_x_dot, grad_gamma, grad_beta, grad_mode):
    """Tangent of eval-mode BatchNorm's backward along (x_dot, grad_y_dot).

    The backward is ``dgamma = sum_i g x_hat``, ``dbeta = sum_i g``, ``dx = g gamma inv_std``
    with ``x_hat = (x - mean) inv_std``, so ``x_hat_dot = x_dot inv_std`` and
    ``R{dgamma} = sum_i (g_dot x_hat + g x_dot inv_std)``, ``R{dbeta} = sum_i g_dot``,
    ``R{dx} = g_dot gamma inv_std``; the two sums go into the gradients by ``grad_mode``.
    """
    n, m = grad_y.shape
    s_gamma = np.zeros(m, dtype=grad_y.dtype)
    s_beta = np.zeros(m, dtype=grad_y.dtype)
    for i in range(n):
        for j in range(m):
            g_dot = grad_y_dot[i, j]
            s_gamma[j] += g_dot * x_hat[i, j] + grad_y[i, j] * x_dot[i, j] * inv_std[j]
            s_beta[j] += g_dot
            grad_x_dot[i, j] = g_dot * (gamma[j] * inv_std[j])
    _store_grad(s_gamma, grad_gamma, grad_mode)
    _store_grad(s_beta, grad_beta, grad_mode)


@njit(cache=True, error_model="numpy")
def batchnorm_eval_curvature(grad_y, x_dot, inv_std, grad_gamma, grad_beta, grad_mode):
    """The tangent above when ``grad_y_dot`` is zero: ``R{dgamma} = sum_i g x_dot inv_std``,
    ``R{dbeta} = 0`` (written as 0 under GRAD_WRITE), ``R{dx} = 0``."""
    n, m = grad_y.shape
    s_gamma = np.zeros(m, dtype=grad_y.dtype)
    for i in range(n):
        for j in range(m):
            s_gamma[j] += grad_y[i, j] * x_dot[i, j] * inv_std[j]
    _store_grad(s_gamma, grad_gamma, grad_mode)
    if grad_mode == GRAD_WRITE:
        for j in range(m):
            grad_beta[j] = 0


@njit(cache=True, error_model="numpy", inline="always")
def _penalty_row(s, norm, center, scale):
    """For one row with squared norm ``s`` and norm ``norm`` (float64): the row's term of the
    penalty sum and the factor ``f`` with ``direction_i = f g_i`` (see :func:`penalty_direction`)."""
    if center == 0.0:
        return s, 2.0 * scale
    d = norm - center
    return d * d, (2.0 * scale * d / norm if norm > 0.0 else 0.0)


@njit(cache=True, error_model="numpy")
def penalty_direction(g, center, scale, direction, norms):
    """A gradient penalty's value and its derivative with respect to the input gradient.

    For rows ``g_i`` of the input gradient (N, P), in one pass per row:
    ``norms[i] = ||g_i||``; the returned float64 sum is ``sum_i ||g_i||^2`` when
    ``center == 0`` (no square root taken) and ``sum_i (||g_i|| - center)^2`` otherwise;
    ``direction[i] = d(scale * that sum)/d g_i``, which is ``2 scale g_i`` for center 0 and
    ``2 scale (||g_i|| - center) / ||g_i|| * g_i`` otherwise (0 for a zero row, where the
    norm has no derivative: the subgradient 0, as PyTorch's ``norm`` backward gives).
    The squares are summed in float64 for float32 inputs too.
    """
    n, m = g.shape
    total = 0.0
    for i in range(n):
        s = 0.0
        for j in range(m):
            v = float(g[i, j])
            s += v * v
        norms[i] = math.sqrt(s)
        term, factor = _penalty_row(s, norms[i], center, scale)
        total += term
        f = direction.dtype.type(factor)
        for j in range(m):
            direction[i, j] = f * g[i, j]
    return total


@njit(cache=True, error_model="numpy")
def penalty_direction_transposed(g_t, center, scale, direction, norms):
    """:func:`penalty_direction` for the input gradient given transposed, ``g_t = g^T`` (P, N);
    ``direction`` (N, P) and ``norms`` (N,) as there, and the same numbers.

    Row ``i`` of ``g`` is column ``i`` of ``g_t``: the squares are summed over ``j`` in the
    same order as there, but N rows at a time (independent sums, which LLVM vectorizes
    without reordering any of them); the direction is written transposed back to (N, P).
    """
    p, n = g_t.shape
    sums = np.zeros(n, dtype=np.float64)
    for j in range(p):
        for i in range(n):
            v = float(g_t[j, i])
            sums[i] += v * v
    factors = np.empty(n, dtype=direction.dtype)
    total = 0.0
    for i in range(n):
        norms[i] = math.sqrt(sums[i])
        term, factor = _penalty_row(sums[i], norms[i], center, scale)
        total += term
        factors[i] = factor
    for j in range(p):
        for i in range(n):
            direction[i, j] = factors[i] * g_t[j, i]
    return total


@njit(cache=True, error_model="numpy")
def outer_activation_backward(g, w, y, kind, alpha, grad_z):
    """The backward of a one-output Dense layer followed by the backward of the activation
    below it, in one sweep: ``grad_z[i, j] = (g[i, 0] * w[j, 0]) * act'(y[i, j])``.

    ``g`` (N, 1) is the gradient at the Dense layer's output, ``w`` (F, 1) its weights and
    ``y`` (N, F) the activation's output; ``g[i] * w[j]`` is rounded once, as the outer
    product ``g W^T`` rounds it.
    """
    n, m = y.shape
    a = y.dtype.type(alpha)
    one = y.dtype.type(1)
    for i in range(n):
        gi = g[i, 0]
        for j in range(m):
            grad_z[i, j] = (gi * w[j, 0]) * _derivative_from_output(y[i, j], kind, a, one)
