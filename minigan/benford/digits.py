"""Leading digits in any base, Benford's law, and the tests that compare them.

Digits are computed without strings and without a Python loop over values:

* integer arrays (any width, signed or unsigned) take an exact path: ``|x|`` as
  ``uint64`` (so that ``-2**63`` works) is located among the powers of the base
  with ``searchsorted``, then divided by that power;
* float arrays (float16/32/64) take ``k = floor(log_b |x|)``, scale ``|x|`` by
  ``b**-k`` in two halves (so ``b**-k`` never overflows or underflows), and
  correct ``k`` by one when rounding put the mantissa outside ``[1, b)``.

A float stores a decimal literal only approximately (0.3 is 0.29999999999999998890
in float64), so the mantissa is inflated by a few units in the last place of the
*input* dtype before taking its floor: every value gets the digits of the
shortest literal that rounds to it, and exact powers of the base (1000, 0.001)
get first digit 1. Zeros, NaN and inf have no digit; they are dropped and
counted.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_choice, check_int, check_real, describe

TESTS = ("first", "second", "first_two")

# Nigrini's MAD thresholds (Nigrini 2012, "Benford's Law", table 7.1; the values
# benford_py uses). Upper bounds of "close", "acceptable" and "marginal"; above
# the last one the data is "nonconforming". They were calibrated for base 10.
NIGRINI_MAD = {
    "first": (0.006, 0.012, 0.015),
    "second": (0.008, 0.010, 0.012),
    "first_two": (0.0012, 0.0018, 0.0022),
}
CONFORMITY_LABELS = ("close conformity", "acceptable conformity", "marginal conformity", "nonconformity")


# ---------------------------------------------------------------------------
# digits


def _check_base(base: Any) -> int:
    return check_int(base, "base", minimum=3)


def _as_number_array(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a 1-D integer or float array (bool, complex, str and object refused)."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be a sequence of numbers, got {describe(x)}") from None
        if arr.dtype == object:
            # Python ints beyond 64 bits land here; float64 keeps their leading digits.
            try:
                arr = arr.astype(np.float64)
            except (ValueError, TypeError):
                raise TypeError(f"{name} must hold only numbers, got {describe(x)}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an integer or float array, got dtype {arr.dtype}"
            + ("; convert booleans with .astype(int) if you really mean 0/1" if arr.dtype.kind == "b" else "")
        )
    return arr.reshape(-1)


def _int_powers(base: int) -> np.ndarray:
    """All powers ``base**k`` that fit in uint64, as uint64."""
    powers = [1]
    while powers[-1] * base <= np.iinfo(np.uint64).max:
        powers.append(powers[-1] * base)
    return np.array(powers, dtype=np.uint64)


def _int_leading(arr: np.ndarray, base: int, n_digits: int) -> tuple[np.ndarray, int]:
    """Exact leading ``n_digits`` digits (as one number) of non-zero integers."""
    if arr.dtype.kind == "i":
        u = arr.astype(np.int64).astype(np.uint64)
        negative = arr < 0
        u[negative] = ~u[negative] + np.uint64(1)  # two's complement magnitude; -2**63 -> 2**63
    else:
        u = arr.astype(np.uint64)
    keep = u != 0
    n_dropped = int(arr.size - np.count_nonzero(keep))
    u = u[keep]
    powers = _int_powers(base)
    k = np.searchsorted(powers, u, side="right") - 1  # base**k <= u < base**(k+1)
    lead = u // powers[k]
    for extra in range(1, n_digits):
        # next digit; a value with fewer digits than asked has trailing zeros (7 -> 7.0)
        shift = k - extra
        has = shift >= 0
        nxt = np.zeros(u.shape, dtype=np.uint64)
        nxt[has] = (u[has] // powers[shift[has]]) % np.uint64(base)
        lead = lead * np.uint64(base) + nxt
    return lead.astype(np.int64), n_dropped


def _float_leading(arr: np.ndarray, base: int, n_digits: int) -> tuple[np.ndarray, int]:
    """Leading ``n_digits`` digits (as one number) of non-zero finite floats."""
    # Tolerance: the representation error of the input dtype, but at least the
    # few float64 roundings of the scaling below.
    tol = max(float(np.finfo(arr.dtype).eps), 8.0 * float(np.finfo(np.float64).eps))
    a = np.abs(arr.astype(np.float64))
    keep = np.isfinite(a) & (a != 0)
    n_dropped = int(a.size - np.count_nonzero(keep))
    a = a[keep]
    fb = float(base)
    k = np.floor(np.log(a) / math.log(base))
    m = _scale(a, -k, fb)
    # rounding in log() can be off by one exponent either way
    up = m * (1.0 + tol) >= fb
    m[up] /= fb
    down = m * (1.0 + tol) < 1.0
    m[down] *= fb
    m = m * (1.0 + tol)
    lead = np.floor(m)
    lead = np.clip(lead, 1.0, fb - 1.0)
    frac = m - lead
    for _ in range(1, n_digits):
        frac = frac * fb
        nxt = np.clip(np.floor(frac), 0.0, fb - 1.0)
        frac = frac - nxt
        lead = lead * fb + nxt
    return lead.astype(np.int64), n_dropped


def _scale(a: np.ndarray, e: np.ndarray, fb: float) -> np.ndarray:
    """``a * fb**e`` with the power split in two so neither factor over/underflows."""
    e1 = np.floor(e / 2.0)
    e2 = e - e1
    with np.errstate(over="ignore", under="ignore"):
        return (a * np.power(fb, e1)) * np.power(fb, e2)


def _leading(x: Any, base: Any, n_digits: int) -> tuple[np.ndarray, int]:
    base = _check_base(base)
    arr = _as_number_array(x)
    if arr.dtype.kind in "iu":
        return _int_leading(arr, base, n_digits)
    return _float_leading(arr, base, n_digits)


def first_digits(x: Any, base: int = 10, *, return_dropped: bool = False) -> Any:
    """First significant digit of every non-zero finite value.

    Parameters
    ----------
    x : array-like, any shape
        Integers or floats of any width; negative values give the digit of ``|x|``.
        Flattened.
    base : int
        The base, at least 3.
    return_dropped : bool
        Also return how many values had no digit (zero, NaN, inf).

    Returns
    -------
    digits : ndarray of int64, shape (n,)
        Values in ``1 .. base-1``, in input order, the dropped values left out.
    n_dropped : int
        Only when ``return_dropped``.

    Examples
    --------
    >>> first_digits([0.02, 1000, 0.001, -345, 0, float("nan")]).tolist()
    [2, 1, 1, 3]
    """
    digits, dropped = _leading(x, base, 1)
    return (digits, dropped) if return_dropped else digits


def second_digits(x: Any, base: int = 10, *, return_dropped: bool = False) -> Any:
    """Second significant digit of every non-zero finite value.

    A value with a single significant digit has second digit 0 (7 is 7.0).

    Returns
    -------
    digits : ndarray of int64, shape (n,)
        Values in ``0 .. base-1``.
    n_dropped : int
        Only when ``return_dropped``.
    """
    lead, dropped = _leading(x, base, 2)
    digits = lead % int(base)
    return (digits, dropped) if return_dropped else digits


def first_two_digits(x: Any, base: int = 10, *, return_dropped: bool = False) -> Any:
    """First two significant digits as one number ``d1 * base + d2``.

    Returns
    -------
    digits : ndarray of int64, shape (n,)
        Values in ``base .. base**2 - 1`` (10..99 in base 10).
    n_dropped : int
        Only when ``return_dropped``.
    """
    lead, dropped = _leading(x, base, 2)
    return (lead, dropped) if return_dropped else lead


# ---------------------------------------------------------------------------
# the laws


def digit_support(test: str = "first", base: int = 10) -> np.ndarray:
    """The digits a test counts: ``1..b-1``, ``0..b-1`` or ``b..b**2-1``, shape (n_bins,)."""
    check_choice(test, "test", TESTS)
    b = _check_base(base)
    if test == "first":
        return np.arange(1, b, dtype=np.int64)
    if test == "second":
        return np.arange(0, b, dtype=np.int64)
    return np.arange(b, b * b, dtype=np.int64)


def benford_pmf(test: str = "first", base: int = 10) -> np.ndarray:
    """Benford's law for a digit test, shape (n_bins,), over :func:`digit_support`.

    ``P(d1) = log_b(1 + 1/d1)``; the first-two law is the same formula on
    ``b..b**2-1``; the second-digit law sums the first-two law over ``d1``.
    """
    check_choice(test, "test", TESTS)
    b = _check_base(base)
    log_b = math.log(b)
    if test == "first":
        d = np.arange(1, b, dtype=np.float64)
        return np.log1p(1.0 / d) / log_b
    two = np.log1p(1.0 / np.arange(b, b * b, dtype=np.float64)) / log_b
    if test == "first_two":
        return two
    return two.reshape(b - 1, b).sum(axis=0)


def generalized_benford_pmf(N: Any, beta: Any, gamma: Any, base: int = 10) -> np.ndarray:
    """Generalized Benford law ``p(d) = N log_b(1 + 1/(beta + d**gamma))`` (Fu, Shi, Su 2007).

    Parameters
    ----------
    N, beta, gamma : float or array, broadcastable to shape (...)
        Parameters; ``N=1, beta=0, gamma=1`` is Benford's law.
    base : int

    Returns
    -------
    ndarray, shape (..., base-1)
        Over the first digits ``1..base-1``; it sums to 1 only for suitable parameters.
    """
    b = _check_base(base)
    N, beta, gamma = (np.asarray(v, dtype=np.float64)[..., None] for v in (N, beta, gamma))
    d = np.arange(1, b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return N * np.log1p(1.0 / (beta + d**gamma)) / math.log(b)


@dataclass(frozen=True)
class GeneralizedBenfordFit:
    """Least-squares fit of :func:`generalized_benford_pmf`, one entry per fitted pmf.

    Attributes
    ----------
    N, beta, gamma : ndarray, shape (...)
        Fitted parameters (NaN where the fit failed).
    success : ndarray of bool, shape (...)
    rss : ndarray, shape (...)
        Residual sum of squares (NaN where the fit failed).
    n_iter : ndarray of int, shape (...)
    """

    N: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    success: np.ndarray
    rss: np.ndarray
    n_iter: np.ndarray

    def pmf(self, base: int) -> np.ndarray:
        """The fitted law, shape (..., base-1), NaN rows where the fit failed."""
        return generalized_benford_pmf(self.N, self.beta, self.gamma, base)


# The fit moves inside this box; degenerate pmfs (one or two non-zero digits) are
# fitted ever better as N, beta, gamma grow without end, and stop at its walls.
_FIT_LOWER = np.array([-1e6, -1.0 + 1e-9, -50.0])
_FIT_UPPER = np.array([1e6, 1e6, 50.0])


FIT_STARTS = ("grid", "ones")

# Newton steps after convergence, to get the cost down to rounding (see ``_fit_distinct_rows``).
_POLISH_TOL = 1e-14
_POLISH_ITER = 2
# A fit that meets ``tol`` with a larger gradient (relative to its cost) is in a valley, not at an optimum.
_STATIONARY_GTOL = 1e-2


def fit_generalized_benford(
    pmf: Any, base: int = 10, *, max_iter: int = 200, tol: float = 1.5e-8, start: str = "grid"
) -> GeneralizedBenfordFit:
    """Fit ``N, beta, gamma`` of the generalized Benford law to first-digit pmfs.

    Least squares, one compiled run per distinct pmf. Steps that make
    ``beta + d**gamma <= 0`` for some digit are refused, and the parameters are kept
    in the box ``|N| <= 1e6``, ``-1 < beta <= 1e6``, ``|gamma| <= 50``: a pmf with only
    a few non-zero digits is fitted ever better as the parameters grow, and its fit
    stops at the box's wall. A pmf that is not finite, sums to zero, or whose fit
    does not converge gets ``success=False`` and NaN parameters; nothing is raised
    for it, so one bad pmf never stops a batch.

    ``start="grid"`` (the default): the law is linear in ``N``, so ``N`` is solved in
    closed form for any ``(beta, gamma)`` (variable projection, Golub and Pereyra
    1973). The fit starts at the best point of a fixed grid of ``(beta, gamma)`` and
    runs a damped Newton method on the two of them
    (:func:`minigan.benford.kernels.projected_benford_fit`); ``tol`` met where the
    gradient is still large (a valley running into the box's wall) does not stop it.
    It then polishes the converged point for a few more steps with ``tol = 1e-14``; a pmf whose run fails
    is fitted again as with ``start="ones"``. ``start="ones"``: Levenberg-Marquardt
    on all three parameters from ``N = beta = gamma = 1``, as in the ICPR 2020 recipe
    (:func:`minigan.benford.kernels.generalized_benford_fit`); it converges in far
    more steps, often to a higher cost, and fails more often.

    Parameters
    ----------
    pmf : array-like, shape (..., base-1)
        Observed first-digit proportions for digits ``1..base-1``.
    base : int
    max_iter : int
        Steps per run (each one damped Newton or Gauss-Newton step per pmf).
    tol : float
        Convergence (MINPACK's default ``ftol``/``xtol``): relative decrease of the
        residual sum of squares below ``tol`` on an accepted step, or a step
        smaller than ``tol`` relative to the parameters.
    start : {"grid", "ones"}
        Where the fit starts, see above.

    Returns
    -------
    GeneralizedBenfordFit
        Arrays of shape (...); ``n_iter`` counts the steps of both runs.
    """
    b = _check_base(base)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_real(tol, "tol", minimum=0.0)
    start = check_choice(start, "start", FIT_STARTS)
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] != b - 1:
        raise ValueError(f"pmf must have shape (..., {b - 1}) for base {b}, got shape {p.shape}")
    shape = p.shape[:-1]
    inverse, theta, rss, success, n_iter = _fit_distinct_rows(p.reshape(-1, b - 1), b, max_iter, tol, start)[1:6]
    return GeneralizedBenfordFit(
        N=theta[inverse, 0].reshape(shape),
        beta=theta[inverse, 1].reshape(shape),
        gamma=theta[inverse, 2].reshape(shape),
        success=success[inverse].reshape(shape),
        rss=rss[inverse].reshape(shape),
        n_iter=n_iter[inverse].reshape(shape),
    )


def _fit_distinct_rows(
    p: np.ndarray, base: int, max_iter: int = 200, tol: float = 1.5e-8, start: str = "grid"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fit of every distinct row of ``p`` (m, base-1), validated by the caller.

    The fit is a deterministic function of the pmf, and pmfs from small images
    repeat (few blocks -> few possible histograms): each distinct one is fitted once.

    Returns
    -------
    first : (u,) index of one row of ``p`` per distinct row
    inverse : (m,) distinct row of each row: ``p[first][inverse]`` is ``p``
    theta : (u, 3) N, beta, gamma; rss, success, n_iter : (u,)
    law : (u, base-1) the fitted law, :func:`minigan.benford.kernels.fitted_law` of ``theta``
        (NaN rows where the fit failed)
    """
    from . import kernels  # Numba: imported on first use to keep ``import minigan`` cheap

    p = np.ascontiguousarray(p, dtype=np.float64)
    first, inverse = _distinct_rows(p)
    distinct = np.ascontiguousarray(p[first])
    m = distinct.shape[0]
    theta = np.empty((m, 3))
    rss = np.empty(m)
    success = np.empty(m, dtype=np.bool_)
    n_iter = np.empty(m, dtype=np.int64)
    law = np.empty((m, base - 1))
    log_d = np.log(np.arange(1, base, dtype=np.float64))
    factor_a, factor_b = _digit_factors(base)
    inv_log_b = 1.0 / math.log(base)
    if start == "grid":
        grid_g, grid_inv_gg, grid_beta, grid_gamma = _start_grid(base)
        starts = np.empty((m, 3))
        kernels.benford_grid_start(
            distinct, grid_g, grid_inv_gg, grid_beta, grid_gamma, _FIT_LOWER[0], _FIT_UPPER[0], starts
        )
        kernels.projected_benford_fit(
            distinct, starts, log_d, factor_a, factor_b, inv_log_b, _FIT_LOWER, _FIT_UPPER, max_iter, tol,
            _STATIONARY_GTOL, _POLISH_TOL, _POLISH_ITER, theta, rss, success, n_iter, law,
        )
        failed = np.flatnonzero(~success)
    else:
        n_iter[:] = 0
        failed = np.arange(m)
    if failed.size:
        again = np.ascontiguousarray(distinct[failed])
        theta_f, rss_f = np.empty((failed.size, 3)), np.empty(failed.size)
        success_f, n_iter_f = np.empty(failed.size, dtype=np.bool_), np.empty(failed.size, dtype=np.int64)
        kernels.generalized_benford_fit(
            again, log_d, factor_a, factor_b, inv_log_b, _FIT_LOWER, _FIT_UPPER, max_iter, tol,
            theta_f, rss_f, success_f, n_iter_f,
        )
        theta[failed], rss[failed], success[failed] = theta_f, rss_f, success_f
        n_iter[failed] += n_iter_f
        law_f = np.empty((failed.size, base - 1))
        kernels.benford_law(theta_f, log_d, factor_a, factor_b, inv_log_b, law_f)
        law[failed] = law_f
    return first, inverse, theta, rss, success, n_iter, law


@functools.lru_cache(maxsize=None)
def _start_grid(base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The start points of the fit for one base: ``g`` (base-1, n_grid) and ``1 / sum g**2``
    (n_grid,) at each point, its beta and gamma (n_grid,); read-only.

    ``gamma``: 0, +-(6 values log-spaced over 1e-6..50), 8 values over 0.1..3 and 4
    log-spaced over 3..20 (where most fits end). ``beta``: ``eps - 1`` for ``gamma >= 0``
    and ``eps - (base-1)**gamma`` for ``gamma < 0``, with ``eps`` (the smallest
    ``beta + d**gamma``) log-spaced over 1e-9..1e6 in 11 values (fits end close to
    ``eps = 0``, where one digit takes the mass, and at the wall ``beta = 1e6``), plus 3
    values of ``beta`` over -0.9..1; clipped to the box, only points inside the domain kept.
    About 330 points: a finer grid (about 5,000) saves a few Newton steps but costs more
    than they do.
    """
    eps = np.logspace(-9.0, 6.0, 11)
    gamma_abs = np.logspace(-6.0, math.log10(50.0), 6)
    gammas = np.unique(np.r_[-gamma_abs, 0.0, gamma_abs, np.linspace(0.1, 3.0, 8), np.geomspace(3.0, 20.0, 4)])
    e, gam = (a.ravel() for a in np.meshgrid(eps, gammas, indexing="ij"))
    beta = np.where(gam < 0, e - (base - 1.0) ** np.minimum(gam, 0.0), e - 1.0)
    plain_beta, plain_gamma = (a.ravel() for a in np.meshgrid(np.linspace(-0.9, 1.0, 3), gammas, indexing="ij"))
    beta = np.clip(np.r_[beta, plain_beta], _FIT_LOWER[1], _FIT_UPPER[1])
    gam = np.r_[gam, plain_gamma]
    d = np.arange(1, base, dtype=np.float64)[:, None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        g = np.log1p(1.0 / (beta + d**gam)) / math.log(base)
    keep = np.isfinite(g).all(axis=0) & (g > 0).all(axis=0)
    g = np.ascontiguousarray(g[:, keep])
    arrays = (g, 1.0 / np.einsum("ij,ij->j", g, g), np.ascontiguousarray(beta[keep]), np.ascontiguousarray(gam[keep]))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _digit_factors(base: int) -> tuple[np.ndarray, np.ndarray]:
    """Two smaller factors ``a * b == d`` of each composite digit ``d`` in ``1..base-1``.

    Shape (base-1,) each, int64, 0 for 1 and the primes. The fit computes
    ``d**gamma`` as ``a**gamma * b**gamma``, paying one ``exp`` per prime only.
    """
    a = np.zeros(base - 1, dtype=np.int64)
    b = np.zeros(base - 1, dtype=np.int64)
    for d in range(4, base):
        f = next((f for f in range(2, math.isqrt(d) + 1) if d % f == 0), 0)
        if f:
            a[d - 1], b[d - 1] = f, d // f
    return a, b


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (m, k) float64 that are bit-for-bit distinct.

    Returns ``first`` (u,), the index of one row per distinct row (no two of them
    equal bit for bit), and ``inverse`` (m,), with ``x[first][inverse]`` equal to
    ``x`` bit for bit. Rows are grouped by a 64-bit hash, then compared in full;
    the rows that differ from the first row of their hash group (a collision) are
    grouped among themselves by their bytes. ``0.0`` and ``-0.0``, or two NaNs
    with different payloads, are different rows here.
    """
    from . import kernels

    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    multipliers = np.random.default_rng(0x5EED).integers(1, 2**63, size=x.shape[1], dtype=np.uint64) | np.uint64(1)
    key = np.empty(x.shape[0], dtype=np.uint64)
    kernels.row_keys(bits, multipliers, key)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    same = np.empty(x.shape[0], dtype=np.bool_)
    kernels.rows_equal_to(bits, first[inverse], same)
    if not same.all():
        extra = np.flatnonzero(~same)
        rows = np.ascontiguousarray(bits[extra]).view(np.dtype((np.void, 8 * x.shape[1]))).reshape(-1)
        _, extra_first, extra_inverse = np.unique(rows, return_index=True, return_inverse=True)
        inverse[extra] = first.size + extra_inverse.reshape(-1)
        first = np.concatenate([first, extra[extra_first]])
    return first, inverse


# ---------------------------------------------------------------------------
# the test


def chi2_sf(x: float, df: int) -> float:
    """Chi-square survival function ``P(X > x)`` for ``df`` degrees of freedom.

    Computed as the regularized upper incomplete gamma function ``Q(df/2, x/2)``:
    its power series when ``x < a + 1`` and its continued fraction (modified Lentz)
    otherwise, the textbook split (Press et al., "Numerical Recipes", section 6.2).
    """
    df = check_int(df, "df", minimum=1)
    if not math.isfinite(x):
        if math.isnan(x):
            return math.nan
        return 0.0 if x > 0 else 1.0
    if x <= 0:
        return 1.0
    return _gamma_q(df / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # P(a, x) = x^a e^-x / Gamma(a+1) * sum x^n / ((a+1)...(a+n))
        term = 1.0 / a
        total = term
        for n in range(1, 10_000):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - math.exp(log_prefix) * total)
    # Q(a, x) = x^a e^-x / Gamma(a) * 1 / (x + 1 - a - 1(1-a)/(x + 3 - a - ...))
    tiny = 1e-300
    bb = x + 1.0 - a
    c = 1.0 / tiny
    dd = 1.0 / bb
    h = dd
    for i in range(1, 10_000):
        an = -i * (i - a)
        bb += 2.0
        dd = an * dd + bb
        dd = tiny if abs(dd) < tiny else dd
        c = bb + an / c
        c = tiny if abs(c) < tiny else c
        dd = 1.0 / dd
        delta = dd * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_prefix) * h


def conformity_label(mad: float, test: str = "first", base: int = 10) -> str | None:
    """Nigrini's conformity label for a MAD, or None outside base 10.

    Nigrini's thresholds were calibrated on base-10 data; no published thresholds
    exist for other bases, so none is invented here.
    """
    check_choice(test, "test", TESTS)
    if _check_base(base) != 10 or not math.isfinite(mad):
        return None
    for bound, label in zip(NIGRINI_MAD[test], CONFORMITY_LABELS):
        if mad <= bound:
            return label
    return CONFORMITY_LABELS[-1]


@dataclass(frozen=True)
class BenfordResult:
    """The outcome of :func:`benford_test`; arrays have shape (n_bins,).

    Attributes
    ----------
    test : str
        ``"first"``, ``"second"`` or ``"first_two"``.
    base : int
    digits : ndarray of int64
        The digit of each bin.
    counts : ndarray of int64
        How many values have that digit.
    observed, expected : ndarray of float64
        Observed proportions and Benford's law.
    z : ndarray of float64
        ``(|po - pe| - 1/(2n)) / sqrt(pe (1 - pe) / n)`` per bin (continuity
        corrected as in Nigrini and benford_py; slightly negative when the
        deviation is smaller than the correction).
    chi2, chi2_pvalue : float
        Pearson chi-square on counts, ``df = n_bins - 1``, and its p-value.
    ks, ks_critical : float
        Largest gap between cumulative proportions; its 95% critical value ``1.358/sqrt(n)``.
    mad : float
        Mean absolute deviation of proportions.
    conformity : str or None
        Nigrini's label from the MAD (None outside base 10).
    n, n_dropped : int
        Values counted, and values without the digit (zero, NaN, inf).
    """

    test: str
    base: int
    digits: np.ndarray
    counts: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    z: np.ndarray
    chi2: float
    chi2_pvalue: float
    ks: float
    ks_critical: float
    mad: float
    conformity: str | None
    n: int
    n_dropped: int
    chi2_df: int = field(default=0)

    def __str__(self) -> str:
        name = {"first": "First digit", "second": "Second digit", "first_two": "First two digits"}[self.test]
        lines = [
            f"{name} test, base {self.base}: n = {self.n} values ({self.n_dropped} dropped: zero, NaN or inf)",
            f"{'digit':>6} {'count':>10} {'observed':>9} {'expected':>9} {'z':>8}",
        ]
        for d, c, po, pe, z in zip(self.digits, self.counts, self.observed, self.expected, self.z):
            flag = "  *" if z > 1.96 else ""
            lines.append(f"{d:>6d} {c:>10d} {po:>9.5f} {pe:>9.5f} {z:>8.3f}{flag}")
        label = self.conformity or f"n/a (no published MAD thresholds for base {self.base})"
        lines += [
            "(* z > 1.96: the digit deviates at the 5% level)",
            f"chi-square = {self.chi2:.4f}, df = {self.chi2_df}, p-value = {self.chi2_pvalue:.4g}",
            f"KS = {self.ks:.5f} (95% critical value {self.ks_critical:.5f}: "
            f"{'reject' if self.ks > self.ks_critical else 'do not reject'} Benford's law)",
            f"MAD = {self.mad:.6f}: {label}",
        ]
        return "\n".join(lines)


def benford_test(x: Any, test: str = "first", base: int = 10) -> BenfordResult:
    """Compare the digits of ``x`` with Benford's law.

    Parameters
    ----------
    x : array-like, any shape
        Integers or floats (lists, NumPy arrays, a parsed CSV column). Zeros, NaN
        and inf are dropped and counted in ``n_dropped``.
    test : {"first", "second", "first_two"}
    base : int
        At least 3.

    Returns
    -------
    BenfordResult

    Raises
    ------
    ValueError
        No value has a digit (no values, or only zeros/NaN/inf).
    """
    check_choice(test, "test", TESTS)
    base = _check_base(base)
    extract = {"first": first_digits, "second": second_digits, "first_two": first_two_digits}[test]
    digits, n_dropped = extract(x, base, return_dropped=True)
    n = int(digits.size)
    if n == 0:
        digit = test.replace("_", " ")
        raise ValueError(
            f"nothing to compare with Benford's law: none of the {n_dropped} value(s) has a {digit} digit "
            "(they are all zero, NaN or inf)" if n_dropped else "nothing to compare with Benford's law: no values given"
        )
    support = digit_support(test, base)
    counts = np.bincount(digits - support[0], minlength=support.size).astype(np.int64)
    observed = counts / n
    expected = benford_pmf(test, base)
    z = (np.abs(observed - expected) - 1.0 / (2.0 * n)) / np.sqrt(expected * (1.0 - expected) / n)
    expected_counts = expected * n
    chi2 = float(np.sum((counts - expected_counts) ** 2 / expected_counts))
    df = support.size - 1
    ks = float(np.max(np.abs(np.cumsum(observed) - np.cumsum(expected))))
    mad = float(np.mean(np.abs(observed - expected)))
    return BenfordResult(
        test=test,
        base=base,
        digits=support,
        counts=counts,
        observed=observed,
        expected=expected,
        z=z,
        chi2=chi2,
        chi2_pvalue=chi2_sf(chi2, df),
        ks=ks,
        ks_critical=1.358 / math.sqrt(n),
        mad=mad,
        conformity=conformity_label(mad, test, base),
        n=n,
        n_dropped=n_dropped,
        chi2_df=df,
    )
