"""Compiled kernels of the Benford detector: the generalized-Benford fit and the divergences.

Least-squares fit of the generalized Benford law ``p(d) = N log_b(1 + 1/(beta + d**gamma))``
to many first-digit pmfs, one Levenberg-Marquardt run per pmf (3 parameters: the
damped normal equations are a 3x3 system solved by Cramer's rule), and the
divergences between the pmfs and the fitted laws. Plain functions over arrays,
``@njit(cache=True)``, no ``fastmath``; callers validate the inputs
(:func:`minigan.benford.digits.fit_generalized_benford`, :func:`minigan.benford.image.divergences`).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

@njit(cache=True, error_model="numpy")
def _benford_cost(p, log_d, factor_a, factor_b, inv_log_b, n, beta, gamma, dg, u, g, bound):
    """Cost ``sum (N g(d) - p(d))**2`` at (n, beta, gamma), inf outside the domain
    ``beta + d**gamma > 0`` or when not finite; leaves ``d**gamma``, ``beta + d**gamma``
    and ``g(d)`` in ``dg``, ``u``, ``g`` for :func:`_benford_normal_equations`.

    The terms are non-negative, so once the partial sum reaches ``bound`` (the cost
    a candidate must beat) the candidate is refused whatever the remaining digits
    give: the evaluation stops there and returns inf (the caller only compares it
    with ``bound``; ``dg``, ``u``, ``g`` are then partly stale and unused).

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
