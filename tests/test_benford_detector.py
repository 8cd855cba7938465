"""BenfordDetector, PixelDetector and the evaluation helpers."""
from __future__ import annotations

import numpy as np
import pytest

from minigan.benford import (
    BenfordDetector,
    PixelDetector,
    accuracy,
    balanced_accuracy,
    load_detector,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from minigan.benford.image import _dct_matrix, image_features, quantization_table
from minigan.errors import NotFittedError
from minigan.serialization import FileFormatError, save_npz

from shared import textured  # noqa: E402

pytestmark = pytest.mark.benford

FAST = {"quality_factors": (90, 100), "bases": (10, 20), "n_coefficients": 6, "epochs": 30}


def jpeg_like(images: np.ndarray, quality: int) -> np.ndarray:
    """The 'fake' class: every block's DCT quantized with the IJG table, as a JPEG would."""
    c = _dct_matrix()
    q = quantization_table(quality).astype(float)
    n, h, w = images.shape
    blocks = images.astype(float).reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4) - 128
    back = (c.T @ (np.round((c @ blocks @ c.T) / q) * q) @ c + 128).transpose(0, 1, 3, 2, 4).reshape(n, h, w)
    return np.clip(np.rint(back), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data():
    real = textured(60, seed=1)
    fake = jpeg_like(textured(60, seed=2), 60)
    x = np.r_[real, fake]
    y = np.r_[np.zeros(60, dtype=np.int64), np.ones(60, dtype=np.int64)]
    order = np.random.default_rng(3).permutation(120)
    train, test = order[:80], order[80:]
    return x[train], y[train], x[test], y[test]


@pytest.fixture(scope="module")
def benford_model(data):
    x, y, _, _ = data
    return BenfordDetector(seed=5, **FAST).fit(x, y)


# ---------------------------------------------------------------------------
# evaluation helpers


def test_roc_auc_is_the_mann_whitney_statistic_with_ties():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.4, 0.8, 0.2, 0.3])
    pairs = [(p, n) for p in s[y == 1] for n in s[y == 0]]
    direct = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert roc_auc(y, s) == pytest.approx(direct)
    assert roc_auc(y, np.ones(6)) == 0.5
    assert roc_auc([0, 1], [0.0, 1.0]) == 1.0 and roc_auc([1, 0], [0.0, 1.0]) == 0.0


def test_roc_auc_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 0.7, 1.0), 1)  # many ties
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert roc_auc(y, s) == pytest.approx(u / (np.sum(y == 1) * np.sum(y == 0)))


def test_roc_curve_and_its_area():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.normal(y, 1.0)
    fpr, tpr, thr = roc_curve(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and np.isinf(thr[0])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))


def test_tpr_at_fpr():
    y = np.array([0] * 100 + [1] * 10)
    s = np.r_[np.arange(100) / 100, [0.995] * 9, [0.5]]
    assert tpr_at_fpr(y, s, 0.0) == pytest.approx(0.9)
    assert tpr_at_fpr(y, s, 0.5) == pytest.approx(1.0)


def test_accuracies():
    y = np.array([0, 0, 0, 0, 1])
    p = np.array([0, 0, 0, 0, 0])
    assert accuracy(y, p) == 0.8
    assert balanced_accuracy(y, p) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        balanced_accuracy([1, 1], [1, 0])
    with pytest.raises(ValueError, match="0 \\(real\\) and 1"):
        accuracy([0, 2], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        roc_auc([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0, 1], [0.2, np.nan])


# ---------------------------------------------------------------------------
# detectors


def test_benford_detector_separates_held_out_images(benford_model, data):
    _, _, xt, yt = data
    proba = benford_model.predict_proba(xt)
    assert proba.shape == (xt.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc(yt, proba[:, 1]) > 0.95
    assert benford_model.score(xt, yt) > 0.85
    assert set(np.unique(benford_model.predict(xt))) <= {0, 1}
    assert benford_model.loss_history_[-1] < benford_model.loss_history_[0]
    # divergences, then quantized and unquantized non-zero shares
    assert len(benford_model.feature_names) == benford_model.mean_.size == 2 * 2 * 6 * 3 + 2 * 6 + 6


def test_training_is_deterministic(data, benford_model):
    x, y, xt, _ = data
    again = BenfordDetector(seed=5, **FAST).fit(x, y)
    np.testing.assert_array_equal(again.predict_proba(xt), benford_model.predict_proba(xt))
    other = BenfordDetector(seed=6, **FAST).fit(x, y)
    assert not np.array_equal(other.predict_proba(xt), benford_model.predict_proba(xt))


def test_save_and_load_round_trip(tmp_path, benford_model, data):
    _, _, xt, _ = data
    path = tmp_path / "model.npz"
    benford_model.save(path)
    loaded = BenfordDetector.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(xt), benford_model.predict_proba(xt))
    assert loaded.quality_factors == (90, 100) and loaded.bases == (10, 20) and loaded.n_coefficients == 6
    assert isinstance(load_detector(path), BenfordDetector)


def test_loading_foreign_files_fails_clearly(tmp_path, benford_model):
    path = tmp_path / "b.npz"
    benford_model.save(path)
    with pytest.raises(FileFormatError, match="expected a 'pixel-detector'"):
        PixelDetector.load(path)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(FileFormatError, match="not a minigan"):
        BenfordDetector.load(foreign)
    with pytest.raises(FileFormatError, match="not a minigan detector"):
        load_detector(foreign)
    other_kind = tmp_path / "checkpoint.npz"
    save_npz(other_kind, {"x": np.zeros(2)}, {}, kind="checkpoint")
    with pytest.raises(FileFormatError, match="'checkpoint'"):
        load_detector(other_kind)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(FileFormatError):
        load_detector(corrupt)
    damaged = tmp_path / "damaged.npz"
    save_npz(damaged, {"feature_mean": np.zeros(3)}, {"format_version": 1}, kind="benford-detector")
    with pytest.raises(FileFormatError, match="damaged"):
        BenfordDetector.load(damaged)
    with pytest.raises(FileNotFoundError):
        load_detector(tmp_path / "missing.npz")


def test_nan_features_are_imputed_with_the_training_mean(benford_model, data):
    _, _, xt, _ = data
    constant = np.full((2, 32, 32), 90, dtype=np.uint8)  # every divergence NaN, every non-zero share 0
    z = benford_model.transform(constant)
    names = benford_model.feature_names
    divergence = np.array([not n.endswith("_nonzero") for n in names])
    assert z.shape == (2, len(names)) and divergence.sum() == 2 * 2 * 6 * 3 and (~divergence).sum() == 2 * 6 + 6
    np.testing.assert_array_equal(z[:, divergence], 0.0)
    assert np.isfinite(z).all()
    proba = benford_model.predict_proba(np.r_[xt[:3], constant])
    assert np.isfinite(proba).all()


def test_pixel_detector(tmp_path):
    rng = np.random.default_rng(4)
    real = textured(60, 16, seed=7)
    fake = np.clip(textured(60, 16, seed=8).astype(float) + 25 * (np.indices((16, 16)).sum(0) % 2), 0, 255)
    x = np.r_[real, fake.astype(np.uint8)]
    y = np.r_[np.zeros(60, dtype=np.int64), np.ones(60, dtype=np.int64)]
    order = rng.permutation(120)
    tr, te = order[:80], order[80:]
    model = PixelDetector(epochs=20, seed=1).fit(x[tr], y[tr])
    assert roc_auc(y[te], model.predict_proba(x[te])[:, 1]) > 0.95
    assert model.image_shape_ == (16, 16)
    path = tmp_path / "pixel.npz"
    model.save(path)
    loaded = load_detector(path)
    assert isinstance(loaded, PixelDetector)
    np.testing.assert_array_equal(loaded.predict_proba(x[te]), model.predict_proba(x[te]))
    # floats in [0, 1] are the same pixels
    np.testing.assert_allclose(model.predict_proba(x[te] / 255.0), model.predict_proba(x[te]), atol=1e-5)
    with pytest.raises(ValueError, match="shape the detector was trained on"):
        model.predict(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(FileFormatError, match="expected a 'benford-detector'"):
        BenfordDetector.load(path)


def test_detector_input_errors(data):
    x, y, _, _ = data
    with pytest.raises(NotFittedError, match="not fitted"):
        BenfordDetector().predict(x)
    with pytest.raises(ValueError, match="both classes"):
        BenfordDetector(**FAST).fit(x[:4], np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="one label per image"):
        BenfordDetector(**FAST).fit(x[:4], np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="0 \\(real\\) and 1"):
        BenfordDetector(**FAST).fit(x[:4], np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="NaN"):
        BenfordDetector(**FAST).fit(np.full((4, 16, 16), np.nan), np.array([0, 1, 0, 1]))
    with pytest.raises(TypeError, match="uint8"):
        PixelDetector().fit(x.astype(np.int32), y)
    with pytest.raises(ValueError, match="one size"):
        PixelDetector().fit([x[0], x[1][:16]], np.array([0, 1]))
    with pytest.raises(ValueError, match="dropout must be < 1"):
        BenfordDetector(dropout=1.0, **FAST).fit(x, y)


def test_roc_and_benford_charts(tmp_path):
    from minigan.benford import benford_test
    from minigan.benford.plots import plot_benford, plot_roc

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    png = b"\x89PNG\r\n\x1a\n"
    assert plot_roc(y, rng.normal(y, 1.0), tmp_path / "roc.png").read_bytes()[:8] == png
    two = plot_roc(y, {"a": rng.normal(y, 1.0), "b": rng.normal(y, 2.0)}, tmp_path / "roc2.png")
    assert two.read_bytes()[:8] == png
    chart = plot_benford(benford_test(10 ** rng.uniform(0, 5, 500)), tmp_path / "benford.png")
    assert chart.read_bytes()[:8] == png
    with pytest.raises(TypeError, match="BenfordResult"):
        plot_benford(np.ones(9), tmp_path / "x.png")


@pytest.mark.parametrize("quantized, unquantized, extra", [(False, False, 0), (False, True, 6), (True, False, 12)])
def test_benford_detector_share_options_round_trip(tmp_path, data, quantized, unquantized, extra):
    x, y, xt, _ = data
    model = BenfordDetector(seed=5, nonzero_shares=quantized, unquantized_shares=unquantized, **FAST).fit(x, y)
    assert model.mean_.size == len(model.feature_names) == 2 * 2 * 6 * 3 + extra
    model.save(tmp_path / "plain.npz")
    loaded = load_detector(tmp_path / "plain.npz")
    assert (loaded.nonzero_shares, loaded.unquantized_shares) == (quantized, unquantized)
    np.testing.assert_array_equal(loaded.predict_proba(xt), model.predict_proba(xt))
    for name in ("nonzero_shares", "unquantized_shares"):
        with pytest.raises(TypeError, match=name):
            BenfordDetector(**{**FAST, name: 1}).fit(x, y)


def test_pixel_detector_intensity_mapping_and_round_trip(tmp_path):
    x = np.r_[textured(20, 8, seed=1), textured(20, 8, seed=2) // 2 + 1].astype(np.uint8)
    y = np.r_[np.zeros(20, dtype=np.int64), np.ones(20, dtype=np.int64)]
    levels = np.array([[[0, 1, 15, 255]]], dtype=np.uint8)
    log = PixelDetector(nonzero_mask=False)._pixel_features(levels, None)[0]
    # log(1 + level) / log(256): one 8-bit level above black already reaches 1/8 of the scale
    np.testing.assert_allclose(log, np.log1p([0, 1, 15, 255]) / np.log(256), rtol=1e-12)
    assert log[1] == pytest.approx(0.125)
    linear = PixelDetector(intensity="linear", nonzero_mask=False)._pixel_features(levels, None)[0]
    np.testing.assert_allclose(linear, np.array([0, 1, 15, 255]) / 255, rtol=1e-12)
    both = PixelDetector()._pixel_features(levels, None)[0]  # the default: log pixels, then the above-black mask
    np.testing.assert_array_equal(both, np.r_[log, 0.0, 1.0, 1.0, 1.0])
    # float pixels in [-1, 1]: -1 is black
    signed = PixelDetector(value_range=(-1, 1))._pixel_features(levels / 127.5 - 1, None)[0]
    np.testing.assert_allclose(signed, both, atol=1e-12)
    for intensity, mask in (("log", True), ("linear", False)):
        model = PixelDetector(intensity=intensity, nonzero_mask=mask, epochs=2, seed=0).fit(x, y)
        model.save(tmp_path / f"{intensity}.npz")
        loaded = load_detector(tmp_path / f"{intensity}.npz")
        assert (loaded.intensity, loaded.nonzero_mask) == (intensity, mask)
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    with pytest.raises(ValueError, match="intensity"):
        PixelDetector(intensity="sqrt").fit(x, y)
    with pytest.raises(TypeError, match="nonzero_mask"):
        PixelDetector(nonzero_mask="yes").fit(x, y)


def test_jpeg_augmentation_trains_on_recompressed_copies(tmp_path, data):
    x, y, xt, _ = data
    model = BenfordDetector(seed=2, jpeg_augment=(80, 85), **FAST)
    raw, labels = model._training_features(x, y)
    plain, _ = BenfordDetector(seed=2, jpeg_augment=None, **FAST)._training_features(x, y)
    n = len(x)
    assert raw.shape == (2 * n, plain.shape[1]) and np.array_equal(labels, np.r_[y, y])
    np.testing.assert_array_equal(raw[:n], plain)  # the images themselves, then their JPEG copies
    assert not np.allclose(raw[n:], plain, equal_nan=True)
    # floats in [0, 1] are the same 8-bit pictures
    as_float, _ = model._training_features(x / 255.0, y)
    np.testing.assert_allclose(as_float, raw, atol=1e-9, equal_nan=True)
    fitted = model.fit(x, y)
    fitted.save(tmp_path / "aug.npz")
    loaded = load_detector(tmp_path / "aug.npz")
    assert loaded.jpeg_augment == (80, 85)
    np.testing.assert_array_equal(loaded.predict_proba(xt), fitted.predict_proba(xt))
    with pytest.raises(ValueError, match=r"jpeg_augment\[1\]"):
        BenfordDetector(**{**FAST, "jpeg_augment": (90, 80)}).fit(x, y)
    with pytest.raises(TypeError, match="jpeg_augment must be None or a pair"):
        BenfordDetector(**{**FAST, "jpeg_augment": 90}).fit(x, y)


# ---------------------------------------------------------------------------
# scikit-learn's estimator conventions


@pytest.mark.parametrize("cls", [BenfordDetector, PixelDetector])
def test_init_stores_arguments_as_given_and_fit_validates_them(cls, data):
    x, y, _, _ = data
    hidden = [8]  # a list stays a list: nothing is converted or checked before fit
    model = cls(hidden=hidden, epochs="many")
    assert model.hidden is hidden and model.epochs == "many"
    assert model.get_params()["hidden"] is hidden
    assert not hasattr(model, "network_") and not hasattr(model, "mean_")
    with pytest.raises(TypeError, match="epochs must be an integer"):
        model.fit(x, y)
    assert model.set_params(epochs=2, dropout=0.0) is model
    assert model.get_params()["epochs"] == 2
    if cls is BenfordDetector:
        model.set_params(**{**FAST, "epochs": 2})
    model.fit(x, y)
    assert model.network_ is not None and model.mean_.ndim == 1 and len(model.loss_history_) == 2
    with pytest.raises(ValueError, match="'width' is not a parameter of"):
        model.set_params(width=3)
    # get_params round-trips through the constructor, as scikit-learn's clone does
    assert cls(**model.get_params()).get_params() == model.get_params()


@pytest.mark.parametrize("cls", [BenfordDetector, PixelDetector])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "transform", "save"])
def test_using_a_detector_before_fit_raises_not_fitted(cls, method, data, tmp_path):
    x = data[0]
    with pytest.raises(NotFittedError, match="not fitted yet") as info:
        getattr(cls(), method)(tmp_path / "m.npz" if method == "save" else x)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)


def _old_detector_network(n_features, hidden, dropout, seed):
    """The detectors' network as it was built before minigan.models.mlp: layer by layer."""
    import minigan as mg

    init_ss, dropout_ss, _ = np.random.SeedSequence(seed).spawn(3)
    init_rng, dropout_rng = np.random.default_rng(init_ss), np.random.default_rng(dropout_ss)
    layers, width = [], n_features
    for h in hidden:
        layers += [mg.Dense(width, h, rng=init_rng), mg.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(mg.Dropout(dropout, rng=dropout_rng))
        width = h
    layers.append(mg.Dense(width, 1, rng=init_rng))
    return mg.Sequential(layers)


@pytest.mark.parametrize("hidden, dropout", [((64, 32), 0.2), ((5,), 0.0)])
def test_detector_networks_start_from_the_same_weights_as_before(hidden, dropout):
    seed = 11
    init_ss, dropout_ss, _ = np.random.SeedSequence(seed).spawn(3)
    new = BenfordDetector(hidden=hidden, dropout=dropout)._build(
        40, np.random.default_rng(init_ss), np.random.default_rng(dropout_ss))
    old = _old_detector_network(40, hidden, dropout, seed)
    assert [type(layer).__name__ for layer in new.layers] == [type(layer).__name__ for layer in old.layers]
    for (k1, v1), (k2, v2) in zip(new.state_dict().items(), old.state_dict().items()):
        assert k1 == k2 and v1.dtype == v2.dtype
        np.testing.assert_array_equal(v1, v2)
    # the dropout masks come from the same stream too
    x = np.ones((4, 40), np.float32)
    new.train(), old.train()
    np.testing.assert_array_equal(new.forward(x), old.forward(x))


def test_benford_detector_warns_about_images_far_from_its_training_images(benford_model, data, tmp_path):
    import warnings

    _, _, xt, _ = data  # trained on 32x32 grey images
    assert benford_model.image_domain_ == {"height": [32, 32], "width": [32, 32], "color": "grey"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        benford_model.predict_proba(xt)  # the same kind of images: no warning
        assert benford_model.domain_gap(np.zeros((40, 20), np.uint8)) is None  # within a factor 2
    big = textured(2, 160, seed=9)
    assert "it is 160x160, the training images were 32x32" in benford_model.domain_gap(big[0])
    with pytest.warns(UserWarning, match=r"2 of 2 image\(s\) are far .*160x160"):
        benford_model.predict_proba(big)
    colour = np.stack([xt[0], xt[1], xt[2]], axis=-1)
    assert "it is colour, the training images were grey" in benford_model.domain_gap(colour)
    assert benford_model.domain_gap(np.repeat(xt[0][..., None], 3, axis=-1)) is None  # grey stored as RGB
    benford_model.save(tmp_path / "m.npz")
    assert load_detector(tmp_path / "m.npz").image_domain_ == benford_model.image_domain_


def test_a_model_saved_before_the_image_domain_was_recorded_still_loads(benford_model, data, tmp_path):
    import warnings

    from minigan.serialization import load_npz

    _, _, xt, _ = data
    benford_model.save(tmp_path / "new.npz")
    arrays, meta = load_npz(tmp_path / "new.npz", kind="benford-detector")
    del meta["settings"]["image_domain"]  # the settings as minigan wrote them before
    meta.pop("minigan_format")
    save_npz(tmp_path / "old.npz", arrays, meta, kind="benford-detector")
    old = load_detector(tmp_path / "old.npz")
    assert old.image_domain_ is None and old.loss_history_ == []
    np.testing.assert_array_equal(old.predict_proba(xt), benford_model.predict_proba(xt))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to compare with: no warning
        old.predict_proba(textured(1, 160, seed=3))


def test_a_model_saved_before_fit_start_existed_loads_with_the_features_it_was_trained_on(
    benford_model, data, tmp_path
):
    from minigan.serialization import load_npz

    _, _, xt, _ = data
    benford_model.save(tmp_path / "new.npz")
    assert load_detector(tmp_path / "new.npz").fit_start == "grid"
    arrays, meta = load_npz(tmp_path / "new.npz", kind="benford-detector")
    del meta["settings"]["fit_start"]  # the settings as minigan wrote them before
    meta.pop("minigan_format")
    save_npz(tmp_path / "old.npz", arrays, meta, kind="benford-detector")
    old = load_detector(tmp_path / "old.npz")
    assert old.fit_start == "ones"
    np.testing.assert_array_equal(old.features(xt), image_features(xt, fit_start="ones", **old._feature_kwargs()))
    assert not np.array_equal(old.features(xt), benford_model.features(xt), equal_nan=True)


def test_fit_start_is_checked_at_fit(data):
    x, y, _, _ = data
    with pytest.raises(ValueError, match="fit_start must be one of 'grid', 'ones'"):
        BenfordDetector(fit_start="best", **FAST).fit(x, y)
    with pytest.raises(ValueError, match="fit_start must be one of"):
        image_features(x[:2], fit_start=None)
