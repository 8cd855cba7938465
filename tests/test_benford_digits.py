"""Digit extraction, Benford laws, the generalized-law fit and the digit tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigan.benford import (
    BenfordResult,
    benford_pmf,
    benford_test,
    chi2_sf,
    conformity_label,
    digit_support,
    first_digits,
    first_two_digits,
    fit_generalized_benford,
    generalized_benford_pmf,
    second_digits,
)

pytestmark = pytest.mark.benford


def benford_sample(n: int, base: int = 10, decades: float = 6.0, seed: int = 0) -> np.ndarray:
    """``base**U`` with U uniform over several decades: the textbook Benford data."""
    return float(base) ** np.random.default_rng(seed).uniform(-2.0, decades - 2.0, n)


# ---------------------------------------------------------------------------
# digits: edge cases


def test_first_digit_of_values_below_one_and_exact_powers():
    x = [0.02, 0.2, 2.0, 1000, 0.001, 1e-10, 1e10, 1e300, 1e-300, 0.3, 0.7, 0.35]
    assert first_digits(x).tolist() == [2, 2, 2, 1, 1, 1, 1, 1, 1, 3, 7, 3]


def test_decimal_literals_keep_their_digits_although_floats_store_them_below():
    # 0.3, 0.7, 0.35 and 2.675 are stored slightly below their literal
    x = np.array([0.3, 0.7, 0.35, 2.675, 0.29, 9.95])
    assert first_digits(x).tolist() == [3, 7, 3, 2, 2, 9]
    assert second_digits(x).tolist() == [0, 0, 5, 6, 9, 9]
    assert first_two_digits(x).tolist() == [30, 70, 35, 26, 29, 99]


@pytest.mark.parametrize("base", [3, 7, 16, 20, 60])
def test_powers_of_any_base_have_first_digit_one(base):
    k = np.arange(-30, 31, dtype=np.float64)
    assert (first_digits(float(base) ** k, base) == 1).all()
    assert (second_digits(float(base) ** k, base) == 0).all()
    ints = np.array([base**j for j in range(0, 64) if base**j < 2**63], dtype=np.int64)
    assert (first_digits(ints, base) == 1).all()


def test_base_20_digits_against_hand_computation():
    # 19 -> "19"; 21 = 1*20 + 1; 39 = 1*20 + 19; 41 = 2*20 + 1; 0.05 = 1/20
    x = [19, 20, 21, 39, 41, 0.05, 1 / 400, 399, 400]
    assert first_digits(x, 20).tolist() == [19, 1, 1, 1, 2, 1, 1, 19, 1]
    assert second_digits([21, 39, 41, 19], 20).tolist() == [1, 19, 1, 0]
    assert first_two_digits([21, 39, 41], 20).tolist() == [21, 39, 41]


def test_negative_numbers_use_the_magnitude():
    assert first_digits([-345, -0.0071, -1000]).tolist() == [3, 7, 1]
    assert second_digits([-345, -0.0071]).tolist() == [4, 1]


def test_zero_nan_inf_are_dropped_and_counted():
    x = [0, 0.0, -0.0, float("nan"), float("inf"), -float("inf"), 5]
    digits, dropped = first_digits(x, return_dropped=True)
    assert digits.tolist() == [5] and dropped == 6
    _, dropped = second_digits(np.array([0, 3, 0], dtype=np.int32), return_dropped=True)
    assert dropped == 2


def test_int64_extremes_are_exact():
    x = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 999_999_999_999_999_999, -1, 1], dtype=np.int64)
    assert first_digits(x).tolist() == [9, 9, 9, 1, 1]
    assert second_digits(x).tolist() == [2, 2, 9, 0, 0]  # 9223372036854775807; 1 -> 1.0
    assert first_two_digits(x).tolist() == [92, 92, 99, 10, 10]
    assert first_digits(np.array([np.iinfo(np.uint64).max], dtype=np.uint64)).tolist() == [1]  # 18446744073709551615


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_every_integer_width(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.max, info.min, 10, 99], dtype=dtype)
    expected = [int(str(abs(int(v)))[0]) for v in x if v != 0]
    assert first_digits(x).tolist() == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_every_float_width(dtype):
    x = np.array([0.3, 0.7, 0.001, 1000, 12.5, 0.0625, 9.0], dtype=dtype)
    assert first_digits(x).tolist() == [3, 7, 1, 1, 1, 6, 9]
    info = np.finfo(dtype)
    assert first_digits(np.array([info.max, info.tiny], dtype=dtype)).tolist() == [
        int(f"{float(info.max):e}"[0]),
        int(f"{float(info.tiny):e}"[0]),
    ]


def test_python_ints_beyond_64_bits_keep_their_leading_digits():
    assert first_digits([3 * 10**30, 7 * 10**40]).tolist() == [3, 7]


def test_bad_inputs_are_rejected_with_named_arguments():
    with pytest.raises(TypeError, match="x must be an integer or float"):
        first_digits(np.array([True, False]))
    with pytest.raises(TypeError, match="x must"):
        first_digits(["a", "b"])
    with pytest.raises(ValueError, match="base must be >= 3"):
        first_digits([1, 2], base=2)
    with pytest.raises(TypeError, match="base must be an integer"):
        first_digits([1, 2], base=10.0)


def test_empty_input_gives_no_digits():
    digits, dropped = first_digits(np.array([], dtype=np.float64), return_dropped=True)
    assert digits.size == 0 and dropped == 0


# ---------------------------------------------------------------------------
# digits: properties

finite_nonzero = st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda v: v != 0)


@pytest.mark.property
@settings(deadline=None, max_examples=60)
@given(values=st.lists(st.one_of(finite_nonzero, st.integers(-(2**63), 2**63 - 1).filter(bool)), min_size=1, max_size=40),
       base=st.integers(3, 64))
def test_digits_stay_in_range(values, base):
    arr = np.array(values, dtype=np.float64)
    d1 = first_digits(arr, base)
    d2 = second_digits(arr, base)
    d12 = first_two_digits(arr, base)
    assert ((d1 >= 1) & (d1 <= base - 1)).all()
    assert ((d2 >= 0) & (d2 <= base - 1)).all()
    assert (d12 == d1 * base + d2).all()


@pytest.mark.property
@settings(deadline=None, max_examples=60)
@given(values=hnp.arrays(np.int64, st.integers(1, 50), elements=st.integers(-(2**63), 2**63 - 1)))
def test_integer_digits_match_the_decimal_string(values):
    nonzero = values[values != 0]
    strings = [str(abs(int(v))) for v in nonzero]
    assert first_digits(values).tolist() == [int(s[0]) for s in strings]
    assert second_digits(values).tolist() == [int(s[1]) if len(s) > 1 else 0 for s in strings]


@pytest.mark.property
@settings(deadline=None, max_examples=60)
@given(mantissa=st.integers(100, 999), exponent=st.integers(-300, 300))
def test_float_digits_match_the_decimal_literal(mantissa, exponent):
    value = float(f"{mantissa}e{exponent}")
    s = str(mantissa)
    assert first_digits([value]).tolist() == [int(s[0])]
    assert second_digits([value]).tolist() == [int(s[1])]
    assert first_two_digits([-value]).tolist() == [int(s[:2])]


@pytest.mark.property
@settings(deadline=None, max_examples=30)
@given(values=st.lists(st.one_of(finite_nonzero, st.just(0.0), st.just(float("nan"))), min_size=1, max_size=60),
       test=st.sampled_from(["first", "second", "first_two"]), base=st.integers(3, 24))
def test_counts_sum_to_n_and_dropped_are_counted(values, test, base):
    arr = np.array(values)
    good = int(np.count_nonzero(np.isfinite(arr) & (arr != 0)))
    if good == 0:
        with pytest.raises(ValueError):
            benford_test(arr, test, base)
        return
    r = benford_test(arr, test, base)
    assert r.counts.sum() == r.n == good
    assert r.n_dropped == arr.size - good
    assert math.isclose(r.observed.sum(), 1.0)


@pytest.mark.property
@settings(deadline=None, max_examples=15)
@given(scale=st.floats(1e-6, 1e6), seed=st.integers(0, 2**16))
def test_benford_data_stays_benford_when_rescaled(scale, seed):
    x = benford_sample(20_000, seed=seed)
    assert benford_test(x * scale).mad < 0.006
    assert benford_test(x).mad < 0.006


@pytest.mark.property
@settings(deadline=None, max_examples=20)
@given(base=st.integers(3, 80), test=st.sampled_from(["first", "second", "first_two"]))
def test_pmf_sums_to_one_and_matches_support(base, test):
    pmf = benford_pmf(test, base)
    assert pmf.shape == digit_support(test, base).shape
    assert (pmf > 0).all()
    assert math.isclose(pmf.sum(), 1.0, rel_tol=1e-12)


# ---------------------------------------------------------------------------
# the laws and the fit


def test_textbook_benford_values():
    np.testing.assert_allclose(benford_pmf()[:3], [0.30103, 0.17609, 0.12494], atol=5e-6)
    # Nigrini's second-digit law: P(0) = 0.11968, P(9) = 0.08500
    second = benford_pmf("second")
    np.testing.assert_allclose(second[[0, 9]], [0.11968, 0.08500], atol=5e-6)
    assert math.isclose(benford_pmf("first_two")[0], math.log10(1 + 1 / 10))


def test_generalized_law_reduces_to_benford():
    for base in (10, 20, 60):
        np.testing.assert_allclose(generalized_benford_pmf(1.0, 0.0, 1.0, base), benford_pmf("first", base))


@pytest.mark.parametrize("base", [10, 20, 40, 60])
def test_fit_recovers_known_parameters_in_a_batch(base):
    params = np.array([[1.0, 0.0, 1.0], [0.8, 0.3, 1.4], [1.3, -0.2, 0.7], [2.0, 1.5, 1.1]])
    pmfs = generalized_benford_pmf(params[:, 0], params[:, 1], params[:, 2], base)
    fit = fit_generalized_benford(pmfs, base)
    assert fit.success.all()
    np.testing.assert_allclose(np.c_[fit.N, fit.beta, fit.gamma], params, atol=1e-4)
    np.testing.assert_allclose(fit.pmf(base), pmfs, atol=1e-8)


def test_failed_fits_report_failure_without_raising():
    pmfs = np.array([
        np.full(9, np.nan),  # not a pmf
        np.zeros(9),  # no digit at all
        np.r_[0.68, 0.32, np.zeros(7)],  # two digits: the law fits ever better as parameters grow
        benford_pmf(),
    ])
    fit = fit_generalized_benford(pmfs, 10, max_iter=50)
    assert fit.success.tolist()[:2] == [False, False] and bool(fit.success[3])
    assert np.isnan(fit.N[:2]).all() and np.isnan(fit.rss[:2]).all()
    assert fit.N.shape == (4,)


def test_fit_checks_the_pmf_length():
    with pytest.raises(ValueError, match=r"pmf must have shape \(\.\.\., 19\)"):
        fit_generalized_benford(np.ones(9) / 9, 20)


def test_fit_keeps_batch_shape():
    pmfs = np.broadcast_to(benford_pmf("first", 20), (2, 3, 19))
    fit = fit_generalized_benford(pmfs, 20)
    assert fit.N.shape == (2, 3) and fit.success.all()


# ---------------------------------------------------------------------------
# the test


@pytest.mark.parametrize("base", [10, 20])
def test_benford_data_is_in_close_conformity(base):
    r = benford_test(benford_sample(50_000, base=base, seed=1), base=base)
    assert r.mad < 0.006
    assert r.ks < r.ks_critical
    assert r.chi2_pvalue > 0.001
    if base == 10:
        assert r.conformity == "close conformity"
    else:
        assert r.conformity is None  # Nigrini's thresholds are base-10 only


def test_uniform_data_is_nonconforming():
    x = np.random.default_rng(2).uniform(0, 1000, 10_000)
    r = benford_test(x)
    assert r.conformity == "nonconformity" and r.mad > 0.015
    assert r.chi2_pvalue < 1e-10 and r.ks > r.ks_critical
    assert benford_test(x, "first_two").conformity == "nonconformity"


def test_second_and_first_two_tests_on_benford_data():
    x = benford_sample(100_000, seed=3)
    assert benford_test(x, "second").conformity == "close conformity"
    assert benford_test(x, "first_two").conformity == "close conformity"


def test_statistics_against_direct_formulas():
    rng = np.random.default_rng(4)
    x = np.r_[benford_sample(3000, seed=5), rng.uniform(1, 10, 500), [0, np.nan]]
    for test, base in [("first", 10), ("second", 10), ("first_two", 10), ("first", 20)]:
        r = benford_test(x, test, base)
        # an independent count through decimal strings (base 10) / repeated division (base 20)
        vals = x[np.isfinite(x) & (x != 0)]
        if base == 10:
            keys = {"first": lambda m: int(m[0]), "second": lambda m: int(m[2]), "first_two": lambda m: int(m[0] + m[2])}
            digits = [keys[test](f"{abs(v):.14e}") for v in vals]
        else:
            digits = []
            for v in vals:
                v = abs(float(v))
                while v >= 20:
                    v /= 20
                while v < 1:
                    v *= 20
                digits.append(int(v))
        support = digit_support(test, base)
        counts = np.array([digits.count(int(d)) for d in support])
        n = len(digits)
        np.testing.assert_array_equal(r.counts, counts)
        po = counts / n
        pe = np.array([sum(math.log(1 + 1 / (a * base + int(d)), base) for a in range(1, base)) for d in support]) \
            if test == "second" else np.array([math.log(1 + 1 / int(d), base) for d in support])
        np.testing.assert_allclose(r.expected, pe, rtol=1e-12)
        np.testing.assert_allclose(r.observed, po)
        np.testing.assert_allclose(r.z, (np.abs(po - pe) - 1 / (2 * n)) / np.sqrt(pe * (1 - pe) / n))
        assert math.isclose(r.chi2, float(np.sum((counts - n * pe) ** 2 / (n * pe))), rel_tol=1e-12)
        assert math.isclose(r.mad, float(np.mean(np.abs(po - pe))), rel_tol=1e-12)
        assert math.isclose(r.ks, float(np.max(np.abs(np.cumsum(po) - np.cumsum(pe)))), rel_tol=1e-12)
        assert math.isclose(r.ks_critical, 1.358 / math.sqrt(n))
        assert r.n == n and r.n_dropped == 2 and r.chi2_df == support.size - 1


def test_chi2_pvalue_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 8, 9, 19, 89, 3599):
        for x in (0.0, 1e-8, 0.5, df / 3, df - 1, df, df + 1, 2 * df, 5 * df + 40, 1e4):
            assert chi2_sf(x, df) == pytest.approx(float(stats.chi2.sf(x, df)), rel=1e-9, abs=1e-300)


def test_chi2_sf_limits():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(float("inf"), 3) == 0.0
    # df = 2: the survival function is exp(-x/2)
    assert chi2_sf(3.0, 2) == pytest.approx(math.exp(-1.5), rel=1e-13)


def test_conformity_thresholds():
    assert conformity_label(0.006) == "close conformity"
    assert conformity_label(0.0061) == "acceptable conformity"
    assert conformity_label(0.015) == "marginal conformity"
    assert conformity_label(0.0151) == "nonconformity"
    assert conformity_label(0.0012, "first_two") == "close conformity"
    assert conformity_label(0.0019, "first_two") == "marginal conformity"
    assert conformity_label(0.009, "second") == "acceptable conformity"
    assert conformity_label(0.001, "first", 20) is None


def test_result_prints_a_table():
    r = benford_test(benford_sample(2000, seed=6))
    text = str(r)
    assert isinstance(r, BenfordResult)
    assert text.count("\n") >= 9 + 4
    assert "MAD" in text and "chi-square" in text and "conformity" in text
    assert "n/a" in str(benford_test(benford_sample(2000, base=20), base=20))


def test_benford_test_errors():
    with pytest.raises(ValueError, match="all zero, NaN or inf"):
        benford_test([0, 0, float("nan")])
    with pytest.raises(ValueError, match="no values given"):
        benford_test([])
    with pytest.raises(ValueError, match="test must be one of"):
        benford_test([1, 2], test="third")
