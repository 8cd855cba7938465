"""The Frechet distance, the shipped digit classifier and the sample evaluation."""
from __future__ import annotations

import numpy as np
import pytest

import minigan as mg
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


# --------------------------------------------------------------------------- the shipped classifier


@pytest.fixture(scope="module")
def digits():
    return metrics.load_reference_digits()


@pytest.fixture(scope="module")
def classifier():
    return metrics.DigitClassifier.load_default()


def test_shipped_classifier_accuracy_on_heldout_digits(classifier, digits):
    images, labels = digits
    train_idx, test_idx = metrics.heldout_split(labels, per_class=50, seed=classifier.meta["seed"])
    # The file records which digits it never saw; they must be the documented split.
    assert np.array_equal(classifier.extra_arrays["heldout_indices"], test_idx)
    assert test_idx.shape == (500,) and train_idx.shape == (4500,)
    assert np.array_equal(np.bincount(labels[test_idx]), np.full(10, 50))
    accuracy = classifier.accuracy(images[test_idx], labels[test_idx])
    assert accuracy >= 0.90
    assert accuracy == pytest.approx(classifier.meta["heldout_accuracy"], abs=1e-3)


def test_outputs_shapes_and_input_forms(classifier, digits):
    images = digits[0][:20]
    probs = classifier.predict_proba(images)
    assert probs.shape == (20, 10)
    assert np.allclose(probs.sum(axis=1), 1.0)
    features = classifier.features(images)
    assert features.shape == (20, 128) and features.dtype == np.float64
    as_float = images.astype(np.float32) / 127.5 - 1.0
    assert np.allclose(classifier.features(as_float.reshape(20, 784)), features, atol=1e-5)
    assert np.array_equal(classifier.predict(as_float), probs.argmax(axis=1))


def test_evaluate_real_digits_against_references(classifier, digits):
    images, labels = digits
    report = metrics.evaluate_samples(images[1::2], classifier=classifier)
    assert report["classes_covered"] == 10
    assert sum(report["class_histogram"]) == report["n_samples"] == 2500
    assert report["mean_confidence"] > 0.9
    # Real digits sit near the real-vs-real floor and far below uniform noise.
    assert report["fid_real_vs_real"] < 0.05 * report["fid_noise"]
    assert report["classifier_fid"] < 0.05 * report["fid_noise"]
    noise = np.random.default_rng(0).uniform(-1, 1, size=(1000, 28, 28))
    noise_report = metrics.evaluate_samples(noise, classifier=classifier)
    assert noise_report["classifier_fid"] > 20 * report["classifier_fid"]
    assert noise_report["mean_confidence"] < report["mean_confidence"]


def test_mode_collapse_shows_in_coverage(classifier, digits):
    images, labels = digits
    ones_and_sevens = images[np.isin(labels, [1, 7])]
    report = metrics.evaluate_samples(ones_and_sevens, images, classifier=classifier)
    assert report["classes_covered"] <= 3
    histogram = np.array(report["class_histogram"])
    assert histogram[[1, 7]].sum() > 0.9 * report["n_samples"]
    # Stricter or looser coverage thresholds move the count the expected way.
    strict = metrics.evaluate_samples(ones_and_sevens, images, classifier=classifier, min_class_share=0.2)
    assert strict["classes_covered"] == 2


def test_evaluate_samples_rejects_bad_input(classifier):
    with pytest.raises(ValueError, match="fake_images"):
        metrics.evaluate_samples(np.zeros((5, 32, 32)), classifier=classifier)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.evaluate_samples(np.zeros((1, 28, 28)), classifier=classifier)
    with pytest.raises(ValueError, match="real_images"):
        metrics.evaluate_samples(np.zeros((5, 28, 28)), np.zeros((5, 10)), classifier=classifier)
    with pytest.raises(ValueError, match="min_class_share"):
        metrics.evaluate_samples(np.zeros((5, 28, 28)), classifier=classifier, min_class_share=2.0)
    with pytest.raises(TypeError, match="classifier"):
        metrics.evaluate_samples(np.zeros((5, 28, 28)), classifier="default")


def test_fit_is_deterministic_and_save_load_round_trips(tmp_path, digits):
    images, labels = digits[0][::25], digits[1][::25]
    first = metrics.DigitClassifier.fit(images, labels, epochs=2, seed=3)
    second = metrics.DigitClassifier.fit(images, labels, epochs=2, seed=3)
    state = first.body.state_dict()
    assert all(np.array_equal(state[k], v) for k, v in second.body.state_dict().items())
    path = tmp_path / "clf.npz"
    first.save(path)
    loaded = metrics.DigitClassifier.load(path)
    assert loaded.meta["seed"] == 3 and loaded.meta["n_train"] == 200
    assert np.array_equal(loaded.logits(images), first.logits(images))


def test_fit_rejects_bad_labels(digits):
    images = digits[0][:10]
    with pytest.raises(ValueError, match="labels must lie in"):
        metrics.DigitClassifier.fit(images, np.full(10, 10), epochs=1)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        metrics.DigitClassifier.fit(images, np.zeros(9, dtype=int), epochs=1)
    with pytest.raises(TypeError, match="labels"):
        metrics.DigitClassifier.fit(images, np.zeros(10), epochs=1)


def test_load_rejects_foreign_and_corrupt_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    save_npz(foreign, {"x": np.zeros(3)}, {}, kind="checkpoint")
    with pytest.raises(FileFormatError, match="digit-classifier"):
        metrics.DigitClassifier.load(foreign)
    wrong = tmp_path / "wrong.npz"
    save_npz(wrong, {"body.0.W": np.zeros((3, 3))}, {}, kind=metrics.CLASSIFIER_KIND)
    with pytest.raises(FileFormatError, match="weights"):
        metrics.DigitClassifier.load(wrong)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(metrics.DEFAULT_CLASSIFIER_PATH.read_bytes()[:1000])
    with pytest.raises(FileFormatError):
        metrics.DigitClassifier.load(corrupt)
    with pytest.raises(FileNotFoundError):
        metrics.DigitClassifier.load(tmp_path / "missing.npz")


def _old_classifier_networks(rng):
    """The digit classifier's networks as they were built before minigan.models.mlp."""
    from minigan.layers import Dense, LeakyReLU
    from minigan.model import Sequential

    body = Sequential([Dense(784, 256, rng=rng), LeakyReLU(0.2), Dense(256, 128, rng=rng), LeakyReLU(0.2)])
    return body, Sequential([Dense(128, 10, rng=rng)])


def test_classifier_build_and_fit_match_the_previous_hand_written_versions():
    """The shared builder and training loop give bit-identical weights to the code they replaced."""
    import math

    from minigan.losses import SoftmaxCrossEntropy
    from minigan.metrics import DigitClassifier, _shift_images
    from minigan.optim import Adam

    built = DigitClassifier.build(seed=3)
    body, head = _old_classifier_networks(np.random.default_rng(3))
    for new, old in ((built.body, body), (built.head, head)):
        assert [type(a).__name__ for a in new.layers] == [type(b).__name__ for b in old.layers]
        for a, b in zip(new.state_dict().values(), old.state_dict().values()):
            np.testing.assert_array_equal(a, b)

    images, labels = mg.datasets.load("mnist-5k")
    images, labels = images[:96], labels[:96]
    fitted = DigitClassifier.fit(images, labels, epochs=2, batch_size=32, seed=4)
    # the loop as it was written inside DigitClassifier.fit
    rng = np.random.default_rng(4)
    body, head = _old_classifier_networks(rng)
    flat = images.reshape(96, 784).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    optimizer, loss = Adam(body.parameters() + head.parameters(), lr=1e-3), SoftmaxCrossEntropy()
    body.train(), head.train()
    step, total_steps = 0, 2 * 3
    for _ in range(2):
        order = rng.permutation(96)
        for start in range(0, 96, 32):
            optimizer.lr = 1e-3 * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            step += 1
            index = order[start : start + 32]
            batch = _shift_images(flat[index], rng, 2)
            optimizer.zero_grad()
            loss.forward(head.forward(body.forward(batch)), labels[index].astype(np.int64))
            body.backward(head.backward(loss.backward()), input_grad=False)
            optimizer.step()
    for new, old in ((fitted.body, body), (fitted.head, head)):
        for a, b in zip(new.state_dict().values(), old.state_dict().values()):
            np.testing.assert_array_equal(a, b)


def test_metrics_use_the_classifiers_public_interface():
    from minigan.metrics import DigitClassifier

    classifier = DigitClassifier.build(seed=0)
    digits = mg.datasets.load("mnist-5k")[0][:40]
    features, logits = classifier.features_and_logits(digits)
    assert features.shape == (40, 128) and logits.shape == (40, 10)
    np.testing.assert_array_equal(features, classifier.features(digits))
    first = classifier.reference_points(digits, seed=1)
    assert classifier.reference_points(digits, seed=1) is first  # remembered
    assert set(first) == {"real_stats", "fid_real_vs_real", "fid_noise"} and first["fid_noise"] > first["fid_real_vs_real"]
    with pytest.raises(ValueError, match="at least 4 real images are needed"):
        classifier.reference_points(digits[:3])
    with pytest.raises(ValueError, match="at least 2 generated images are needed"):
        mg.metrics.evaluate_samples(digits[:1], digits, classifier=classifier)
