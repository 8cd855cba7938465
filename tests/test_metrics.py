"""The Frechet distance, the shipped digit classifier and the sample evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from minigan import metrics
from minigan.serialization import FileFormatError, save_npz

pytestmark = pytest.mark.gan


def _correlated(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.normal(size=(n, k)) @ rng.normal(size=(k, k))


# --------------------------------------------------------------------------- Frechet distance


def test_identical_sets_give_zero():
    feats = _correlated(np.random.default_rng(0), 500, 16)
    assert metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_symmetric():
    rng = np.random.default_rng(1)
    a = _correlated(rng, 300, 12)
    b = _correlated(rng, 400, 12) + 0.5
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-9)


def test_mean_shift_adds_squared_norm_for_equal_covariances():
    rng = np.random.default_rng(2)
    a = _correlated(rng, 200, 8)
    shift = rng.normal(size=8)
    # b has exactly a's covariance, so the whole distance is ||shift||^2.
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-7)


def test_known_value_for_diagonal_gaussians():
    # For diagonal covariances d^2 = sum (mu_a - mu_b)^2 + sum (sqrt(s_a) - sqrt(s_b))^2.
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    got = metrics.frechet_distance_from_statistics(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    a = _correlated(rng, 600, 20)
    b = _correlated(rng, 500, 20) * 0.7 + 0.3
    mean_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    mean_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_rank_deficient_covariance_is_fine():
    # Fewer samples than features: singular covariances must not give NaN.
    rng = np.random.default_rng(4)
    value = metrics.frechet_distance(rng.normal(size=(5, 30)), rng.normal(size=(7, 30)))
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), ValueError, "same number of features"),
        (np.zeros(10), np.zeros((10, 1)), ValueError, "feat_a must have 2 dimensions"),
        (np.zeros((1, 3)), np.zeros((10, 3)), ValueError, "at least 2 rows"),
        (np.zeros((10, 3), dtype=np.int64), np.zeros((10, 3)), TypeError, "feat_a"),
        (np.zeros((10, 3)), np.full((10, 3), np.nan), ValueError, "feat_b must be finite"),
        ("abc", np.zeros((10, 3)), TypeError, "feat_a"),
    ],
)
def test_frechet_distance_rejects_bad_input(a, b, error, match):
    with pytest.raises(error, match=match):
        metrics.frechet_distance(a, b)


def test_statistics_form_rejects_asymmetric_covariance():
    with pytest.raises(ValueError, match="cov_b must be a symmetric"):
        metrics.frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="cov_a must have shape"):
        metrics.frechet_distance_from_statistics(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


# --------------------------------------------------------------------------- classifier input


def test_classifier_input_forms_agree():
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    scaled = raw / 127.5 - 1.0
    a = metrics.as_classifier_input(raw)
    b = metrics.as_classifier_input(scaled)
    c = metrics.as_classifier_input(scaled.reshape(3, 784).astype(np.float32))
    assert a.shape == (3, 784) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-6) and np.allclose(a, c, atol=1e-6)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((3, 28)), ValueError, r"\(n, 28, 28\) or \(n, 784\)"),
        (np.zeros((28, 28)), ValueError, r"\(n, 28, 28\)"),
        (np.zeros((0, 784)), ValueError, "at least one"),
        (np.full((2, 784), 255.0), ValueError, r"\[-1, 1\]"),
        (np.zeros((2, 784), dtype=np.int32), TypeError, "images"),
        (np.full((2, 784), np.nan), ValueError, "finite"),
        ([0.0] * 784, TypeError, "NumPy array"),
    ],
)
def test_classifier_input_rejects_bad_images(bad, error, match):
    with pytest.raises(error, match=match):
        metrics.as_classifier_input(bad)
