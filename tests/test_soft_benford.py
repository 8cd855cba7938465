"""The soft Benford statistics: gradients, their hard limit, and the acceptance on real digits."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minigan as mg
from minigan.benford import soft_kernels as SK
from minigan.benford.digits import _FIT_LOWER, _FIT_UPPER, _digit_factors, fit_generalized_benford, generalized_benford_pmf
from minigan.benford.image import _dct_basis, _fitted_divergences, quantization_table, zigzag_order
from minigan.benford.soft import SoftBenford, hard_statistics, smooth_step, smooth_step_slope
from minigan.testing import seeds
from shared import textured

pytestmark = pytest.mark.benford

STATISTICS = ("counts", "totals", "nonzero_shares", "unquantized_shares")


def _projection(soft, groups, rng, blocks):
    """Random weights of each statistic, the counts' scaled by the blocks counted (so the
    projection is of order one and finite differences keep their precision)."""
    scale = {"counts": blocks, "totals": blocks, "nonzero_shares": 1.0, "unquantized_shares": 1.0}
    return {key: rng.normal(size=shape) / scale[key] for key, shape in soft.statistic_shapes(groups).items()}


def _extrapolated_gradient(function, x, h=4e-6):
    """Central differences, Richardson-extrapolated: ``(4 D(h/2) - D(h)) / 3`` per entry,
    with ``D(h) = (f(x + h) - f(x - h)) / 2h``; its error shrinks as ``h^4``.

    A plain central difference cannot check these statistics to 1e-6 at any one step:
    the narrow smooth steps curve sharply (at a step of 1e-6 the truncation error reached
    2e-5 of the gradient) and the statistics are sums of many terms (at 1e-7 round-off
    reached 4e-6 on small entries). Extrapolation removes the ``h^2`` error term, so a
    step where round-off is negligible is also accurate."""
    x = x.copy()
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)

    def central(k, step):
        original = flat[k]
        flat[k] = original + step
        plus = function(x)
        flat[k] = original - step
        minus = function(x)
        flat[k] = original
        return (plus - minus) / (2 * step)

    for k in range(flat.size):
        out[k] = (4.0 * central(k, h / 2) - central(k, h)) / 3.0
    return grad


def _check_gradient(soft, images, per_image, seed=0):
    """Largest relative error (gradcheck's measure: ``|a - n| / max(|a|, |n|, 0.01)``, and
    ``|a - n| <= 1e-8 + 1e-6 max(|a|, |n|)`` asserted) of the analytic gradient of a random
    projection of each statistic in turn (float64) against :func:`_extrapolated_gradient`.
    One statistic at a time, as the terms of a sum can cancel to a gradient far smaller
    than each."""
    groups = images.shape[0] if per_image else 1
    blocks = soft.blocks_per_image * (1 if per_image else images.shape[0])
    weights = _projection(soft, groups, np.random.default_rng(seed), blocks)
    worst = 0.0
    for key in STATISTICS:
        def value(x, key=key):
            return float(np.sum(weights[key] * getattr(soft.forward(x, per_image=per_image), key)))

        value(images)
        analytic = soft.backward(**{f"grad_{key}": weights[key]})
        numeric = _extrapolated_gradient(value, images)
        diff = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        assert np.all(diff <= 1e-8 + 1e-6 * scale), f"{key}: max abs error {diff.max():.3e}"
        worst = max(worst, float((diff / np.maximum(scale, 0.01)).max()))
    return worst


def _generated(shape, n, seed, spread=1.5):
    """Images as a generator makes them: tanh of noise, a dark background with bright strokes."""
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(-0.5, spread, (n, shape[0] * shape[1])))


# --------------------------------------------------------------------------- the smooth step


@pytest.mark.gradcheck
def test_smooth_step_is_a_symmetric_c3_step():
    z = np.linspace(-1.2, 1.2, 241)
    s = smooth_step(z)
    assert s[0] == 0.0 and s[-1] == 1.0
    np.testing.assert_allclose(s + smooth_step(-z), 1.0, atol=1e-15)
    assert np.all(np.diff(s) >= 0)
    h = 1e-6
    np.testing.assert_allclose(smooth_step_slope(z), (smooth_step(z + h) - smooth_step(z - h)) / (2 * h), atol=1e-8)
    assert [SK.smooth_step(float(v)) for v in z[::40]] == pytest.approx(list(s[::40]), abs=1e-15)


# --------------------------------------------------------------------------- gradients


@pytest.mark.gradcheck
@pytest.mark.parametrize("per_image", [False, True])
def test_statistics_gradient_matches_central_differences(per_image):
    soft = SoftBenford((8, 16), quality_factors=(80, 100), bases=(3, 5), n_coefficients=5, temperature=0.5,
                       gate_width=0.6, share_width=1.5, round_pixels=False)
    assert _check_gradient(soft, _generated((8, 16), 2, seed=1), per_image) < 1e-6


@pytest.mark.property
@settings(deadline=None)
@given(height=st.integers(8, 14), width=st.integers(8, 14), n=st.integers(1, 2), seed=seeds(),
       temperature=st.floats(0.35, 0.5), gate_width=st.floats(0.6, 1.2), share_width=st.floats(1.0, 3.0),
       bases=st.lists(st.integers(3, 6), min_size=1, max_size=2, unique=True), per_image=st.booleans())
def test_statistics_gradient_property(height, width, n, seed, temperature, gate_width, share_width, bases,
                                      per_image):
    soft = SoftBenford((height, width), quality_factors=(85, 100), bases=bases, n_coefficients=4,
                       temperature=temperature, gate_width=gate_width, share_width=share_width, round_pixels=False)
    images = _generated((height, width), n, seed)
    assert _check_gradient(soft, images, per_image, seed=seed % 1000) < 1e-6


@pytest.mark.property
@settings(deadline=None)
@given(n=st.integers(1, 4), seed=seeds(), temperature=st.floats(0.01, 0.5), round_pixels=st.booleans())
def test_statistics_are_consistent(n, seed, temperature, round_pixels):
    """Weights of a value sum to one; pooled statistics are the per-image ones combined."""
    soft = SoftBenford((16, 16), temperature=temperature, round_pixels=round_pixels)
    images = _generated((16, 16), n, seed)
    per = soft.forward(images, per_image=True)
    pooled = soft.forward(images)
    for bi, base in enumerate(soft.bases):
        np.testing.assert_allclose(per.counts[:, :, bi].sum(axis=-1), per.totals, rtol=1e-10, atol=1e-10)
        assert np.all(per.counts[:, :, bi, :, base - 1:] == 0.0)
    np.testing.assert_allclose(pooled.counts[0], per.counts.sum(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pooled.nonzero_shares[0], per.nonzero_shares.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(pooled.unquantized_shares[0], per.unquantized_shares.mean(), rtol=1e-10)
    assert np.all((per.nonzero_shares >= 0) & (per.nonzero_shares <= 1))
    assert np.all(per.counts >= 0) and np.all(per.totals >= 0)


def test_backward_before_forward_and_bad_shapes_are_clear():
    soft = SoftBenford((8, 8))
    with pytest.raises(RuntimeError, match="before forward"):
        soft.backward()
    soft.forward(_generated((8, 8), 2, 0))
    with pytest.raises(ValueError, match="grad_totals must have shape"):
        soft.backward(grad_totals=np.zeros(3))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 8, 8\)"):
        soft.forward(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"pixels in \[-1, 1\]"):
        soft.forward(np.full((2, 64), 3.0))
    with pytest.raises(ValueError, match="temperature"):
        SoftBenford((8, 8), temperature=0.7)
    with pytest.raises(ValueError, match="image_shape"):
        SoftBenford((4, 8))


# --------------------------------------------------------------------------- the hard limit


def _has_rounding_ties(images, soft):
    """Whether any quantized coefficient lies within 1e-7 of a half-integer (where rounding,
    and so the hard statistic, jumps)."""
    positions = zigzag_order(soft.n_coefficients + 1)[1:]
    basis = _dct_basis(positions)
    blocks = images.astype(np.float64).reshape(images.shape[0], -1)[:, soft.block_pixels]  # (N, nb, 64)
    coefs = blocks @ basis
    for q in soft.quality_factors:
        ratio = np.abs(coefs / quantization_table(q).ravel()[positions])
        if np.any(np.abs(ratio - np.floor(ratio) - 0.5) < 1e-7):
            return True
    return False


@pytest.mark.property
@settings(deadline=None)
@given(seed=seeds(), n=st.integers(1, 4), per_image=st.booleans())
def test_small_widths_give_the_detectors_hard_statistics(seed, n, per_image):
    images = textured(n, size=24, seed=seed)
    images[:, :8, :8] = 0  # a black block: flat, no digits
    soft = SoftBenford((24, 24), temperature=1e-6, gate_width=1e-6, share_width=1e-6)
    assume(not _has_rounding_ties(images, soft))
    got = soft.forward(images.reshape(n, -1), per_image=per_image, uint8=True)
    hard = hard_statistics(images, per_image=per_image)
    np.testing.assert_allclose(got.counts, hard.counts, atol=1e-9)
    np.testing.assert_allclose(got.totals, hard.totals, atol=1e-9)
    np.testing.assert_allclose(got.nonzero_shares, hard.nonzero_shares, atol=1e-9)
    np.testing.assert_allclose(got.unquantized_shares, hard.unquantized_shares, atol=1e-9)
    # generated pixels are rounded to 8 bits first, as a PNG stores them
    floats = images.astype(np.float64) / 127.5 - 1.0 + 1e-4
    got_float = soft.forward(floats.reshape(n, -1), per_image=per_image)
    np.testing.assert_allclose(got_float.counts, hard.counts, atol=1e-9)


def _acceptance(n):
    digits, _ = mg.datasets.load("mnist-5k")
    digits = digits[:n]
    soft = SoftBenford((28, 28))  # the default widths, the detector's quality factors and bases
    got = soft.forward(digits.reshape(n, -1), uint8=True)
    hard = hard_statistics(digits)
    l1 = np.nansum(np.abs(got.pmf() - hard.pmf()), axis=-1)  # per quality factor, base and coefficient
    return l1, got, hard


def test_default_widths_match_the_hard_histograms_on_real_digits_subset():
    l1, got, hard = _acceptance(500)
    assert l1.shape == (1, 5, 4, 9) and np.isfinite(l1).all()
    assert l1.max() <= 0.02  # fewer values, coarser; the full acceptance below is at 0.01


@pytest.mark.slow
def test_default_widths_match_the_hard_histograms_on_all_real_digits():
    l1, got, hard = _acceptance(5000)
    assert l1.max() <= 0.01, f"largest L1 {l1.max():.4f}"
    np.testing.assert_allclose(got.unquantized_shares, hard.unquantized_shares, atol=1e-3)


# --------------------------------------------------------------------------- the fit and the divergences


def _pmf_near_the_law(base, seed):
    rng = np.random.default_rng(seed)
    law = generalized_benford_pmf(rng.uniform(0.8, 1.2), rng.uniform(-0.3, 1.5), rng.uniform(0.6, 1.6), base)
    return np.abs(law * (1.0 + rng.normal(0.0, 0.05, base - 1)))


def _divergence_function(base, weights):
    log_d = np.log(np.arange(1, base, dtype=np.float64))

    def function(x):
        counts, total = x[0, :-1].copy(), np.array([x[0, -1]])
        fit = fit_generalized_benford(counts / total[0], base)
        theta = np.array([[float(fit.N), float(fit.beta), float(fit.gamma)]])
        features = np.empty((1, 3))
        grad_counts, grad_total = np.zeros((1, base - 1)), np.zeros(1)
        SK.fitted_divergences(counts[None], total, theta, log_d, *_digit_factors(base), 1 / math.log(base), 0.3,
                              _FIT_LOWER, _FIT_UPPER, 8,
                              weights[None], features, grad_counts, grad_total)
        return float(features[0] @ weights), np.concatenate([grad_counts[0], grad_total])[None]

    return function


@pytest.mark.gradcheck
@pytest.mark.property
@settings(deadline=None)
@given(base=st.sampled_from([5, 7, 10, 12]), seed=seeds(), scale=st.floats(5.0, 40.0),
       partial=st.one_of(st.none(), st.floats(0.1, 0.9)))
def test_fitted_divergences_gradient_through_the_fit(base, seed, scale, partial):
    """Implicit differentiation of the least-squares optimum, the presences and the pmf."""
    counts = _pmf_near_the_law(base, seed) * scale
    if partial is not None:  # a digit that barely occurs: its presence weight is between 0 and 1
        counts[-1] = partial
    x = np.concatenate([counts, [counts.sum() * 1.03]])[None]
    fit = fit_generalized_benford(counts / x[0, -1], base)
    theta = np.array([fit.N, fit.beta, fit.gamma], dtype=np.float64)
    # the derivative exists where the optimum does: a converged fit inside the box
    # (at a wall, or in the flat valleys of pmfs far from the law, the fit is not a smooth function)
    margin = np.array([1.0, 1e-2, 1e-2])
    assume(bool(fit.success) and np.all((theta > _FIT_LOWER + margin) & (theta < _FIT_UPPER - margin)))
    weights = np.random.default_rng(seed + 1).normal(size=3)
    mg.gradcheck(_divergence_function(base, weights), x, rtol=1e-6, atol=1e-8)


def test_fitted_divergences_equal_the_detectors_on_hard_pmfs():
    rng = np.random.default_rng(0)
    for base in (10, 20, 40, 60):
        counts = rng.integers(0, 4, (30, base - 1)).astype(np.float64)
        counts[:, 0] += 1
        totals = counts.sum(axis=1)
        pmf = counts / totals[:, None]
        fit = fit_generalized_benford(pmf, base)
        expected = _fitted_divergences(pmf, base)  # the detector's features of these pmfs
        theta = np.stack([fit.N, fit.beta, fit.gamma], axis=1)
        got = np.empty((30, 3))
        SK.fitted_divergences(counts, totals, theta, np.log(np.arange(1, base, dtype=np.float64)),
                              *_digit_factors(base), 1 / math.log(base), 0.3, _FIT_LOWER, _FIT_UPPER, 0,
                              np.zeros((30, 3)), got, np.zeros_like(counts), np.zeros(30))
        np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
