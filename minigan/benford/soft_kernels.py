"""Compiled kernels of the soft (differentiable) Benford statistics.

Plain functions over arrays, ``@njit(cache=True, error_model="numpy")``, no
``fastmath``; callers validate the inputs (:mod:`minigan.benford.soft`,
:mod:`minigan.benford.soft_features`). Forward kernels accumulate into float64
outputs; backward kernels recompute what they need (the sweeps are cheap, the
memory they would otherwise keep is not) and *add* into the gradients.

The smooth step
---------------
Every soft decision uses one C^3 step of compact support,
``S(z) = 35 t^4 - 84 t^5 + 70 t^6 - 20 t^7`` with ``t = (z + 1) / 2`` on
``-1 < z < 1``, 0 below and 1 above, ``S(-z) = 1 - S(z)`` and
``S'(z) = 70 t^3 (1 - t)^3``. Compact support keeps far-away digits at exactly zero
(the detector's divergences skip empty digits, so a soft histogram must have them
too) and makes every statistic exact as the widths shrink to zero.

The soft first digit
--------------------
A quantized coefficient ``c / q`` rounds (half away from zero) to a non-zero integer
whose first digit in base ``b`` is ``d`` exactly when ``u = |c / q| + 1/2`` lies in
``[d b^k, (d + 1) b^k)`` for some ``k >= 0``, i.e. when the mantissa
``f = log_b u mod 1`` lies in ``[log_b d, log_b (d + 1))``. The soft assignment
replaces each edge ``log_b d`` of that partition of the circle by a smooth step of
half-width ``temperature * (the smaller of the two digit intervals beside it)``, so a
value near an edge is shared between the two digits and the weights of a value always
sum to 1 (the edge between ``b - 1`` and ``1`` wraps to the next power of ``b``; the
edge ``u = 1``, where there is no digit below, is not smoothed). The value counts
with the gate ``g(|c / q|)`` (:func:`gate`) for "not zero after rounding".
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .kernels import fitted_law

LOG2 = math.log(2.0)


@njit(cache=True, error_model="numpy", inline="always")
def smooth_step(z):
    """``S(z)``: 0 for z <= -1, 1 for z >= 1, the septic smoothstep in between."""
    if z <= -1.0:
        return 0.0
    if z >= 1.0:
        return 1.0
    t = 0.5 * (z + 1.0)
    # clamped: near t = 1 the polynomial can round to just above 1 (and 1 - S below 0)
    return min(1.0, t * t * t * t * (35.0 + t * (-84.0 + t * (70.0 - 20.0 * t))))


@njit(cache=True, error_model="numpy", inline="always")
def smooth_step_slope(z):
    """``S'(z) = 70 t^3 (1 - t)^3`` with ``t = (z + 1) / 2`` (0 outside -1 < z < 1)."""
    if z <= -1.0 or z >= 1.0:
        return 0.0
    t = 0.5 * (z + 1.0)
    s = 1.0 - t
    return 70.0 * t * t * t * s * s * s


@njit(cache=True, error_model="numpy", inline="always")
def gate(a, width):
    """Soft ``a >= 1/2`` for ``a >= 0`` ("not zero after rounding"): ``S(log(2a) / width)``.

    Exactly 0 at ``a = 0`` and below ``e^-width / 2``, exactly 1 above ``e^width / 2``;
    ``width <= log 2`` keeps it exact on integers. A smooth step in ``log a`` spreads its
    slope over a range of magnitudes (a residue of a few 8-bit levels still gets a
    gradient at a wide ``width``)."""
    if a <= 0.0:
        return 0.0
    return smooth_step(math.log(2.0 * a) / width)


@njit(cache=True, error_model="numpy", inline="always")
def gate_slope(a, width):
    """``d gate / d a = S'(log(2a) / width) / (width a)`` (0 at ``a <= 0``)."""
    if a <= 0.0:
        return 0.0
    return smooth_step_slope(math.log(2.0 * a) / width) / (width * a)


@njit(cache=True, error_model="numpy", inline="always")
def _digit_of_mantissa(f, bounds, lut, bi, n_digit):
    """The digit ``d`` in 1..n_digit with ``bounds[bi, d] <= f < bounds[bi, d + 1]``."""
    cells = lut.shape[1]
    j = int(f * cells)
    if j >= cells:
        j = cells - 1
    if j < 0:
        j = 0
    d = lut[bi, j]
    while d < n_digit and f >= bounds[bi, d + 1]:
        d += 1
    while d > 1 and f < bounds[bi, d]:
        d -= 1
    return d


@njit(cache=True, error_model="numpy", inline="always")
def _digit_weights(lnu, bi, inv_log_b, bounds, half_widths, lut, n_digit):
    """Soft first digit of ``u = exp(lnu) >= 1`` in base ``bi``.

    Returns ``(d0, w0, dw0, d1, w1, dw1)``: at most two digits (``d1 = 0``: none) with
    their weights and the derivatives of the weights with respect to ``f = log_b u``."""
    big_l = lnu * inv_log_b
    k = math.floor(big_l)
    f = big_l - k
    d0 = _digit_of_mantissa(f, bounds, lut, bi, n_digit)
    lo = bounds[bi, d0]
    e_lo = half_widths[bi, d0]
    if not (d0 == 1 and k == 0) and f - lo < e_lo:
        z = (f - lo) / e_lo
        s = smooth_step(z)
        slope = smooth_step_slope(z) / e_lo
        d1 = d0 - 1 if d0 > 1 else n_digit
        return d0, s, slope, d1, 1.0 - s, -slope
    hi = bounds[bi, d0 + 1]
    e_hi = half_widths[bi, d0 + 1]
    if hi - f < e_hi:
        z = (hi - f) / e_hi
        s = smooth_step(z)
        slope = smooth_step_slope(z) / e_hi
        d1 = d0 + 1 if d0 < n_digit else 1
        return d0, s, -slope, d1, 1.0 - s, slope
    return d0, 1.0, 0.0, 0, 0.0, 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _digit_split(lnu, bi, inv_log_b, bounds, half_widths, lut, n_digit):
    """:func:`_digit_weights` without the derivatives: ``(d0, w0, d1, w1)``."""
    big_l = lnu * inv_log_b
    k = math.floor(big_l)
    f = big_l - k
    d0 = _digit_of_mantissa(f, bounds, lut, bi, n_digit)
    lo = bounds[bi, d0]
    e_lo = half_widths[bi, d0]
    if f - lo < e_lo and not (d0 == 1 and k == 0):
        s = smooth_step((f - lo) / e_lo)
        return d0, s, d0 - 1 if d0 > 1 else n_digit, 1.0 - s
    hi = bounds[bi, d0 + 1]
    e_hi = half_widths[bi, d0 + 1]
    if hi - f < e_hi:
        s = smooth_step((hi - f) / e_hi)
        return d0, s, d0 + 1 if d0 < n_digit else 1, 1.0 - s
    return d0, 1.0, 0, 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _gate_from_log(log_a, width):
    """:func:`gate` given ``log a`` (``-inf`` for ``a = 0``)."""
    return smooth_step((LOG2 + log_a) / width)


@njit(cache=True, error_model="numpy")
def soft_digit_histograms(coefs, log_abs, log_u, image_index, inv_tables, log_inv_tables, inv_log_bases, bounds,
                          half_widths, lut, n_digits, gate_width, share_width, hard_shares, counts, totals, shares):
    """Soft first-digit counts of quantized coefficients, per image.

    Parameters
    ----------
    coefs : (n_blocks, K) DCT coefficients (unquantized, 0..255 luma units)
    log_abs : (n_blocks, K) ``log |c|`` (``-inf`` where ``c = 0``)
    log_u : (n_blocks, n_qf, K) ``log max(|c| / q + 1/2, 1)``
    image_index : (n_blocks,) int, the image of each block
    inv_tables, log_inv_tables : (n_qf, K) ``1 / q`` and ``log(1 / q)`` of each table entry
    inv_log_bases : (n_bases,) ``1 / log b``
    bounds, half_widths : (n_bases, max_base + 1) ``log_b d`` and the edge half-widths
        (index d = 1..b; ``half_widths[1] == half_widths[b]``: the wrapping edge)
    lut : (n_bases, cells) int, a digit per mantissa cell (a first guess)
    n_digits : (n_bases,) int, ``b - 1``
    gate_width, share_width : widths of the counting gate and of the share gate
    hard_shares : bool, add the hard ``a >= 1/2`` to ``shares`` instead of the share gate
        (the straight-through estimator: the backward still uses the gate's slope)

    The logarithms come in precomputed: NumPy's vectorized ``log`` is several times
    faster than the scalar calls a compiled loop makes.

    Outputs (added into)
    --------------------
    counts : (n_images, n_qf, n_bases, K, max_base - 1) sum of ``gate * weight`` per digit
    totals : (n_images, n_qf, K) sum of the counting gates (soft non-zero values)
    shares : (n_images, n_qf, K) sum of the share gates
    """
    n_blocks, n_coef = coefs.shape
    n_qf = inv_tables.shape[0]
    n_bases = inv_log_bases.shape[0]
    for i in range(n_blocks):
        img = image_index[i]
        for k in range(n_coef):
            la0 = log_abs[i, k]
            if la0 == -np.inf:
                continue
            for qi in range(n_qf):
                la = la0 + log_inv_tables[qi, k]
                if hard_shares:
                    shares[img, qi, k] += 1.0 if la >= -LOG2 else 0.0
                else:
                    shares[img, qi, k] += _gate_from_log(la, share_width)
                g = _gate_from_log(la, gate_width)
                if g == 0.0:
                    continue
                totals[img, qi, k] += g
                lnu = log_u[i, qi, k]
                for bi in range(n_bases):
                    d0, w0, d1, w1 = _digit_split(lnu, bi, inv_log_bases[bi], bounds, half_widths, lut,
                                                  n_digits[bi])
                    counts[img, qi, bi, k, d0 - 1] += g * w0
                    if d1 > 0:
                        counts[img, qi, bi, k, d1 - 1] += g * w1


@njit(cache=True, error_model="numpy")
def soft_digit_histograms_backward(coefs, log_abs, log_u, image_index, inv_tables, log_inv_tables, inv_log_bases,
                                   bounds, half_widths, lut, n_digits, gate_width, share_width, grad_counts,
                                   grad_totals, grad_shares, grad_coefs):
    """Add ``d loss / d coefs`` into ``grad_coefs`` (n_blocks, K), given the gradients of
    the outputs of :func:`soft_digit_histograms` (same shapes, same inputs).

    With ``a = |c| / q``, ``u = a + 1/2`` and ``f = log_b u``:
    ``d/dc = sign(c) / q * [g'(a) (G_T + sum_b sum_d w_d G_d) + g(a) sum_b sum_d w_d'(f) G_d / (u log b)
    + s'(a) G_S]``, where ``G`` are the incoming gradients and ``u`` stops at 1
    (below it every weight is digit 1's and constant)."""
    n_blocks, n_coef = coefs.shape
    n_qf = inv_tables.shape[0]
    n_bases = inv_log_bases.shape[0]
    for i in range(n_blocks):
        img = image_index[i]
        for k in range(n_coef):
            la0 = log_abs[i, k]
            if la0 == -np.inf:
                continue
            c = float(coefs[i, k])
            a0 = abs(c)
            total = 0.0
            for qi in range(n_qf):
                inv_q = inv_tables[qi, k]
                a = a0 * inv_q
                la = la0 + log_inv_tables[qi, k]
                dgrad = smooth_step_slope((LOG2 + la) / share_width) / (share_width * a) * grad_shares[img, qi, k]
                z = (LOG2 + la) / gate_width
                g = smooth_step(z)
                g_slope = smooth_step_slope(z) / (gate_width * a)
                if g != 0.0:
                    weighted = grad_totals[img, qi, k]
                    slope_sum = 0.0
                    lnu = log_u[i, qi, k]
                    for bi in range(n_bases):
                        d0, w0, dw0, d1, w1, dw1 = _digit_weights(lnu, bi, inv_log_bases[bi], bounds, half_widths,
                                                                  lut, n_digits[bi])
                        g0 = grad_counts[img, qi, bi, k, d0 - 1]
                        weighted += w0 * g0
                        s = dw0 * g0
                        if d1 > 0:
                            g1 = grad_counts[img, qi, bi, k, d1 - 1]
                            weighted += w1 * g1
                            s += dw1 * g1
                        slope_sum += s * inv_log_bases[bi]
                    dgrad += g_slope * weighted
                    if a > 0.5:
                        dgrad += g * slope_sum / (a + 0.5)
                total += dgrad * inv_q
            grad_coefs[i, k] += total if c > 0.0 else -total


@njit(cache=True, error_model="numpy")
def block_max_gates(pixels, block_pixels, width, hard, gates, argmax):
    """Soft "the block has a pixel above black" per image and block.

    ``pixels`` (N, P) on the 0..255 scale; ``block_pixels`` (n_blocks, m) int, the
    pixels of each block (edge padding repeats indices, which a maximum ignores).
    Writes ``gates`` (N, n_blocks) = ``gate(max pixel, width)`` (with ``hard``: the
    indicator ``max >= 1/2``) and ``argmax`` (N, n_blocks) the first pixel reaching the
    maximum."""
    n = pixels.shape[0]
    n_blocks, m = block_pixels.shape
    for i in range(n):
        for b in range(n_blocks):
            best = block_pixels[b, 0]
            value = float(pixels[i, best])
            for j in range(1, m):
                p = block_pixels[b, j]
                v = float(pixels[i, p])
                if v > value:
                    value = v
                    best = p
            argmax[i, b] = best
            if hard:
                gates[i, b] = 1.0 if value >= 0.5 else 0.0
            else:
                gates[i, b] = gate(value, width)


@njit(cache=True, error_model="numpy")
def block_max_gates_backward(pixels, argmax, width, grad_gates, grad_pixels):
    """Add ``grad_gates * gate'(max)`` into ``grad_pixels`` at each block's maximum pixel
    (a maximum's gradient reaches the pixel that attains it)."""
    n, n_blocks = argmax.shape
    for i in range(n):
        for b in range(n_blocks):
            p = argmax[i, b]
            grad_pixels[i, p] += grad_gates[i, b] * gate_slope(float(pixels[i, p]), width)


# ---------------------------------------------------------------------------
# the generalized-Benford fit and the divergences, differentiated


@njit(cache=True, error_model="numpy", inline="always")
def presence(count):
    """Soft "the digit occurs": ``S(2 count - 1)``, 0 at 0 counts, 1 from one count on."""
    return smooth_step(2.0 * count - 1.0)


@njit(cache=True, error_model="numpy", inline="always")
def presence_slope(count):
    return 2.0 * smooth_step_slope(2.0 * count - 1.0)


@njit(cache=True, error_model="numpy")
def _model_derivatives(theta, log_d, inv_log_b, p, jac, hess):
    """Residual cost ``R = sum_j (m_j - p_j)^2`` of ``m_j = N log_b(1 + 1/(beta + d^gamma))``
    at ``theta``: fills ``jac`` (k, 3) with ``dm_j/dtheta`` and ``hess`` (3, 3) with
    ``d^2 R / dtheta^2 = 2 sum_j (J_j J_j^T + r_j d^2 m_j / dtheta^2)``; returns
    ``(R, grad R (3,), ok)``, ``ok`` False outside the domain ``beta + d^gamma > 0``."""
    n, beta, gamma = theta[0], theta[1], theta[2]
    cost = 0.0
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    for a in range(3):
        for b in range(3):
            hess[a, b] = 0.0
    for j in range(p.shape[0]):
        ld = log_d[j]
        dg = math.exp(gamma * ld)
        u = beta + dg
        if not u > 0.0:
            return np.inf, g0, g1, g2, False
        gj = math.log1p(1.0 / u) * inv_log_b
        g_u = -inv_log_b / (u * (u + 1.0))  # d g / d u
        g_uu = inv_log_b * (2.0 * u + 1.0) / (u * u * (u + 1.0) * (u + 1.0))
        u_g = dg * ld  # d u / d gamma
        u_gg = dg * ld * ld
        jn = gj
        jb = n * g_u
        jg = n * g_u * u_g
        jac[j, 0] = jn
        jac[j, 1] = jb
        jac[j, 2] = jg
        r = n * gj - p[j]
        cost += r * r
        g0 += 2.0 * r * jn
        g1 += 2.0 * r * jb
        g2 += 2.0 * r * jg
        # second derivatives of m_j: (N, N) 0, (N, b) g_u, (N, g) g_u u_g, (b, b) N g_uu,
        # (b, g) N g_uu u_g, (g, g) N (g_uu u_g^2 + g_u u_gg)
        hess[0, 0] += 2.0 * jn * jn
        hess[0, 1] += 2.0 * (jn * jb + r * g_u)
        hess[0, 2] += 2.0 * (jn * jg + r * g_u * u_g)
        hess[1, 1] += 2.0 * (jb * jb + r * n * g_uu)
        hess[1, 2] += 2.0 * (jb * jg + r * n * g_uu * u_g)
        hess[2, 2] += 2.0 * (jg * jg + r * n * (g_uu * u_g * u_g + g_u * u_gg))
    hess[1, 0] = hess[0, 1]
    hess[2, 0] = hess[0, 2]
    hess[2, 1] = hess[1, 2]
    return cost, g0, g1, g2, True


@njit(cache=True, error_model="numpy")
def _solve_free(hess, rhs, free, out):
    """Solve ``hess[F, F] out[F] = rhs[F]`` over the free parameters ``F`` (out = 0 elsewhere)
    by Gaussian elimination with partial pivoting; False when singular or ill-conditioned.

    The system is first scaled symmetrically by ``1 / sqrt(|hess[i, i]|)``: the parameters'
    scales differ by many orders of magnitude (``beta`` next to a wall of the domain
    weighs like ``1 / (beta + d**gamma)**2``), and the test for a vanishing pivot must
    not depend on them."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    d = np.ones(3)
    for i in range(3):
        if free[i]:
            h = abs(hess[i, i])
            if not (h > 0.0 and np.isfinite(h)):
                return False
            d[i] = 1.0 / math.sqrt(h)
    scale = 0.0
    for i in range(3):
        for j in range(3):
            if free[i] and free[j]:
                a[i, j] = hess[i, j] * d[i] * d[j]
                scale = max(scale, abs(a[i, j]))
            elif i == j:
                a[i, j] = 1.0
        b[i] = rhs[i] * d[i] if free[i] else 0.0
    if not scale > 0.0 or not np.isfinite(scale):
        return False
    for i in range(3):
        if free[i]:
            continue
        a[i, i] = scale
    for col in range(3):
        piv = col
        for r in range(col + 1, 3):
            if abs(a[r, col]) > abs(a[piv, col]):
                piv = r
        if not abs(a[piv, col]) > 1e-13 * scale:
            return False
        if piv != col:
            for c in range(3):
                t = a[col, c]
                a[col, c] = a[piv, c]
                a[piv, c] = t
            t = b[col]
            b[col] = b[piv]
            b[piv] = t
        for r in range(col + 1, 3):
            f = a[r, col] / a[col, col]
            for c in range(col, 3):
                a[r, c] -= f * a[col, c]
            b[r] -= f * b[col]
    for i in range(2, -1, -1):
        s = b[i]
        for c in range(i + 1, 3):
            s -= a[i, c] * out[c]
        out[i] = s / a[i, i]
    for i in range(3):
        if not free[i]:
            out[i] = 0.0
        else:
            out[i] *= d[i]
            if not np.isfinite(out[i]):
                return False
    return True


@njit(cache=True, error_model="numpy")
def _polish(theta, log_d, inv_log_b, p, lower, upper, free, jac, hess, max_steps):
    """Newton steps on the free parameters from the detector's fit until the
    step is at round-off level, each kept only if it stays in the box and the domain and
    does not raise the cost; leaves ``jac``/``hess`` at the final ``theta``."""
    step = np.empty(3)
    grad = np.empty(3)
    cand = np.empty(3)
    cost, grad[0], grad[1], grad[2], ok = _model_derivatives(theta, log_d, inv_log_b, p, jac, hess)
    if not ok:
        return False
    for _ in range(max_steps):
        if not _solve_free(hess, grad, free, step):
            break
        small = True
        inside = True
        for c in range(3):
            cand[c] = theta[c] - step[c]
            if abs(step[c]) > 1e-15 * (1.0 + abs(theta[c])):
                small = False
            if free[c] and not (lower[c] < cand[c] < upper[c]):
                inside = False
        if small or not inside:
            break
        jac2 = np.empty_like(jac)
        hess2 = np.empty_like(hess)
        new_cost, n0, n1, n2, ok = _model_derivatives(cand, log_d, inv_log_b, p, jac2, hess2)
        if not ok or not new_cost <= cost * (1.0 + 1e-12) + 1e-300:
            break
        for c in range(3):
            theta[c] = cand[c]
        cost = new_cost
        grad[0] = n0
        grad[1] = n1
        grad[2] = n2
        jac[:, :] = jac2
        hess[:, :] = hess2
    return True


@njit(cache=True, error_model="numpy")
def _divergences_and_partials(p, q, pres, alpha, out, grad_p, grad_q, grad_pres, g_out):
    """The detector's three divergences of pmf ``p`` and law ``q`` (k,), each digit weighted
    by its presence ``pres`` (1 or 0 on a hard histogram: the detector's "bins where both
    are positive"), into ``out`` (3,). When ``g_out`` (3,) is given non-zero, adds
    ``sum_i g_out[i] d out[i] / d (p, q, pres)`` into the three gradients. Returns False
    (out NaN) when no digit is kept."""
    k = p.shape[0]
    inv_ln2 = 1.0 / math.log(2.0)
    beta = 1.0 - alpha
    sp = 0.0
    sq = 0.0
    s1 = 0.0
    s2 = 0.0
    kept = 0
    for j in range(k):
        if pres[j] > 0.0 and q[j] > 0.0:
            kept += 1
            sp += pres[j] * p[j]
            sq += pres[j] * q[j]
            s1 += pres[j] * p[j] ** alpha * q[j] ** beta
            s2 += pres[j] * q[j] ** alpha * p[j] ** beta
    if kept == 0 or not (sp > 0.0 and sq > 0.0 and s1 > 0.0 and s2 > 0.0):
        out[0] = np.nan
        out[1] = np.nan
        out[2] = np.nan
        return False
    kl = 0.0
    for j in range(k):
        if pres[j] > 0.0 and q[j] > 0.0:
            pn = p[j] / sp
            qn = q[j] / sq
            kl += pres[j] * (pn - qn) * math.log(pn / qn)
    out[0] = kl * inv_ln2
    out[1] = (math.log(s1) + math.log(s2)) * inv_ln2 / (alpha - 1.0)
    out[2] = (s1 - 1.0 + s2 - 1.0) / (alpha - 1.0)
    if g_out[0] == 0.0 and g_out[1] == 0.0 and g_out[2] == 0.0:
        return True
    # KL = sum pres (pn - qn)(log pn - log qn) / ln 2 with pn = p / sp, sp = sum pres p (same for q)
    sum_a = 0.0
    sum_b = 0.0
    for j in range(k):
        if pres[j] > 0.0 and q[j] > 0.0:
            pn = p[j] / sp
            qn = q[j] / sq
            delta = math.log(pn / qn)
            a = pres[j] * (delta + (pn - qn) / pn) * inv_ln2
            b = pres[j] * (-delta - (pn - qn) / qn) * inv_ln2
            sum_a += a * pn
            sum_b += b * qn
    ds1 = g_out[1] * inv_ln2 / ((alpha - 1.0) * s1) + g_out[2] / (alpha - 1.0)
    ds2 = g_out[1] * inv_ln2 / ((alpha - 1.0) * s2) + g_out[2] / (alpha - 1.0)
    for j in range(k):
        if pres[j] > 0.0 and q[j] > 0.0:
            pn = p[j] / sp
            qn = q[j] / sq
            delta = math.log(pn / qn)
            a = pres[j] * (delta + (pn - qn) / pn) * inv_ln2
            b = pres[j] * (-delta - (pn - qn) / qn) * inv_ln2
            grad_p[j] += g_out[0] * (a - pres[j] * sum_a) / sp
            grad_q[j] += g_out[0] * (b - pres[j] * sum_b) / sq
            grad_pres[j] += g_out[0] * ((pn - qn) * delta * inv_ln2 - p[j] * sum_a / sp - q[j] * sum_b / sq)
            t1 = p[j] ** alpha * q[j] ** beta
            t2 = q[j] ** alpha * p[j] ** beta
            grad_p[j] += pres[j] * (ds1 * alpha * t1 + ds2 * beta * t2) / p[j]
            grad_q[j] += pres[j] * (ds1 * beta * t1 + ds2 * alpha * t2) / q[j]
            grad_pres[j] += ds1 * t1 + ds2 * t2
    return True


@njit(cache=True, error_model="numpy")
def fitted_divergences(counts, totals, theta, log_d, factor_a, factor_b, inv_log_b, alpha, lower, upper, polish_steps,
                       grad_features, features, grad_counts, grad_totals):
    """The detector's divergence features of soft digit counts, and their gradient.

    For each row: ``p = counts / totals`` (k digits), the generalized-Benford fit
    ``theta`` (the detector's fit of ``p``, :func:`minigan.benford.digits.fit_generalized_benford`;
    NaN: failed), polished by up to ``polish_steps`` Newton steps (0: the detector's
    result as it is), ``q = N log_b(1 + 1/(beta + d^gamma))`` (:func:`minigan.benford.kernels.fitted_law`,
    with the digits' factors ``factor_a``, ``factor_b`` (k,) as the fit uses them), and
    the three divergences of :func:`_divergences_and_partials` into ``features`` (m, 3)
    (NaN when the fit failed or nothing was counted).

    Backward (rows with finite features, for ``grad_features`` (m, 3) non-zero): the
    fit's optimum ``grad R(theta*, p) = 0`` moves with ``p`` as
    ``d theta* / d p = 2 H^-1 J^T`` (implicit function theorem; ``H`` the cost's Hessian
    over the parameters not at the box's walls, ``J = dq / dtheta``), so a gradient
    ``G_q`` on ``q`` reaches ``p`` as ``2 J H^-1 J^T G_q``; then
    ``dp_j / dcounts_j = 1 / totals`` and ``dp_j / dtotals = -p_j / totals``, and the
    presences ``S(2 counts - 1)`` add their own term. Adds into ``grad_counts`` (m, k)
    and ``grad_totals`` (m,); ``theta`` is overwritten by the polished fit.

    The detector's fit stops at a relative tolerance, which on a pmf
    of a few values can leave it in a flat valley short of the optimum; without
    polishing, the derivative is the implicit one evaluated there (exact at an
    optimum, a first-order approximation short of one).
    """
    m, k = counts.shape
    jac = np.empty((k, 3))
    hess = np.empty((3, 3))
    free = np.empty(3, dtype=np.bool_)
    p = np.empty(k)
    q = np.empty(k)
    law_dg = np.empty(k)
    law_u = np.empty(k)
    law_g = np.empty(k)
    pres = np.empty(k)
    gp = np.empty(k)
    gq = np.empty(k)
    gpres = np.empty(k)
    out = np.empty(3)
    g_out = np.empty(3)
    v = np.empty(3)
    y = np.empty(3)
    for i in range(m):
        t = totals[i]
        th = theta[i]
        if not (t > 0.0) or not (np.isfinite(th[0]) and np.isfinite(th[1]) and np.isfinite(th[2])):
            features[i, 0] = np.nan
            features[i, 1] = np.nan
            features[i, 2] = np.nan
            continue
        for j in range(k):
            p[j] = counts[i, j] / t
            pres[j] = presence(counts[i, j])
        for c in range(3):
            free[c] = lower[c] < th[c] < upper[c]
        fit_ok = _polish(th, log_d, inv_log_b, p, lower, upper, free, jac, hess, polish_steps)
        fitted_law(th[0], th[1], th[2], log_d, factor_a, factor_b, inv_log_b, law_dg, law_u, law_g, q)
        for c in range(3):
            g_out[c] = grad_features[i, c]
        for j in range(k):
            gp[j] = 0.0
            gq[j] = 0.0
            gpres[j] = 0.0
        ok = _divergences_and_partials(p, q, pres, alpha, out, gp, gq, gpres, g_out)
        for c in range(3):
            features[i, c] = out[c]
        if not ok or (g_out[0] == 0.0 and g_out[1] == 0.0 and g_out[2] == 0.0):
            continue
        if fit_ok:
            for c in range(3):
                s = 0.0
                for j in range(k):
                    s += jac[j, c] * gq[j]
                v[c] = s
            if _solve_free(hess, v, free, y):
                for j in range(k):
                    gp[j] += 2.0 * (jac[j, 0] * y[0] + jac[j, 1] * y[1] + jac[j, 2] * y[2])
        dt = 0.0
        for j in range(k):
            grad_counts[i, j] += gp[j] / t + gpres[j] * presence_slope(counts[i, j])
            dt -= gp[j] * p[j] / t
        grad_totals[i] += dt
