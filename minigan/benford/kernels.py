"""Compiled kernels of the Benford detector: the generalized-Benford fits, the divergences, distinct rows.

Least-squares fit of the generalized Benford law ``p(d) = N log_b(1 + 1/(beta + d**gamma))``
to many first-digit pmfs, one run per pmf: Levenberg-Marquardt on the three parameters
from (1, 1, 1) (the damped normal equations are a 3x3 system solved by Cramer's rule),
or, by default, a start on a fixed grid and a damped Newton method on ``(beta, gamma)``
with ``N`` solved in closed form. Then the divergences between the pmfs and the fitted
laws, and the row keys that find the distinct pmfs (each is fitted once). Plain
functions over arrays, ``@njit(cache=True)``, no ``fastmath``; callers validate the
inputs (:func:`minigan.benford.digits.fit_generalized_benford`,
:func:`minigan.benford.image.divergences`).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

@njit(cache=True, error_model="numpy", inline="always")
def _law_terms(j, log_d, factor_a, factor_b, inv_log_b, beta, gamma, dg, u, g):
    """``d**gamma``, ``beta + d**gamma`` and ``g(d) = log_b(1 + 1/(beta + d**gamma))`` of digit
    ``d = j + 1`` into ``dg[j]``, ``u[j]``, ``g[j]``; False (nothing written to ``u``, ``g``)
    outside the domain ``beta + d**gamma > 0``.

    ``d**gamma`` of a composite digit is the product of its factors' powers
    (``factor_a[j] * factor_b[j] == j + 1``, both 1-based and smaller, already in ``dg``);
    a prime (``factor_a[j] == 0``) pays one ``exp``.
    """
    fa = factor_a[j]
    if fa == 0:
        dgj = math.exp(gamma * log_d[j])
    else:
        dgj = dg[fa - 1] * dg[factor_b[j] - 1]
    dg[j] = dgj
    uj = beta + dgj
    if not uj > 0.0:
        return False
    u[j] = uj
    g[j] = math.log1p(1.0 / uj) * inv_log_b
    return True


@njit(cache=True, error_model="numpy")
def _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, n, beta, gamma, dg, u, g, bound):
    """Cost ``sum (N g(d) - p(d))**2`` at (n, beta, gamma), inf outside the domain
    ``beta + d**gamma > 0`` or when not finite; leaves ``d**gamma``, ``beta + d**gamma``
    and ``g(d)`` in ``dg``, ``u``, ``g`` for :func:`_benford_normal_equations`.

    The terms are non-negative, so once the partial sum reaches ``bound`` (the cost
    a candidate must beat) the candidate is refused whatever the remaining digits
    give: the evaluation stops there and returns inf (the caller only compares it
    with ``bound``; ``dg``, ``u``, ``g`` are then partly stale and unused).

    The law's terms come from :func:`_law_terms` (composite digits' powers as products).
    """
    cost = 0.0
    for j in range(p.size):
        if not _law_terms(j, log_d, factor_a, factor_b, inv_log_b, beta, gamma, dg, u, g):
            return np.inf
        r = n * g[j] - p[j]
        cost += r * r
        if cost >= bound:
            return np.inf
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
            cost = _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, th[0], th[1], th[2], dg, u, g, np.inf)
            _benford_normal_equations(p, log_d, inv_log_b, th[0], dg, u, g, jtj, jtr)
            for _ in range(max_iter):
                finite = _damped_step(jtj, jtr, lam, step)
                small_step = finite
                for c in range(3):
                    cand[c] = min(max(th[c] + step[c], lower[c]), upper[c])
                    if not abs(cand[c] - th[c]) <= tol * (tol + abs(th[c])):
                        small_step = False
                new_cost = _benford_cost(
                    p, log_d, factor_a, factor_b, inv_log_b, cand[0], cand[1], cand[2], dg, u, g, cost
                )
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


@njit(cache=True, error_model="numpy", inline="always")
def fitted_law(n, beta, gamma, log_d, factor_a, factor_b, inv_log_b, dg, u, g, out):
    """The law ``N g(d)`` over the digits into ``out`` (k,), with the terms of :func:`_law_terms`
    (``dg``, ``u``, ``g`` (k,) are scratch); NaN outside the domain.

    The fit writes its law with the same terms and the same product, so the detector's
    features, the soft features and the fit agree to the last bit: near the domain's wall
    (``beta + d**gamma`` close to 0) the law is ill-conditioned in the parameters, and any
    other formula would differ in the last digits there."""
    k = out.shape[0]
    for j in range(k):
        if not _law_terms(j, log_d, factor_a, factor_b, inv_log_b, beta, gamma, dg, u, g):
            for t in range(k):
                out[t] = np.nan
            return
        out[j] = n * g[j]


@njit(cache=True, error_model="numpy")
def benford_law(theta, log_d, factor_a, factor_b, inv_log_b, out):
    """The fitted laws (m, k) into ``out`` from ``theta`` (m, 3) as (N, beta, gamma) (:func:`fitted_law`);
    NaN rows stay NaN."""
    m, k = out.shape
    dg = np.empty(k)
    u = np.empty(k)
    g = np.empty(k)
    for i in range(m):
        fitted_law(theta[i, 0], theta[i, 1], theta[i, 2], log_d, factor_a, factor_b, inv_log_b, dg, u, g, out[i])


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


# ---------------------------------------------------------------------------
# the fit with N projected out, started from a grid


@njit(cache=True, error_model="numpy")
def benford_grid_start(pmf, grid_g, grid_inv_gg, grid_beta, grid_gamma, n_lo, n_hi, start):
    """The point of least cost of a fixed grid of ``(beta, gamma)``, for every row of ``pmf`` (m, k).

    ``grid_g`` (k, n_grid) holds ``g(d) = log_b(1 + 1/(beta + d**gamma))`` at each grid
    point and ``grid_inv_gg`` (n_grid,) ``1 / sum g**2``. The law is linear in ``N``: the
    best ``N`` of a grid point is ``g.p / g.g`` clipped to ``[n_lo, n_hi]``, its cost
    ``p.p - 2 N g.p + N**2 g.g``. ``g.p`` runs over the non-zero digits of the row only
    (a pmf of a small image has few). Ties go to the first grid point. Writes
    ``start`` (m, 3) as (N, beta, gamma); a row's start depends on that row alone.
    """
    m, k = pmf.shape
    n_grid = grid_g.shape[1]
    gp = np.empty(n_grid)
    cost = np.empty(n_grid)
    for i in range(m):
        p = pmf[i]
        pp = 0.0
        for j in range(n_grid):
            gp[j] = 0.0
        for d in range(k):
            pd = p[d]
            if pd != 0.0:
                pp += pd * pd
                for j in range(n_grid):
                    gp[j] += pd * grid_g[d, j]
        # the cost with N unclipped (branch-free, vectorized); clipping only raises a cost, so
        # when the best unclipped N is inside the box that point is also the best clipped one
        for j in range(n_grid):
            cost[j] = pp - gp[j] * (gp[j] * grid_inv_gg[j])
        best_j = np.argmin(cost)
        best_n = gp[best_j] * grid_inv_gg[best_j]
        if not n_lo <= best_n <= n_hi:  # rare: every point's cost with N clipped
            best = np.inf
            for j in range(n_grid):
                n = min(max(gp[j] * grid_inv_gg[j], n_lo), n_hi)
                c = pp - 2.0 * n * gp[j] + n * n / grid_inv_gg[j]
                if c < best:
                    best = c
                    best_j = j
                    best_n = n
        start[i, 0] = best_n
        start[i, 1] = grid_beta[best_j]
        start[i, 2] = grid_gamma[best_j]


@njit(cache=True, error_model="numpy")
def _projected_cost(p, nonzero, n_nonzero, log_d, factor_a, factor_b, inv_log_b, n_lo, n_hi, beta, gamma, dg, u, g):
    """Cost at (beta, gamma) with the best ``N`` in ``[n_lo, n_hi]``: returns (cost, N, N strictly inside).

    ``nonzero[:n_nonzero]`` are the digits with ``p > 0``. Leaves ``d**gamma``,
    ``beta + d**gamma`` and ``g(d)`` in ``dg``, ``u``, ``g`` (:func:`_law_terms`). One
    pass over the digits gives ``g.g`` and ``g.g`` over the digits where ``p`` is 0;
    the cost is then ``N**2`` times the latter plus the
    residuals of the non-zero digits (a pmf of a small image has few), a sum of
    non-negative terms (``p.p - 2 N g.p + N**2 g.g`` would cancel). The cost is inf
    outside the domain ``beta + d**gamma > 0`` or when not finite.
    """
    gg = 0.0
    gg_zero = 0.0
    for j in range(p.size):
        if not _law_terms(j, log_d, factor_a, factor_b, inv_log_b, beta, gamma, dg, u, g):
            return np.inf, 0.0, False
        gj = g[j]
        gg += gj * gj
        if p[j] == 0.0:
            gg_zero += gj * gj
    if not (gg > 0.0 and np.isfinite(gg)):
        return np.inf, 0.0, False
    gp = 0.0
    for t in range(n_nonzero):
        j = nonzero[t]
        gp += g[j] * p[j]
    n = min(max(gp / gg, n_lo), n_hi)
    cost = n * n * gg_zero
    for t in range(n_nonzero):
        j = nonzero[t]
        r = n * g[j] - p[j]
        cost += r * r
    if not np.isfinite(cost):
        return np.inf, 0.0, False
    return cost, n, n_lo < n < n_hi


@njit(cache=True, error_model="numpy")
def _projected_derivatives(p, log_d, inv_log_b, n, interior, chart, s, gamma, dg, u, g, out):
    """Half gradient and Hessians of ``f(beta, gamma) = min_N cost`` at the point
    :func:`_projected_cost` last evaluated, into ``out`` (11,).

    The full Hessian of ``cost(N, beta, gamma) / 2`` is ``J^T J + sum_d r_d H_d`` (the
    Gauss-Newton part plus the residuals times the second derivatives of the law);
    when ``N`` is inside its box, ``f``'s Hessian is its Schur complement on
    (beta, gamma) and ``f``'s gradient that of the cost (``d cost / d N = 0`` there),
    Golub and Pereyra's variable projection. They are then written in chart
    coordinates ``(s, gamma)`` with ``beta = exp(s) - exp(chart gamma)``:
    ``out[0:2]`` gradient, ``out[2:5]`` Hessian (00, 01, 11), ``out[5:8]`` its
    Gauss-Newton part, and with beta held fixed ``out[8:11]``: d/d gamma, its
    Hessian and Gauss-Newton part.
    """
    h_nn = h_nb = h_ng = h_bb = h_bg = h_gg = 0.0
    e_nb = e_ng = e_bb = e_bg = e_gg = 0.0
    f_b = f_g = 0.0
    for j in range(p.size):
        uj = u[j]
        q = 1.0 / (uj * (uj + 1.0))
        gu = -inv_log_b * q  # d g / d u
        guu = inv_log_b * (2.0 * uj + 1.0) * q * q  # d2 g / d u2
        w = dg[j] * log_d[j]  # d u / d gamma
        r = n * g[j] - p[j]
        j_n = g[j]
        j_b = n * gu
        j_g = j_b * w
        h_nn += j_n * j_n
        e_nb += j_n * j_b
        e_ng += j_n * j_g
        e_bb += j_b * j_b
        e_bg += j_b * j_g
        e_gg += j_g * j_g
        h_nb += r * gu
        h_ng += r * gu * w
        h_bb += r * n * guu
        h_bg += r * n * guu * w
        h_gg += r * n * (guu * w * w + gu * w * log_d[j])
        f_b += r * j_b
        f_g += r * j_g
    h_nb += e_nb
    h_ng += e_ng
    h_bb += e_bb
    h_bg += e_bg
    h_gg += e_gg
    if interior and h_nn > 0.0:
        h_bb -= h_nb * h_nb / h_nn
        h_bg -= h_nb * h_ng / h_nn
        h_gg -= h_ng * h_ng / h_nn
        e_bb -= e_nb * e_nb / h_nn
        e_bg -= e_nb * e_ng / h_nn
        e_gg -= e_ng * e_ng / h_nn
    b_s = math.exp(s)  # d beta / d s = d2 beta / d s2
    m_g = math.exp(chart * gamma)
    b_g = -chart * m_g
    b_gg = -chart * chart * m_g
    out[0] = f_b * b_s
    out[1] = f_b * b_g + f_g
    out[2] = h_bb * b_s * b_s + f_b * b_s
    out[3] = (h_bb * b_g + h_bg) * b_s
    out[4] = h_bb * b_g * b_g + 2.0 * h_bg * b_g + h_gg + f_b * b_gg
    out[5] = e_bb * b_s * b_s
    out[6] = (e_bb * b_g + e_bg) * b_s
    out[7] = e_bb * b_g * b_g + 2.0 * e_bg * b_g + e_gg
    out[8] = f_g
    out[9] = h_gg
    out[10] = e_gg


@njit(cache=True, error_model="numpy")
def _damped_2x2(h00, h01, h11, e00, e01, e11, lam):
    """Entries (00, 01, 11, det) of ``H + lam diag(E) + lam 1e-12 I`` when positive definite, else of
    ``E + lam diag(E) + lam 1e-12 I`` (Gauss-Newton); det <= 0 or not finite when neither is usable."""
    a00 = h00 + lam * e00 + lam * 1e-12
    a11 = h11 + lam * e11 + lam * 1e-12
    det = a00 * a11 - h01 * h01
    if a00 > 0.0 and det > 0.0 and np.isfinite(det):
        return a00, h01, a11, det
    a00 = e00 * (1.0 + lam) + lam * 1e-12
    a11 = e11 * (1.0 + lam) + lam * 1e-12
    return a00, e01, a11, a00 * a11 - e01 * e01


@njit(cache=True, error_model="numpy")
def _damped_1d(h, e, lam):
    """``h + lam e + lam 1e-12`` when positive, else ``e (1 + lam) + lam 1e-12``."""
    a = h + lam * e + lam * 1e-12
    if a > 0.0 and np.isfinite(a):
        return a
    return e * (1.0 + lam) + lam * 1e-12


@njit(cache=True, error_model="numpy")
def _stationary(d, beta, gamma, lower, upper, cost, gtol):
    """Whether the half gradient of :func:`_projected_derivatives` (``d``) is at most ``gtol``
    times the cost, ``s`` and ``gamma`` scaled alike (``|d s| + max(1, |gamma|) |d gamma|``),
    leaving out a parameter on a wall of the box that the gradient pushes outwards."""
    g_s = d[0]
    g_g = d[1]
    if (beta <= lower[1] and g_s > 0.0) or (beta >= upper[1] and g_s < 0.0):
        g_s = 0.0
        g_g = d[8]
    if (gamma <= lower[2] and g_g > 0.0) or (gamma >= upper[2] and g_g < 0.0):
        g_g = 0.0
    return abs(g_s) + max(1.0, abs(gamma)) * abs(g_g) <= gtol * cost


@njit(cache=True, error_model="numpy", inline="always")
def _projected_step(d, lam, beta, gamma, lower, upper):
    """The damped step ``(step_s, step_g, finite, hold_beta)`` of :func:`projected_benford_fit` from
    the derivatives ``d`` of :func:`_projected_derivatives`: ``(H + lam diag(E)) step = -grad``
    (or its Gauss-Newton part), a parameter on a wall of the box that the step pushes outwards
    held there and the step solved for the other one."""
    a00, a01, a11, det = _damped_2x2(d[2], d[3], d[4], d[5], d[6], d[7], lam)
    finite = det > 0.0 and np.isfinite(det)
    step_s = 0.0
    step_g = 0.0
    if finite:
        step_s = (d[1] * a01 - d[0] * a11) / det
        step_g = (d[0] * a01 - d[1] * a00) / det
        finite = np.isfinite(step_s) and np.isfinite(step_g)
    hold_b = finite and ((beta <= lower[1] and step_s < 0.0) or (beta >= upper[1] and step_s > 0.0))
    hold_g = finite and ((gamma <= lower[2] and step_g < 0.0) or (gamma >= upper[2] and step_g > 0.0))
    if hold_b:
        step_s = 0.0
        step_g = 0.0
        if not hold_g:  # gamma alone, beta fixed on its wall
            a = _damped_1d(d[9], d[10], lam)
            step_g = -d[8] / a if a > 0.0 else 0.0
    elif hold_g:
        step_g = 0.0
        a = _damped_1d(d[2], d[5], lam)
        step_s = -d[0] / a if a > 0.0 else 0.0
    finite = finite and np.isfinite(step_s) and np.isfinite(step_g)
    return step_s, step_g, finite, hold_b


@njit(cache=True, error_model="numpy")
def _newton_decrease(d, beta, gamma, lower, upper):
    """The decrease of the cost that the quadratic model predicts for an undamped step from
    derivatives ``d`` (:func:`_projected_derivatives`): ``-g . step = g^T A^-1 g`` (the Newton
    decrement), ``g`` the half gradient and ``A`` the Hessian of half the cost, or its
    Gauss-Newton part where that is not positive definite, on the parameters not held on a
    wall; inf when that step is not a finite descent step, so that the caller takes it."""
    step_s, step_g, finite, hold_b = _projected_step(d, 0.0, beta, gamma, lower, upper)
    if not finite:
        return np.inf
    g_g = d[8] if hold_b else d[1]
    decrease = -(d[0] * step_s + g_g * step_g)
    return decrease if decrease >= 0.0 else np.inf


@njit(cache=True, error_model="numpy")
def projected_benford_fit(
    pmf, start, log_d, factor_a, factor_b, inv_log_b, lower, upper, max_iter, tol, gtol, polish_tol, polish_iter,
    theta, rss, success, n_iter, law,
):
    """Fit N, beta, gamma to every row of ``pmf`` (m, k) from ``start`` (m, 3) by a damped Newton
    method on ``f(beta, gamma) = min_N cost`` (``N`` in closed form, see :func:`_projected_cost`).

    Coordinates ``(s, gamma)`` with ``beta = exp(s) - exp(c gamma)``: ``exp(s)`` is the smallest
    ``beta + d**gamma`` over the digits (digit 1 when the start has ``gamma >= 0``, ``c = 0``;
    digit ``k`` otherwise, ``c = log k``), so the walls of the domain are at ``s = -inf``
    and the fits that end next to them (a law that puts almost all its mass on one digit)
    are reached in a few steps. A step solves ``(H + lam diag(E)) step = -grad`` with the
    Newton Hessian ``H`` when that is positive definite, else with its Gauss-Newton part
    ``E``; damping ``lam`` starts at 1e-3, /10 on an accepted step (down to 1e-12), x10 on a
    refused one. A parameter on a wall of the box (``lower``, ``upper`` (3,)) that the step
    pushes outwards is held there and the step solved for the other one; a step that would
    take ``beta`` out of the box (chart 0) is shortened to end on its wall, and such a step
    never counts towards convergence.

    Converged as :func:`generalized_benford_fit` (an accepted step whose relative cost
    decrease is at most ``tol``, a step at most ``tol (tol + |x|)`` in both coordinates, or a
    cost at most 1e-24), and, but for the last case, at a point whose gradient is at most
    ``gtol`` times the cost (:func:`_stationary`); the fit then goes on with ``polish_tol`` for at most
    ``polish_iter`` more steps, ending at its best point, unless the Newton decrement there
    promises less than ``polish_tol`` times the cost (:func:`_newton_decrease`). Gives up (success False, NaN)
    when the damping exceeds 1e16, a step is not finite, or after ``max_iter`` steps
    without converging. Writes ``theta`` (m, 3), ``rss`` (m,), ``success`` (m,),
    ``n_iter`` (m,) and the fitted law ``law`` (m, k) (bit for bit :func:`fitted_law` of
    ``theta``; NaN rows where the fit failed); a row's result depends on that row and its
    start alone.
    """
    m, k = pmf.shape
    dg = np.empty(k)
    u = np.empty(k)
    g = np.empty(k)
    cand_dg = np.empty(k)
    cand_u = np.empty(k)
    cand_g = np.empty(k)
    d = np.empty(11)
    nonzero = np.empty(k, dtype=np.int64)
    log_last = log_d[k - 1]
    s_upper = math.log(upper[1] + 1.0)  # beta's walls in s when the chart is 0 (beta = exp(s) - 1)
    s_lower = math.log(lower[1] + 1.0)
    for i in range(m):
        p = pmf[i]
        n_iter[i] = 0
        valid = True
        total = 0.0
        n_nonzero = 0
        for j in range(k):
            if not np.isfinite(p[j]):
                valid = False
            total += p[j]
            if p[j] != 0.0:
                nonzero[n_nonzero] = j
                n_nonzero += 1
        converged = False
        cost = np.inf
        n = np.nan
        beta = start[i, 1]
        gam = start[i, 2]
        if valid and total > 0.0:
            chart = log_last if gam < 0.0 else 0.0
            s = math.log(beta + math.exp(chart * gam))
            cost, n, interior = _projected_cost(
                p, nonzero, n_nonzero, log_d, factor_a, factor_b, inv_log_b, lower[0], upper[0], beta, gam, dg, u, g
            )
            lam = 1e-3
            fresh = False
            extra = 0
            cur_tol = tol
            for _ in range(max_iter):
                if not fresh:
                    _projected_derivatives(p, log_d, inv_log_b, n, interior, chart, s, gam, dg, u, g, d)
                    fresh = True
                step_s, step_g, finite, hold_b = _projected_step(d, lam, beta, gam, lower, upper)
                shortened = False  # the step ends on a wall of beta, ``wall_b``
                wall_b = beta
                if finite and chart == 0.0 and not hold_b and not s_lower <= s + step_s <= s_upper:
                    # a step that takes beta out of the box is shortened to end on its wall, direction
                    # kept: clipping beta alone turns the step off the valley that the fit follows
                    # there (towards beta = 1e6 the cost flattens like exp(-s) and the steps would
                    # zigzag), and the fit then goes on along the wall
                    shortened = True
                    s_wall, wall_b = (s_upper, upper[1]) if step_s > 0.0 else (s_lower, lower[1])
                    t = (s_wall - s) / step_s
                    step_s *= t
                    step_g *= t
                new_g = min(max(gam + step_g, lower[2]), upper[2])
                shift = math.exp(chart * new_g)
                if hold_b:
                    new_b = beta
                elif shortened:
                    new_b = wall_b  # exactly on the wall, where the next step's hold tests look
                else:
                    new_b = min(max(math.exp(s + step_s) - shift, lower[1]), upper[1])
                new_cost = np.inf
                new_s = s
                new_n = n
                new_interior = interior
                if new_b + shift > 0.0:
                    new_s = math.log(new_b + shift)
                    new_cost, new_n, new_interior = _projected_cost(
                        p, nonzero, n_nonzero, log_d, factor_a, factor_b, inv_log_b, lower[0], upper[0], new_b, new_g,
                        cand_dg, cand_u, cand_g,
                    )
                n_iter[i] += 1
                # a step shortened to a wall is small because of the wall, not because the fit converged
                done = finite and not shortened and abs(new_s - s) <= cur_tol * (cur_tol + abs(s)) \
                    and abs(new_g - gam) <= cur_tol * (cur_tol + abs(gam))
                if finite and new_cost < cost:
                    if (cost - new_cost <= cur_tol * cost and not shortened) or new_cost <= 1e-24:
                        done = True
                    s, gam, beta, n, interior, cost = new_s, new_g, new_b, new_n, new_interior, new_cost
                    dg, cand_dg = cand_dg, dg
                    u, cand_u = cand_u, u
                    g, cand_g = cand_g, g
                    fresh = False
                    lam = max(lam / 10.0, 1e-12)
                else:
                    lam = lam * 10.0
                if done and not converged and cost > 1e-24:
                    # a tolerance met in a valley that runs into the box's wall is not an optimum:
                    # go on along it (to the wall, or to max_iter and failure)
                    if not fresh:
                        _projected_derivatives(p, log_d, inv_log_b, n, interior, chart, s, gam, dg, u, g, d)
                        fresh = True
                    done = _stationary(d, beta, gam, lower, upper, cost, gtol)
                if converged:
                    extra += 1
                if done:
                    if converged:
                        break
                    converged = True
                    cur_tol = polish_tol
                    if fresh and _newton_decrease(d, beta, gam, lower, upper) <= polish_tol * cost:
                        break  # a polish step would gain less than rounding: skip it
                if not finite or lam > 1e16 or (converged and extra >= polish_iter):
                    break
        ok = converged and np.isfinite(cost) and np.isfinite(n) and np.isfinite(beta) and np.isfinite(gam)
        success[i] = ok
        rss[i] = cost if ok else np.nan
        theta[i, 0] = n if ok else np.nan
        theta[i, 1] = beta if ok else np.nan
        theta[i, 2] = gam if ok else np.nan
        for j in range(k):  # the terms of the accepted point, as fitted_law would compute them
            law[i, j] = n * g[j] if ok else np.nan


# ---------------------------------------------------------------------------
# first-digit counts of quantized DCT coefficients


@njit(cache=True, error_model="numpy")
def quantized_digit_counts(coefs, tables, image_index, luts, counts):
    """First-digit counts of the quantized coefficients, for every quality factor and base in one pass.

    ``coefs`` (n_blocks, n_coef) DCT coefficients; ``tables`` (n_qf, n_coef) the quantization
    steps; each value is quantized as ``trunc(c / t + copysign(0.5, c / t))`` (rounding half
    away from zero, as :func:`minigan.benford.image._quantize`), and its first digit in base
    ``j`` is ``luts[j, |q|]`` (0 for 0; ``luts`` (n_bases, size) covers every ``|q|``). Adds
    one to ``counts[j][image_index[b], qf, coef, digit]`` (``counts`` a tuple of
    (n_images, n_qf, n_coef, base_j) int64 arrays).
    """
    n_blocks, n_coef = coefs.shape
    n_qf = tables.shape[0]
    n_bases = luts.shape[0]
    for b in range(n_blocks):
        img = image_index[b]
        for i in range(n_qf):
            for c in range(n_coef):
                q = coefs[b, c] / tables[i, c]
                a = int(abs(np.trunc(q + np.copysign(0.5, q))))
                for j in range(n_bases):
                    counts[j][img, i, c, luts[j, a]] += 1


# ---------------------------------------------------------------------------
# distinct rows


@njit(cache=True)
def row_keys(bits, multipliers, keys):
    """A 64-bit key of every row of ``bits`` (m, k) uint64 into ``keys`` (m,):
    ``sum_j (b_j ^ (b_j >> 29)) * multipliers[j]`` modulo 2**64 (``multipliers`` odd).

    The high half is folded into the low one first: a lone sign bit (``-0.0``) times an
    odd number stays the sign bit, so two of them would cancel in the wrapping sum."""
    m, k = bits.shape
    shift = np.uint64(29)
    for i in range(m):
        key = np.uint64(0)
        for j in range(k):
            b = bits[i, j]
            key += (b ^ (b >> shift)) * multipliers[j]
        keys[i] = key


@njit(cache=True)
def rows_equal_to(bits, reference, same):
    """``same[i]``: row ``i`` of ``bits`` (m, k) equals row ``reference[i]`` bit for bit."""
    m, k = bits.shape
    for i in range(m):
        r = reference[i]
        equal = True
        for j in range(k):
            if bits[i, j] != bits[r, j]:
                equal = False
                break
        same[i] = equal
