"""Every compiled kernel of minigan, in one place.

These are plain functions over arrays, compiled with ``@njit(cache=True)``. They
do the memory-bound work of a training step -- bias + activation, activation
derivative + bias gradient, BatchNorm, losses, optimizer updates -- each in as
few sweeps over memory as the math allows. Matrix products are not here: the
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
    only), ACT_RELU and ACT_LEAKY_RELU, in one sweep; ``y`` may be ``z``. Tanh and
    sigmoid go through :func:`bias_activation` (NumPy's SIMD ufuncs)."""
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
    if kind == ACT_TANH:
        bias_activation_forward(z, b, ACT_IDENTITY, 0.0, y)
        np.tanh(y, out=y)
    elif kind == ACT_SIGMOID:
        bias_activation_forward(z, b, ACT_IDENTITY, 0.0, y)
        e = np.abs(y)
        np.negative(e, out=e)
        with np.errstate(under="ignore"):  # exp(-|v|) -> 0 for large |v| is the right answer
            np.exp(e, out=e)
        sigmoid_from_exp(y, e)
    else:
        bias_activation_forward(z, b, kind, alpha, y)


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
def add_inplace(target, x):
    """``target += x`` elementwise over flat 1-D views."""
    for k in range(target.size):
        target[k] += x[k]


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
def batchnorm_forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, y, x_hat, inv_std):
    """Training-mode BatchNorm over the batch axis, and the running-statistics update.

    ``mean_j = (1/N) sum_i x_ij``, ``var_j = (1/N) sum_i (x_ij - mean_j)^2`` (biased),
    ``x_hat = (x - mean) / sqrt(var + eps)``, ``y = gamma * x_hat + beta``;
    ``running = momentum * running + (1 - momentum) * batch`` (the Keras convention,
    with the biased batch variance as Keras uses). Two-pass variance for accuracy.
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
# Losses: each kernel returns the summed loss and writes d(mean loss)/d(pred)
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def bce_with_logits(logits, target, grad):
    """Stable binary cross-entropy on logits, summed; ``grad = (sigmoid(z) - t) / size``.

    ``l(z, t) = max(z, 0) - z t + log(1 + exp(-|z|))`` never overflows.
    """
    z = logits.ravel()
    t = target.ravel()
    g = grad.ravel()
    size = z.size
    total = 0.0
    for k in range(size):
        v = z[k]
        total += max(v, 0.0) - v * t[k] + math.log1p(math.exp(-abs(v)))
        if v >= 0:
            s = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            s = e / (1.0 + e)
        g[k] = (s - t[k]) / size
    return total


@njit(cache=True, error_model="numpy")
def bce_on_probabilities(prob, target, clip_eps, grad):
    """Binary cross-entropy on probabilities clipped to ``[eps, 1 - eps]`` (Keras'
    ``binary_crossentropy``), summed; the gradient of the clipped function."""
    p = prob.ravel()
    t = target.ravel()
    g = grad.ravel()
    size = p.size
    total = 0.0
    lo = clip_eps
    hi = 1.0 - clip_eps
    for k in range(size):
        v = p[k]
        clipped = v < lo or v > hi
        q = min(max(v, lo), hi)
        total += -(t[k] * math.log(q) + (1.0 - t[k]) * math.log(1.0 - q))
        g[k] = 0.0 if clipped else (-t[k] / q + (1.0 - t[k]) / (1.0 - q)) / size
    return total


@njit(cache=True, error_model="numpy")
def squared_error(pred, target, grad):
    """``sum (p - t)^2`` and ``grad = 2 (p - t) / size``."""
    p = pred.ravel()
    t = target.ravel()
    g = grad.ravel()
    size = p.size
    total = 0.0
    for k in range(size):
        d = p[k] - t[k]
        total += d * d
        g[k] = 2.0 * d / size
    return total


@njit(cache=True, error_model="numpy")
def hinge(pred, sign, grad):
    """``sum max(0, 1 - s p)`` with ``s`` in {-1, +1}; ``grad = -s [1 - s p > 0] / size``."""
    p = pred.ravel()
    s = sign.ravel()
    g = grad.ravel()
    size = p.size
    total = 0.0
    for k in range(size):
        margin = 1.0 - s[k] * p[k]
        if margin > 0:
            total += margin
            g[k] = -s[k] / size
        else:
            g[k] = 0.0
    return total


@njit(cache=True, error_model="numpy")
def wasserstein(pred, sign, grad):
    """``sum -s p`` (the critic raises its score on real, ``s = +1``, and lowers it on fake)."""
    p = pred.ravel()
    s = sign.ravel()
    g = grad.ravel()
    size = p.size
    total = 0.0
    for k in range(size):
        total += -s[k] * p[k]
        g[k] = -s[k] / size
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
# Benford
# Least-squares fit of the generalized Benford law p(d) = N log_b(1 + 1/(beta + d**gamma))
# to many first-digit pmfs, one Levenberg-Marquardt run per pmf (3 parameters: the
# damped normal equations are a 3x3 system solved by Cramer's rule), and the
# divergences between the pmfs and the fitted laws.
# ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, n, beta, gamma, dg, u, g):
    """Cost ``sum (N g(d) - p(d))**2`` at (n, beta, gamma), inf outside the domain
    ``beta + d**gamma > 0`` or when not finite; leaves ``d**gamma``, ``beta + d**gamma``
    and ``g(d)`` in ``dg``, ``u``, ``g`` for :func:`_benford_normal_equations`.

    ``d**gamma`` of a composite digit is the product of its factors' powers
    (``factor_a[j] * factor_b[j] == j + 1``, both 1-based and smaller); a prime
    (``factor_a[j] == 0``) pays one ``exp``.
    """
    cost = 0.0
    for j in range(p.size):
        fa = factor_a[j]
        if fa == 0:
            dgj = math.exp(gamma * log_d[j])
        else:
            dgj = dg[fa - 1] * dg[factor_b[j] - 1]
        dg[j] = dgj
        uj = beta + dgj
        if not uj > 0.0:
            return np.inf
        u[j] = uj
        gj = math.log1p(1.0 / uj) * inv_log_b
        g[j] = gj
        r = n * gj - p[j]
        cost += r * r
    if not np.isfinite(cost):
        return np.inf
    return cost


@njit(cache=True, error_model="numpy")
def _benford_normal_equations(p, log_d, inv_log_b, n, dg, u, g, jtj, jtr):
    """Gauss-Newton normal equations at the point :func:`_benford_cost` last evaluated:
    ``J^T J`` as its entries (00, 01, 02, 11, 12, 22) into ``jtj`` and ``J^T r`` into ``jtr``."""
    for i in range(6):
        jtj[i] = 0.0
    for i in range(3):
        jtr[i] = 0.0
    for j in range(p.size):
        gj = g[j]
        uj = u[j]
        r = n * gj - p[j]
        jb = -n * inv_log_b / (uj * (uj + 1.0))  # d model / d beta
        jg = jb * dg[j] * log_d[j]  # d model / d gamma
        jtj[0] += gj * gj
        jtj[1] += gj * jb
        jtj[2] += gj * jg
        jtj[3] += jb * jb
        jtj[4] += jb * jg
        jtj[5] += jg * jg
        jtr[0] += gj * r
        jtr[1] += jb * r
        jtr[2] += jg * r


@njit(cache=True, error_model="numpy")
def _damped_step(a, v, lam, step):
    """Solve ``(A + lam diag(A) + lam 1e-12 I) step = -v`` for symmetric 3x3 ``A`` given
    as (00, 01, 02, 11, 12, 22); returns False (and a zero step) when singular or not finite."""
    scale = 1.0 + lam
    a00 = a[0] * scale + lam * 1e-12
    a11 = a[3] * scale + lam * 1e-12
    a22 = a[5] * scale + lam * 1e-12
    a01, a02, a12 = a[1], a[2], a[4]
    b0, b1, b2 = -v[0], -v[1], -v[2]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    ok = det != 0.0  # also False for NaN; checked before dividing (Numba raises on x / 0)
    if ok:
        step[0] = (c00 * b0 + c01 * b1 + c02 * b2) / det
        step[1] = (c01 * b0 + c11 * b1 + c12 * b2) / det
        step[2] = (c02 * b0 + c12 * b1 + c22 * b2) / det
        ok = np.isfinite(step[0]) and np.isfinite(step[1]) and np.isfinite(step[2])
    if not ok:
        step[0] = 0.0
        step[1] = 0.0
        step[2] = 0.0
    return ok


@njit(cache=True, error_model="numpy")
def generalized_benford_fit(
    pmf, log_d, factor_a, factor_b, inv_log_b, lower, upper, max_iter, tol, theta, rss, success, n_iter
):
    """Fit N, beta, gamma to every row of ``pmf`` (m, k) by Levenberg-Marquardt.

    ``log_d`` (k,) holds ``log(1..k)``; ``factor_a``/``factor_b`` (k,) split each
    composite digit into two smaller factors (0 for 1 and the primes; see
    :func:`_benford_cost`); ``lower``/``upper`` (3,) are the box the parameters stay
    in. Starts at (1, 1, 1) with damping 1e-3, divided by 10 on an accepted step
    (down to 1e-12) and multiplied by 10 on a refused one; a candidate is clipped to
    the box. Converged (MINPACK-style): an accepted step whose relative cost decrease
    is at most ``tol``, a step at most ``tol (tol + |theta|)`` in every parameter, or
    a cost at most 1e-24. Gives up when the damping exceeds 1e16, the step is not
    finite, or after ``max_iter`` steps. Writes ``theta`` (m, 3), ``rss`` (m,),
    ``success`` (m,) bool, ``n_iter`` (m,); failed rows (also rows that are not
    finite or do not sum to a positive number) get NaN parameters and rss.
    """
    m, k = pmf.shape
    jtj = np.empty(6)
    jtr = np.empty(3)
    step = np.empty(3)
    th = np.empty(3)
    cand = np.empty(3)
    dg = np.empty(k)
    u = np.empty(k)
    g = np.empty(k)
    for i in range(m):
        p = pmf[i]
        n_iter[i] = 0
        valid = True
        total = 0.0
        for j in range(k):
            if not np.isfinite(p[j]):
                valid = False
            total += p[j]
        converged = False
        cost = np.inf
        if valid and total > 0.0:
            th[0] = 1.0
            th[1] = 1.0
            th[2] = 1.0
            lam = 1e-3
            cost = _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, th[0], th[1], th[2], dg, u, g)
            _benford_normal_equations(p, log_d, inv_log_b, th[0], dg, u, g, jtj, jtr)
            for _ in range(max_iter):
                finite = _damped_step(jtj, jtr, lam, step)
                small_step = finite
                for c in range(3):
                    cand[c] = min(max(th[c] + step[c], lower[c]), upper[c])
                    if not abs(cand[c] - th[c]) <= tol * (tol + abs(th[c])):
                        small_step = False
                new_cost = _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, cand[0], cand[1], cand[2], dg, u, g)
                n_iter[i] += 1
                done = small_step
                if finite and new_cost < cost:
                    if cost - new_cost <= tol * cost or new_cost <= 1e-24:
                        done = True
                    for c in range(3):
                        th[c] = cand[c]
                    cost = new_cost
                    _benford_normal_equations(p, log_d, inv_log_b, th[0], dg, u, g, jtj, jtr)
                    lam = max(lam / 10.0, 1e-12)
                else:
                    lam = lam * 10.0
                if done:
                    converged = True
                if done or not finite or lam > 1e16:
                    break
        ok = converged and np.isfinite(cost)
        for c in range(3):
            if not np.isfinite(th[c]):
                ok = False
        success[i] = ok
        rss[i] = cost if ok else np.nan
        for c in range(3):
            theta[i, c] = th[c] if ok else np.nan


@njit(cache=True, error_model="numpy")
def benford_divergences(p, q, alpha, out):
    """Symmetrised divergences between pmfs ``p`` and ``q`` (m, k), over the bins where
    both are positive, into ``out`` (m, 3): Kullback-Leibler in bits of the pmfs
    renormalised over those bins, and Renyi (bits) and Tsallis of order ``alpha`` of
    the values as they are. A row with a NaN in ``q`` or no bin left gets NaN."""
    m, k = p.shape
    inv_ln2 = 1.0 / math.log(2.0)
    for i in range(m):
        sp = 0.0
        sq = 0.0
        s_pq = 0.0  # sum p**alpha q**(1-alpha)
        s_qp = 0.0  # sum q**alpha p**(1-alpha)
        kept = 0
        q_nan = False
        for j in range(k):
            pj = p[i, j]
            qj = q[i, j]
            if qj != qj:
                q_nan = True
            if pj > 0.0 and qj > 0.0:
                kept += 1
                sp += pj
                sq += qj
                pa = pj**alpha
                qa = qj**alpha
                s_pq += pa * (qj / qa)
                s_qp += qa * (pj / pa)
        if q_nan or kept == 0:
            out[i, 0] = np.nan
            out[i, 1] = np.nan
            out[i, 2] = np.nan
            continue
        kl = 0.0
        for j in range(k):
            pj = p[i, j]
            qj = q[i, j]
            if pj > 0.0 and qj > 0.0:
                pn = pj / sp
                qn = qj / sq
                if pn > 0.0 and qn > 0.0:
                    kl += (pn - qn) * math.log(pn / qn) * inv_ln2
                else:  # renormalising underflowed to 0: the term is infinite (checked: Numba raises on x / 0)
                    kl = np.inf
        out[i, 0] = kl
        out[i, 1] = (math.log(s_pq) + math.log(s_qp)) * inv_ln2 / (alpha - 1.0)
        out[i, 2] = (s_pq - 1.0 + s_qp - 1.0) / (alpha - 1.0)
