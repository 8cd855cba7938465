"""Generator terms for evasion: the Benford term and frozen detectors, their gradients and their records."""
import numpy as np
import pytest

import minigan as mg
from minigan.benford import BenfordDetector, PixelDetector
from minigan.benford.evasion import BenfordTerm, DetectorTerm
from minigan.benford.image import image_features
from minigan.benford.soft_features import SoftBenfordFeatures, SoftPixelFeatures
from minigan.terms import term_from_config
from shared import textured

pytestmark = pytest.mark.benford


def _directional_error(function, x, n_directions=6, eps=1e-5, seed=0):
    """Largest relative error of the analytic derivative along random directions against
    central differences (float64). For maps too costly to difference pixel by pixel; the
    step is larger than gradcheck's because the fits' round-off (about 1e-12) would
    otherwise dominate."""
    _, grad = function(x)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n_directions):
        d = rng.normal(size=x.shape)
        d /= np.linalg.norm(d)
        numeric = (function(x + eps * d)[0] - function(x - eps * d)[0]) / (2 * eps)
        analytic = float(np.sum(grad * d))
        worst = max(worst, abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-8))
    return worst


def _generated(n, size, seed):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(-0.6, 1.4, (n, size * size)))


@pytest.fixture(scope="module")
def small_detectors():
    """A Benford and a pixel detector of 16x16 images, fitted in a fraction of a second."""
    real = textured(24, size=16, seed=1)
    real[:, :8, :8] = 0
    fake = textured(24, size=16, seed=2) // 2 + 3
    images = np.concatenate([real, fake])
    labels = np.r_[np.zeros(24, np.int64), np.ones(24, np.int64)]
    benford = BenfordDetector(quality_factors=(90, 100), bases=(5, 10), n_coefficients=3, epochs=3,
                              jpeg_augment=None).fit(images, labels)
    pixel = PixelDetector(epochs=3).fit(images, labels)
    return benford, pixel, real


# --------------------------------------------------------------------------- the Benford term


@pytest.mark.gradcheck
def test_benford_term_gradient_matches_central_differences(small_detectors):
    real = small_detectors[2]
    # the smooth term (soft share values): hard values with gate slopes are an estimator,
    # not a derivative, and have no finite differences to match
    term = BenfordTerm(real, quality_factors=(90, 100), bases=(3, 5), n_coefficients=4, temperature=0.5,
                       gate_width=0.6, share_width=1.5, round_pixels=False, hard_shares=False)

    def function(x):
        value = term.divergence(x)[0]
        return value, term.gradient()

    report = mg.gradcheck(function, _generated(3, 16, 0))
    assert report.max_rel_error < 1e-6


def test_hard_shares_keep_the_gate_gradient_and_the_detectors_values(small_detectors):
    """Straight through: the hard share values are the detector's counts, and the backward
    pass of a share is the share gate's, whatever the values."""
    from minigan.benford.soft import SoftBenford

    x = _generated(3, 16, 2)
    options = dict(quality_factors=(90, 100), bases=(3, 5), n_coefficients=4, share_width=1.5, round_pixels=False)
    soft, hard = SoftBenford((16, 16), **options), SoftBenford((16, 16), hard_shares=True, **options)
    soft_stats, hard_stats = soft.forward(x, per_image=True), hard.forward(x, per_image=True)
    assert not np.allclose(soft_stats.nonzero_shares, hard_stats.nonzero_shares)
    np.testing.assert_array_equal(hard_stats.counts, soft_stats.counts)
    rng = np.random.default_rng(0)
    grads = {"grad_nonzero_shares": rng.normal(size=hard_stats.nonzero_shares.shape),
             "grad_unquantized_shares": rng.normal(size=hard_stats.unquantized_shares.shape)}
    np.testing.assert_array_equal(hard.backward(**grads), soft.backward(**grads))
    # the values are the hard counts: |c / q| >= 1/2 per coefficient, a pixel above 1/2 per block
    tiny = SoftBenford((16, 16), **{**options, "share_width": 1e-6})
    np.testing.assert_allclose(hard_stats.nonzero_shares, tiny.forward(x, per_image=True).nonzero_shares, atol=1e-9)


def test_benford_term_is_zero_on_the_reference_and_adds_its_weighted_gradient(small_detectors):
    real = small_detectors[2]
    term = BenfordTerm(real, weight=0.5)
    as_floats = real.reshape(len(real), -1).astype(np.float64) / 127.5 - 1.0
    assert term.divergence(as_floats)[0] == pytest.approx(0.0, abs=1e-12)
    fake = _generated(4, 16, 1)
    value = term.divergence(fake)[0]
    assert value > 0.01
    expected = 0.5 * term.gradient()
    grad = np.ones_like(fake)
    logs = term.add_image_gradient(fake, None, grad)
    np.testing.assert_allclose(grad - 1.0, expected, rtol=1e-12)
    assert logs["benford"] == pytest.approx(0.5 * value)
    assert set(logs) == set(term.log_names)


def test_benford_term_matches_the_batch_against_real_digits_of_its_classes():
    digits, labels = mg.datasets.load("mnist-5k")
    digits, labels = digits[:600], labels[:600]
    term = BenfordTerm(digits, labels=labels)
    pooled = BenfordTerm(digits, match_classes=False)
    assert term.match_classes and not pooled.match_classes
    # the class mix of the real digits gives back their pooled statistics
    term._set_reference(np.bincount(labels, minlength=10) / len(labels))
    np.testing.assert_allclose(term._reference, pooled._reference, atol=1e-12)
    np.testing.assert_allclose(term.reference_nonzero, pooled.reference_nonzero, atol=1e-12)
    assert term.reference_unquantized == pytest.approx(pooled.reference_unquantized, abs=1e-12)
    # a batch of ones is judged against real ones
    ones = digits[labels == 1].reshape(-1, 784).astype(np.float64) / 127.5 - 1.0
    weights = term.class_weights(ones)
    assert weights.argmax() == 1 and weights.sum() == pytest.approx(1.0)
    only_ones = BenfordTerm(digits[labels == 1], match_classes=False)
    term._set_reference(np.eye(10)[1])
    np.testing.assert_allclose(term.reference_nonzero, only_ones.reference_nonzero, atol=1e-12)
    assert term.divergence(ones)[0] < pooled.divergence(ones)[0]
    with pytest.raises(ValueError, match="one digit class"):
        BenfordTerm(digits, labels=labels[:10])


def test_benford_term_record_rebuilds_it(tmp_path):
    np.save(tmp_path / "real.npy", textured(6, size=16, seed=3))
    term = BenfordTerm(str(tmp_path / "real.npy"), weight=0.25)
    assert term.get_config()["reference"] == str((tmp_path / "real.npy").resolve())
    spec = {"class": "BenfordTerm", "config": term.get_config()}
    again = term_from_config(spec)
    assert again.get_config() == term.get_config()
    np.testing.assert_array_equal(again.reference_nonzero, term.reference_nonzero)
    in_memory = BenfordTerm(textured(4, size=16), weight=1.0)
    with pytest.raises(ValueError, match="in-memory images"):
        term_from_config({"class": "BenfordTerm", "config": in_memory.get_config()})


# --------------------------------------------------------------------------- frozen detectors


@pytest.mark.gradcheck
def test_pixel_detector_term_gradient_matches_central_differences(small_detectors):
    # the smooth mask (hard_shares=False): the hard one is straight-through, not a derivative
    term = DetectorTerm(small_detectors[1], balance=False, weight=0.7, round_pixels=False, share_width=1.5,
                        hard_shares=False)

    def function(x):
        grad = np.zeros_like(x)
        logs = term.add_image_gradient(x, None, grad)
        return 0.7 * logs["evade_pixel"], grad

    report = mg.gradcheck(function, _generated(2, 16, 2))
    assert report.max_rel_error < 1e-6


@pytest.mark.gradcheck
def test_benford_features_gradient_through_the_polished_fit(small_detectors):
    """The Benford detector's whole soft feature map -- digit counts, pmfs, the fit (implicitly
    differentiated), the divergences, the imputation blend and the shares."""
    features = SoftBenfordFeatures(small_detectors[0], (16, 16), temperature=0.5, gate_width=0.6, share_width=1.5,
                                   round_pixels=False, polish_fit=True)
    images = np.clip(textured(3, size=16, seed=5).reshape(3, -1) / 127.5 - 1.0, -0.999, 0.999)
    weights = np.random.default_rng(0).normal(size=(3, features.n_features))

    def function(x):
        return float(np.sum(weights * features.forward(x))), features.backward(weights)

    assert _directional_error(function, images) < 1e-6


def test_detector_terms_see_what_the_detectors_see_at_small_widths(small_detectors):
    benford, pixel, real = small_detectors
    published = textured(6, size=16, seed=9)
    published[:3, 8:, :] = 0
    floats = published.reshape(6, -1).astype(np.float64) / 127.5 - 1.0
    tiny = {"temperature": 1e-7, "gate_width": 1e-7, "share_width": 1e-7}
    soft = SoftBenfordFeatures(benford, (16, 16), **tiny).forward(floats)
    hard = image_features(published, quality_factors=(90, 100), bases=(5, 10), n_coefficients=3,
                          nonzero_shares=True, unquantized_shares=True)
    hard = np.where(np.isfinite(hard), hard, benford.mean_)
    np.testing.assert_allclose(soft, hard, rtol=1e-6, atol=1e-9)
    term = DetectorTerm([benford, pixel], image_shape=(16, 16), **tiny)
    for judge, detector in zip(term.judges, (benford, pixel)):
        np.testing.assert_allclose(judge.logits(floats.astype(np.float32)), detector.decision_function(published),
                                   rtol=1e-4, atol=1e-4)
    pixel_soft = SoftPixelFeatures(pixel, share_width=1e-7).forward(floats)
    assert set(np.unique(pixel_soft[:, 256:])) <= {0.0, 1.0}
    np.testing.assert_array_equal(pixel_soft[:, 256:], (published.reshape(6, -1) > 0).astype(float))


def test_balanced_detector_gradient_has_the_weighted_norm_of_the_received_one(small_detectors):
    benford, pixel, _ = small_detectors
    term = DetectorTerm([benford, pixel], weight=0.5, image_shape=(16, 16), max_images=3)
    fake = _generated(5, 16, 3).astype(np.float32)
    received = np.random.default_rng(0).normal(size=fake.shape).astype(np.float32)
    grad = received.copy()
    logs = term.add_image_gradient(fake, None, grad)
    assert set(logs) == {"evade_benford", "evade_pixel"} and all(v > 0 for v in logs.values())
    added = grad - received
    assert np.all(added[3:] == 0)  # only the first max_images fakes are judged
    # each detector's share is rescaled to 0.5 |received|: together at most |received|
    assert 0.0 < np.linalg.norm(added) <= np.linalg.norm(received) * (1 + 1e-5)


def test_detector_term_records_paths_and_refuses_a_changed_file(small_detectors, tmp_path):
    benford, pixel, _ = small_detectors
    paths = [tmp_path / "benford.npz", tmp_path / "pixel.npz"]
    benford.save(paths[0])
    pixel.save(paths[1])
    term = DetectorTerm([str(p) for p in paths], weight=2.0, image_shape=(16, 16))
    config = term.get_config()
    assert config["detectors"] == [str(p.resolve()) for p in paths] and len(config["sha256"][0]) == 64
    again = term_from_config({"class": "DetectorTerm", "config": config})
    assert again.get_config() == config
    PixelDetector(epochs=1, seed=3).fit(textured(8, size=16), np.r_[np.zeros(4), np.ones(4)].astype(int)).save(paths[1])
    with pytest.raises(ValueError, match="changed since the run recorded it"):
        term_from_config({"class": "DetectorTerm", "config": config})
    with pytest.raises(FileNotFoundError, match="detector file not found"):
        DetectorTerm(str(tmp_path / "missing.npz"))
    with pytest.raises(TypeError, match="BenfordDetector / PixelDetector"):
        DetectorTerm(42)
    with pytest.raises(ValueError, match="not fitted"):
        DetectorTerm(PixelDetector())
