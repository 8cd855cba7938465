"""The compiled generalized-Benford fits against the batched NumPy fit they replaced, each other, and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigan as mg
from minigan.benford import divergences, fit_generalized_benford, generalized_benford_pmf
from minigan.benford.digits import _FIT_LOWER, _FIT_UPPER, _digit_factors, _distinct_rows, _fit_distinct_rows
from minigan.benford.image import _chunks, _dct_basis, _quantize, _to_luma_list, first_digit_histograms
from minigan.benford.image import quantization_table, zigzag_order

pytestmark = pytest.mark.benford


def numpy_fit(p: np.ndarray, base: int, max_iter: int = 200, tol: float = 1.5e-8):
    """The previous implementation: every pmf of the batch steps at once, in NumPy.

    Same algorithm as the kernel (Levenberg-Marquardt from (1, 1, 1), damping x10 / /10,
    the same box and convergence tests); returns (theta (m, 3), success (m,), n_iter (m,)).
    """
    m, k = p.shape
    log_d = np.log(np.arange(1, base, dtype=np.float64))
    inv_log_b = 1.0 / math.log(base)
    theta = np.ones((m, 3))
    lam = np.full(m, 1e-3)
    valid = np.isfinite(p).all(axis=1) & (p.sum(axis=1) > 0)
    active = valid.copy()
    converged = np.zeros(m, dtype=bool)
    n_iter = np.zeros(m, dtype=np.int64)

    def evaluate(th, pp):
        N, beta, gamma = th[:, 0:1], th[:, 1:2], th[:, 2:3]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            dg = np.exp(gamma * log_d)
            u = beta + dg
            g = np.log1p(1.0 / u) * inv_log_b
            r = N * g - pp
            cost = np.sum(r * r, axis=1)
            jb = -N * inv_log_b / (u * (u + 1.0))
            jac = np.stack([g, jb, jb * dg * log_d], axis=2)  # (n, k, 3)
        ok = (u > 0).all(axis=1) & np.isfinite(cost)
        return np.where(ok, cost, np.inf), jac.transpose(0, 2, 1) @ jac, (jac.transpose(0, 2, 1) @ r[..., None])[..., 0]

    costs = np.full(m, np.inf)
    jtj = np.zeros((m, 3, 3))
    jtr = np.zeros((m, 3))
    idx = np.flatnonzero(active)
    costs[idx], jtj[idx], jtr[idx] = evaluate(theta[idx], p[idx])
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th = theta[idx]
        a = jtj[idx]
        damped = a + (lam[idx, None, None] * (a * np.eye(3) + 1e-12 * np.eye(3)))
        with np.errstate(all="ignore"):
            det = np.linalg.det(damped)
            finite = np.isfinite(damped).all(axis=(1, 2)) & (det != 0)
            step = np.zeros((idx.size, 3))
            step[finite] = np.linalg.solve(damped[finite], -jtr[idx][finite][..., None])[..., 0]
        finite &= np.isfinite(step).all(axis=1)
        step[~finite] = 0.0
        cand = np.clip(th + step, _FIT_LOWER, _FIT_UPPER)
        step = cand - th
        new_cost, new_jtj, new_jtr = evaluate(cand, p[idx])
        old_cost = costs[idx]
        accept = finite & (new_cost < old_cost)
        n_iter[idx] += 1
        small_gain = accept & (old_cost - new_cost <= tol * old_cost)
        small_step = finite & (np.abs(step) <= tol * (tol + np.abs(th))).all(axis=1)
        perfect = accept & (new_cost <= 1e-24)
        theta[idx[accept]] = cand[accept]
        costs[idx[accept]] = new_cost[accept]
        jtj[idx[accept]], jtr[idx[accept]] = new_jtj[accept], new_jtr[accept]
        lam[idx] = np.where(accept, np.maximum(lam[idx] / 10.0, 1e-12), lam[idx] * 10.0)
        done = small_gain | small_step | perfect
        converged[idx[done]] = True
        active[idx[done | ~finite | (lam[idx] > 1e16)]] = False
    success = converged & valid & np.isfinite(theta).all(axis=1) & np.isfinite(costs)
    theta[~success] = np.nan
    return theta, success, n_iter


def image_pmfs(images: np.ndarray, base: int) -> np.ndarray:
    """First-digit pmfs of every (image, quality factor, coefficient) as image_features builds them, (m, base-1)."""
    (blocks, idx, n), = _chunks(_to_luma_list(images, None))
    positions = zigzag_order(10)[1:]
    coefs = (blocks - 128.0) @ _dct_basis(positions)
    pmfs = []
    for q in (80, 90, 100):
        counts = first_digit_histograms(_quantize(coefs, quantization_table(q).ravel()[positions]), idx, n, base)
        with np.errstate(invalid="ignore", divide="ignore"):
            pmfs.append((counts / counts.sum(axis=-1, keepdims=True)).reshape(-1, base - 1))
    return np.concatenate(pmfs)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return mg.datasets.load("mnist-5k")[0][:40]


@pytest.mark.parametrize("base", [10, 20, 60])
def test_kernel_fit_agrees_with_the_numpy_fit_on_digit_images(digits, base):
    # pmfs of 28x28 digits come from at most 16 blocks: noisy, often degenerate, the hard case
    p = image_pmfs(digits, base)
    fit = fit_generalized_benford(p, base, start="ones")  # the same algorithm as numpy_fit
    theta, success, n_iter = numpy_fit(p, base)
    assert fit.success.mean() > 0.8
    # rounding differences may flip a fit that ends exactly at the iteration limit, nothing more
    assert np.mean(fit.success != success) <= 0.01
    assert np.mean(fit.n_iter == n_iter) >= 0.97
    both = fit.success & success
    reference = generalized_benford_pmf(theta[both, 0], theta[both, 1], theta[both, 2], base)
    np.testing.assert_allclose(fit.pmf(base)[both], reference, atol=1e-4)
    close = np.abs(fit.pmf(base)[both] - reference).max(axis=1) <= 1e-7
    assert close.mean() >= 0.98
    assert np.isnan(fit.N[~fit.success]).all() and np.isnan(fit.rss[~fit.success]).all()


def _cost(fit, p, base):
    """Residual sum of squares of the fitted law, computed here from its parameters."""
    return np.sum((fit.pmf(base) - p) ** 2, axis=-1)


@pytest.mark.parametrize("base", [10, 20, 40, 60])
def test_grid_start_fit_is_at_least_as_good_as_the_plain_fit_on_digit_images(digits, base):
    # the default fit (grid start, N projected out, Newton) against Levenberg-Marquardt from (1, 1, 1)
    p = image_pmfs(digits, base)
    grid = fit_generalized_benford(p, base)
    plain = fit_generalized_benford(p, base, start="ones")
    assert not (plain.success & ~grid.success).any()  # every pmf the plain fit fits, the grid fit fits too
    assert grid.success.mean() >= plain.success.mean()
    ok = plain.success
    cost_grid, cost_plain = _cost(grid, p, base)[ok], _cost(plain, p, base)[ok]
    # the law is not convex in (beta, gamma): on a few pmfs the two starts end in different local
    # minima, and then either may be the lower one; the grid start is lower far more often
    above = cost_grid > cost_plain * (1 + 1e-12)
    below = cost_grid < cost_plain * (1 - 1e-6)
    assert above.mean() <= 0.01 and below.sum() >= 5 * above.sum()
    assert cost_grid.sum() <= cost_plain.sum()
    np.testing.assert_allclose(grid.rss[grid.success], _cost(grid, p, base)[grid.success], rtol=1e-9, atol=1e-15)
    assert np.isnan(grid.N[~grid.success]).all() and np.isnan(grid.rss[~grid.success]).all()
    assert grid.n_iter.mean() < plain.n_iter.mean() / 3


def test_fit_start_is_checked():
    with pytest.raises(ValueError, match="start must be one of 'grid', 'ones'"):
        fit_generalized_benford(np.ones(9) / 9, 10, start="random")


def test_kernel_fit_agrees_with_the_numpy_fit_on_noisy_laws():
    rng = np.random.default_rng(3)
    base = 20
    params = np.c_[rng.uniform(0.5, 2.0, 60), rng.uniform(-0.5, 2.0, 60), rng.uniform(0.5, 2.0, 60)]
    law = generalized_benford_pmf(params[:, 0], params[:, 1], params[:, 2], base)
    p = law * rng.uniform(0.95, 1.05, law.shape)
    fit = fit_generalized_benford(p, base, start="ones")  # the same algorithm as numpy_fit
    theta, success, _ = numpy_fit(p, base)
    assert fit.success.all() and success.all()
    np.testing.assert_allclose(np.c_[fit.N, fit.beta, fit.gamma], theta, rtol=1e-6, atol=1e-8)
    # the default fit lands on the same minima, converged further than tol=1.5e-8 takes the plain one
    grid = fit_generalized_benford(p, base)
    assert grid.success.all() and (grid.rss <= fit.rss * (1 + 1e-12)).all()
    np.testing.assert_allclose(np.c_[grid.N, grid.beta, grid.gamma], theta, rtol=1e-4, atol=1e-5)


def test_kernel_fit_agrees_with_scipy_curve_fit():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    for base, (n, beta, gamma) in [(10, (1.1, 0.2, 1.2)), (20, (0.9, -0.3, 0.8)), (40, (1.5, 1.0, 1.05))]:
        p = generalized_benford_pmf(n, beta, gamma, base) * rng.uniform(0.97, 1.03, base - 1)
        d = np.arange(1, base, dtype=np.float64)

        def law(x, n_, beta_, gamma_):
            with np.errstate(invalid="ignore", divide="ignore"):  # curve_fit may probe outside the domain
                return n_ * np.log1p(1.0 / (beta_ + x**gamma_)) / math.log(base)

        expected, _ = optimize.curve_fit(law, d, p, p0=(1.0, 1.0, 1.0), maxfev=20000)
        fit = fit_generalized_benford(p, base)
        assert bool(fit.success)
        np.testing.assert_allclose(fit.pmf(base), law(d, *expected), atol=1e-7)
        assert float(fit.rss) <= float(np.sum((law(d, *expected) - p) ** 2)) * (1 + 1e-6)


def test_bad_rows_fail_alone_and_do_not_disturb_the_batch():
    base = 10
    good = generalized_benford_pmf([1.0, 0.7], [0.0, 0.4], [1.0, 1.3], base)
    batch = np.vstack([good[0], np.full(9, np.nan), np.zeros(9), np.r_[np.inf, np.zeros(8)], good[1]])
    fit = fit_generalized_benford(batch, base)
    assert fit.success.tolist() == [True, False, False, False, True]
    assert np.isnan(np.c_[fit.N, fit.beta, fit.gamma, fit.rss][1:4]).all()
    alone = fit_generalized_benford(good, base)
    np.testing.assert_array_equal(np.c_[fit.N, fit.beta, fit.gamma][[0, 4]], np.c_[alone.N, alone.beta, alone.gamma])


def test_repeated_pmfs_get_identical_fits_to_fitting_them_one_by_one(digits):
    p = image_pmfs(digits[:6], 10)
    p = np.vstack([p, p[::-1]])
    fit = fit_generalized_benford(p, 10)
    for i in range(0, p.shape[0], 37):
        one = fit_generalized_benford(p[i], 10)
        assert one.success == fit.success[i] and one.n_iter == fit.n_iter[i]
        np.testing.assert_array_equal([one.N, one.beta, one.gamma], [fit.N[i], fit.beta[i], fit.gamma[i]])


@pytest.mark.parametrize("base", [10, 60])
def test_the_fit_leaves_the_law_of_its_parameters_bit_for_bit(digits, base):
    """The features take the law the fit leaves behind; the soft features recompute it from the
    parameters (``fitted_law``): the two must agree to the last bit, Levenberg-Marquardt rows included."""
    from minigan.benford import kernels

    p = np.vstack([image_pmfs(digits[:10], base), np.full(base - 1, np.nan)])
    first, _, theta, _, success, n_iter, law = _fit_distinct_rows(p, base)
    assert success.mean() > 0.9 and not success.all()  # the NaN row at least
    again = np.empty_like(law)
    log_d = np.log(np.arange(1, base, dtype=np.float64))
    kernels.benford_law(theta, log_d, *_digit_factors(base), 1.0 / math.log(base), again)
    np.testing.assert_array_equal(law, again)
    assert np.isnan(law[~success]).all() and np.isfinite(law[success]).all()
    # the same law as the NumPy formula, up to rounding (ill-conditioned next to the domain wall)
    np.testing.assert_allclose(law[success], generalized_benford_pmf(*theta[success].T, base), rtol=1e-9, atol=1e-15)


def test_fit_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_iter"):
        fit_generalized_benford(np.ones(9) / 9, 10, max_iter=0)
    with pytest.raises(TypeError, match="tol"):
        fit_generalized_benford(np.ones(9) / 9, 10, tol="small")


@pytest.mark.property
@settings(deadline=None, max_examples=25)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 6)), elements=st.sampled_from([0.0, 0.5, 1.0, -0.0, np.nan])))
def test_distinct_rows_rebuild_the_input_bit_for_bit(x):
    first, inverse = _distinct_rows(x)
    bits = x.view(np.uint64)
    np.testing.assert_array_equal(bits[first][inverse], bits)
    assert len({row.tobytes() for row in bits[first]}) == first.size


def test_digit_factors_multiply_to_the_digit():
    a, b = _digit_factors(60)
    d = np.arange(1, 60)
    composite = a > 0
    np.testing.assert_array_equal(a[composite] * b[composite], d[composite])
    assert ((a[composite] < d[composite]) & (b[composite] < d[composite])).all()
    primes = [x for x in range(2, 60) if all(x % f for f in range(2, x))]
    assert sorted(d[~composite].tolist()) == [1] + primes


def test_divergences_match_their_formulas():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(9), 20)
    q = rng.dirichlet(np.ones(9), 20)
    p[:, 2] = 0.0  # a bin dropped from every row
    keep = (p > 0) & (q > 0)
    pn = np.where(keep, p, 0) / np.where(keep, p, 0).sum(1, keepdims=True)
    qn = np.where(keep, q, 0) / np.where(keep, q, 0).sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.nansum(np.where(keep, pn * np.log2(pn / qn) + qn * np.log2(qn / pn), 0), axis=1)
    s1 = np.sum(np.where(keep, p**0.3 * q**0.7, 0), axis=1)
    s2 = np.sum(np.where(keep, q**0.3 * p**0.7, 0), axis=1)
    expected = np.c_[kl, (np.log2(s1) + np.log2(s2)) / -0.7, (s1 + s2 - 2) / -0.7]
    np.testing.assert_allclose(divergences(p, q), expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="alpha"):
        divergences(p, q, alpha=1.0)


def test_divergences_survive_a_fitted_law_that_underflows():
    # a fit at the box's walls can give a subnormal q; renormalising it underflows to 0
    out = divergences(np.array([0.5, 0.5]), np.array([3.0, 5e-324]))
    assert np.isinf(out[0]) and np.isfinite(out[1:]).all()


def test_distinct_rows_keeps_zero_and_negative_zero_apart_and_groups_repeats():
    # 0.0 and -0.0 differ only in the sign bit: a hash that sums bits * odd numbers used to cancel two
    # sign bits, so rows of -0.0 collided with rows of 0.0, and repeated colliding rows were not grouped
    x = np.array([[-0.0, -0.0], [0.0, 0.0], [-0.0, -0.0], [0.0, -0.0], [-0.0, 0.0], [0.0, 0.0], [-0.0, -0.0]])
    first, inverse = _distinct_rows(x)
    bits = x.view(np.uint64)
    np.testing.assert_array_equal(bits[first][inverse], bits)
    assert first.size == 4 and len({row.tobytes() for row in bits[first]}) == 4
    assert inverse[0] == inverse[2] == inverse[6] and inverse[1] == inverse[5]
    # two NaNs with different payloads are different rows (the fit sees the same NaN, but the rule is bits)
    nan_a, nan_b = np.array([np.nan]), np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)
    y = np.array([[nan_a[0], 1.0], [nan_b[0], 1.0], [nan_a[0], 1.0]])
    first, inverse = _distinct_rows(y)
    assert first.size == 2 and inverse[0] == inverse[2] != inverse[1]


def test_distinct_rows_groups_rows_that_collide_in_the_hash(monkeypatch):
    # force every row into one hash group: the full comparison must still group equal rows together
    x = np.array([[1.0, 2.0], [3.0, 4.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [5.0, 6.0]])
    real_unique = np.unique

    def one_group(key, **kwargs):
        return real_unique(np.zeros_like(key), **kwargs) if key.dtype == np.uint64 and key.ndim == 1 else \
            real_unique(key, **kwargs)

    monkeypatch.setattr(np, "unique", one_group)
    first, inverse = _distinct_rows(x)
    monkeypatch.undo()
    np.testing.assert_array_equal(x[first][inverse], x)
    assert first.size == 3 and inverse[1] == inverse[2] and inverse[4] == inverse[5] and inverse[0] == inverse[3]


@pytest.mark.parametrize(
    "pmf", [[0.7317, 0.2683] + [0.0] * 7, [0.6, 0.3, 0.1] + [0.0] * 6, [0.0, 0.3, 0.7] + [0.0] * 6]
)
def test_grid_fit_of_a_few_digits_ends_at_an_optimum_not_short_of_one(pmf):
    # a pmf of two or three digits is fitted ever better along a valley that runs into the box's
    # wall; the fit must not stop in it because one step there gains little: every parameter not
    # on a wall has a gradient at most 1e-2 of the cost (scaled by the parameter)
    from minigan.benford.soft_kernels import _model_derivatives

    p = np.asarray(pmf, dtype=np.float64)
    fit = fit_generalized_benford(p, 10)
    assert fit.success
    theta = np.array([fit.N, fit.beta, fit.gamma], dtype=np.float64)
    jac, hess = np.empty((9, 3)), np.empty((3, 3))
    cost, *grad, ok = _model_derivatives(theta.copy(), np.log(np.arange(1.0, 10.0)), 1 / math.log(10), p, jac, hess)
    assert ok
    free = (theta > _FIT_LOWER * (1 - 1e-12) + 1e-12) & (theta < _FIT_UPPER * (1 - 1e-12))
    scaled = np.abs(np.array(grad) * theta)[free]
    assert np.all(scaled <= 1e-2 * cost + 1e-18), (theta, grad, cost)
