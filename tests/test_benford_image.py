"""The ICPR 2020 image features: DCT, quantization, zig-zag, histograms, divergences, input checks."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest

from minigan.benford import (
    benford_pmf,
    divergences,
    first_digits,
    image_feature_names,
    image_features,
    quantization_table,
    quantized_dct,
    zigzag_order,
)
from minigan.benford.image import IJG_LUMINANCE, _dct_matrix

from shared import textured  # noqa: E402

pytestmark = pytest.mark.benford

SMALL = {"quality_factors": (90, 100), "bases": (10, 20), "n_coefficients": 4}


# ---------------------------------------------------------------------------
# building blocks


def test_zigzag_starts_like_libjpeg():
    # libjpeg's jpeg_natural_order begins 0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5
    assert zigzag_order(16).tolist() == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5]
    full = zigzag_order(64)
    assert sorted(full.tolist()) == list(range(64)) and full[-1] == 63


def test_quantization_table_scaling():
    np.testing.assert_array_equal(quantization_table(50), IJG_LUMINANCE)
    assert (quantization_table(100) == 1).all()
    # libjpeg at quality 90: scale 20 -> (16*20 + 50)//100 = 3, (11*20+50)//100 = 2
    assert quantization_table(90)[0, :2].tolist() == [3, 2]
    assert quantization_table(10)[0, 0] == 80  # scale 500
    assert quantization_table(1).max() == 255  # clamped to baseline
    with pytest.raises(ValueError, match="quality must be <= 100"):
        quantization_table(101)


def test_dct_is_orthonormal_and_matches_the_jpeg_definition():
    c = _dct_matrix()
    np.testing.assert_allclose(c @ c.T, np.eye(8), atol=1e-12)
    block = np.random.default_rng(0).uniform(-128, 127, (8, 8))
    # ITU-T T.81 A.3.3: F(u,v) = 1/4 C(u) C(v) sum f(x,y) cos((2x+1)u pi/16) cos((2y+1)v pi/16)
    u, v = 2, 1
    cu, cv = (1 / math.sqrt(2) if k == 0 else 1.0 for k in (u, v))
    direct = 0.25 * cu * cv * sum(
        block[y, x] * math.cos((2 * x + 1) * u * math.pi / 16) * math.cos((2 * y + 1) * v * math.pi / 16)
        for x in range(8) for y in range(8)
    )
    np.testing.assert_allclose((c @ block @ c.T)[v, u], direct, atol=1e-10)


def per_block_reference(image: np.ndarray, quality: int, n_coef: int) -> np.ndarray:
    """A straightforward per-block loop: the vectorized version must agree exactly."""
    c = _dct_matrix()
    q = quantization_table(quality).astype(float)
    zz = zigzag_order(n_coef + 1)[1:]
    h, w = image.shape
    padded = np.pad(image.astype(float), ((0, -h % 8), (0, -w % 8)), mode="edge")
    out = []
    for by in range(0, padded.shape[0], 8):
        for bx in range(0, padded.shape[1], 8):
            coef = c @ (padded[by:by + 8, bx:bx + 8] - 128) @ c.T
            ratio = (coef / q).ravel()[zz]
            out.append(np.sign(ratio) * np.floor(np.abs(ratio) + 0.5))
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("shape", [(8, 8), (16, 24), (13, 21), (28, 28)])
def test_quantized_dct_matches_a_per_block_loop(shape):
    img = textured(1, size=32)[0][: shape[0], : shape[1]]
    for quality in (80, 100):
        coefs, index = quantized_dct(img[None], quality_factor=quality, n_coefficients=9)
        np.testing.assert_array_equal(coefs, per_block_reference(img, quality, 9))
        assert (index == 0).all()


def test_quantized_dct_of_a_list_of_sizes_keeps_images_apart():
    imgs = [textured(1, 32, seed=1)[0], textured(1, 32, seed=2)[0][:20, :12]]
    coefs, index = quantized_dct(imgs, quality_factor=95)
    assert np.bincount(index).tolist() == [16, 6]
    np.testing.assert_array_equal(coefs[index == 1], per_block_reference(imgs[1], 95, 9))


def test_pil_jpeg_coefficients_agree_with_ours_in_first_digit_statistics():
    """Save as JPEG with Pillow at QF 100 and decode: the decoded image's DCT
    (recomputed by us) is near-identical to the original's, as JPEG at QF 100 is
    close to lossless; first-digit pmfs agree closely."""
    pil = pytest.importorskip("PIL.Image")
    img = textured(1, 64, seed=3)[0]
    buf = io.BytesIO()
    pil.fromarray(img).save(buf, "JPEG", quality=100)
    decoded = np.asarray(pil.open(io.BytesIO(buf.getvalue())).convert("L"))
    a = first_digits(quantized_dct(img[None], quality_factor=90)[0])
    b = first_digits(quantized_dct(decoded[None], quality_factor=90)[0])
    pa, pb = (np.bincount(d, minlength=10)[1:] / d.size for d in (a, b))
    assert np.abs(pa - pb).max() < 0.02


def test_divergences_are_zero_for_equal_pmfs_and_positive_otherwise():
    p = benford_pmf()
    d0 = divergences(p, p)
    np.testing.assert_allclose(d0, 0.0, atol=1e-12)
    q = np.full(9, 1 / 9)
    kl, renyi, tsallis = divergences(p, q)
    direct_kl = np.sum(p * np.log2(p / q)) + np.sum(q * np.log2(q / p))
    assert kl == pytest.approx(direct_kl)
    s1, s2 = np.sum(p**0.3 * q**0.7), np.sum(q**0.3 * p**0.7)
    assert renyi == pytest.approx((math.log2(s1) + math.log2(s2)) / -0.7)
    assert tsallis == pytest.approx((s1 - 1 + s2 - 1) / -0.7)
    assert kl > 0 and renyi > 0 and tsallis > 0


def test_divergences_drop_zero_bins_and_propagate_missing_fits():
    p = np.r_[0.5, 0.5, np.zeros(7)]
    q = np.r_[0.5, 0.5, np.full(7, 0.1)]
    np.testing.assert_allclose(divergences(p, q)[0], 0.0, atol=1e-12)  # KL renormalised over kept bins
    assert np.isnan(divergences(p, np.full(9, np.nan))).all()
    assert np.isnan(divergences(np.zeros(9), q)).all()


# ---------------------------------------------------------------------------
# features


def test_feature_shape_names_and_default_length():
    x = textured(3)
    f = image_features(x)
    assert f.shape == (3, 540) and f.dtype == np.float64
    names = image_feature_names()
    assert len(names) == 540 and names[0] == "qf80_b10_c1_kl" and names[-1] == "qf100_b60_c9_tsallis"
    assert len(set(names)) == 540
    assert np.isfinite(f).mean() > 0.9


def test_features_are_per_image_and_order_independent():
    x = textured(5, seed=4)
    full = image_features(x, **SMALL)
    np.testing.assert_allclose(image_features(x[::-1], **SMALL), full[::-1])
    np.testing.assert_allclose(image_features(x[2:3], **SMALL), full[2:3])
    np.testing.assert_allclose(image_features(list(x), **SMALL), full)


def test_chunking_does_not_change_features(monkeypatch):
    import minigan.benford.image as image_module

    x = textured(6, seed=5)
    expected = image_features(x, **SMALL)
    monkeypatch.setattr(image_module, "_CHUNK_PIXELS", 2 * 32 * 32)
    np.testing.assert_allclose(image_features(x, **SMALL), expected)
    np.testing.assert_allclose(image_features(list(x), **SMALL), expected)


def test_value_ranges_and_colour_give_the_same_luma():
    x = textured(2, seed=6)
    ref = image_features(x, **SMALL)
    np.testing.assert_allclose(image_features(x.astype(np.float32) / 255.0, **SMALL), ref)
    np.testing.assert_allclose(image_features(x / 127.5 - 1.0, value_range=(-1, 1), **SMALL), ref)
    np.testing.assert_allclose(image_features(np.repeat(x[..., None], 3, axis=-1), **SMALL), ref)
    np.testing.assert_allclose(image_features(x[..., None], **SMALL), ref)
    np.testing.assert_allclose(image_features(x.astype(np.float16) / np.float16(255), **SMALL).shape, ref.shape)


def test_list_of_different_sizes_including_rgb():
    imgs = [textured(1, 32)[0], np.repeat(textured(1, 40, seed=2)[0][:17, :, None], 3, axis=2), textured(1, 8)[0]]
    f = image_features(imgs, **SMALL)
    assert f.shape == (3, 2 * 2 * 4 * 3)


def test_constant_images_give_nan_features_not_errors():
    f = image_features(np.full((2, 16, 16), 77, dtype=np.uint8), **SMALL)
    assert np.isnan(f).all()
    f = image_features(np.zeros((1, 8, 8), dtype=np.float32), **SMALL)
    assert np.isnan(f).all()


@pytest.mark.parametrize(
    "images, error, match",
    [
        (np.zeros((0, 16, 16), np.uint8), ValueError, "must not be empty"),
        ([], ValueError, "must not be empty"),
        (np.zeros((2, 7, 16), np.uint8), ValueError, "at least 8x8"),
        ([np.zeros((16, 5), np.uint8)], ValueError, r"images\[0\] must be at least 8x8"),
        (np.zeros((16, 16), np.uint8), ValueError, r"pass images\[None\]"),
        (np.zeros((2, 16, 16), np.int64), TypeError, "uint8"),
        (np.zeros((2, 16, 16), bool), TypeError, "uint8"),
        (np.zeros((2, 16, 16, 4), np.uint8), ValueError, "shape"),
        (np.full((2, 16, 16), np.nan), ValueError, "NaN"),
        (np.full((2, 16, 16), -0.5), ValueError, r"value_range=\(-1, 1\)"),
        (np.full((2, 16, 16), 3.0), ValueError, "outside value_range"),
        ("images", TypeError, "NumPy array"),
        ([np.zeros((16, 16), np.uint8), "x"], TypeError, r"images\[1\]"),
    ],
)
def test_bad_input_is_rejected_clearly(images, error, match):
    with pytest.raises(error, match=match):
        image_features(images, **SMALL)


def test_bad_options_are_rejected():
    x = textured(1)
    with pytest.raises(ValueError, match="n_coefficients must be <= 63"):
        image_features(x, n_coefficients=64)
    with pytest.raises(ValueError, match="bases"):
        image_features(x, bases=(2,))
    with pytest.raises(ValueError, match="value_range"):
        image_features(x.astype(float) / 255, value_range=(1, 0))
    with pytest.raises(ValueError, match="uint8 images are always"):
        image_features(x, value_range=(-1, 1))


def jpeg_like(images: np.ndarray, quality: int) -> np.ndarray:
    """Quantize every 8x8 block's DCT with the IJG table at ``quality`` and transform back."""
    c = _dct_matrix()
    q = quantization_table(quality).astype(float)
    n, h, w = images.shape
    blocks = images.astype(float).reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4) - 128
    coef = np.round((c @ blocks @ c.T) / q) * q
    back = (c.T @ coef @ c + 128).transpose(0, 1, 3, 2, 4).reshape(n, h, w)
    return np.clip(np.rint(back), 0, 255).astype(np.uint8)


def test_features_separate_compressed_from_uncompressed_images():
    """Images once JPEG-quantized at QF 60 break the first-digit law of their DCT (the
    effect the Benford features were first designed for)."""
    plain = textured(20, 64, seed=8)
    compressed = jpeg_like(plain, 60)
    fa, fb = (image_features(x, quality_factors=(100,), bases=(10,)) for x in (plain, compressed))
    gap = np.abs(np.nanmean(fa, 0) - np.nanmean(fb, 0)) / (np.nanstd(np.r_[fa, fb], 0) + 1e-12)
    assert np.nanmax(gap) > 1.0


def test_digit_comparison_chart(tmp_path):
    from minigan.benford import benford_test
    from minigan.benford.plots import plot_digit_comparison

    plain = textured(4, 64, seed=9)
    real = benford_test(quantized_dct(plain)[0])
    fake = benford_test(quantized_dct(jpeg_like(plain, 60))[0])
    path = plot_digit_comparison(real, fake.observed, tmp_path / "cmp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        plot_digit_comparison(real, np.ones(5) / 5, tmp_path / "bad.png")


def test_nonzero_shares_count_the_blocks_behind_each_pmf():
    from minigan.benford import quantized_dct

    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (24, 40), dtype=np.uint8), np.full((16, 16), 7, dtype=np.uint8)]
    images[0][:8] = 100  # a flat band: blocks whose AC coefficients are all zero
    plain = image_features(images, quality_factors=(90,), bases=(10,))
    f = image_features(images, quality_factors=(90,), bases=(10,), nonzero_shares=True)
    names = image_feature_names(quality_factors=(90,), bases=(10,), nonzero_shares=True)
    assert f.shape == (2, 27 + 9) and len(names) == 36 and names[27] == "qf90_c1_nonzero"
    np.testing.assert_array_equal(f[:, :27], plain)
    q, idx = quantized_dct(images, quality_factor=90)
    for i in range(2):
        np.testing.assert_allclose(f[i, 27:], (q[idx == i] != 0).mean(axis=0))
    assert f[0, 27:].max() <= 10 / 15 and (f[1, 27:] == 0).all()  # 5 of 15 blocks are flat
    with pytest.raises(TypeError, match="nonzero_shares"):
        image_features(images, nonzero_shares="yes")


def test_unquantized_shares_see_residue_that_quantization_rounds_away():
    from minigan.benford import quantized_dct

    black = np.zeros((2, 16, 16), dtype=np.uint8)
    black[1, 2, 3] = 1  # one 8-bit level of residue in one of the four blocks of image 1
    names = image_feature_names(quality_factors=(100,), bases=(10,), nonzero_shares=True, unquantized_shares=True)
    assert names[27:36] == [f"qf100_c{c}_nonzero" for c in range(1, 10)] and names[36] == "raw_c1_nonzero"
    f = image_features(black, quality_factors=(100,), bases=(10,), nonzero_shares=True, unquantized_shares=True)
    assert f.shape == (2, 27 + 9 + 9)
    q, _ = quantized_dct(black, quality_factor=100)
    assert (q == 0).all() and (f[:, 27:36] == 0).all()  # even QF 100 rounds the residue away
    assert (f[0, 36:] == 0).all()  # flat blocks have no digits at all
    np.testing.assert_array_equal(f[1, 36:], np.full(9, 0.25))  # the residue block: every AC coefficient
    # the shares are appended: the other columns do not change
    np.testing.assert_array_equal(
        f[:, :36], image_features(black, quality_factors=(100,), bases=(10,), nonzero_shares=True)
    )
    # the same image as floats in [-1, 1] (a tanh output) gives the same shares
    as_float = black.astype(np.float64) / 127.5 - 1
    g = image_features(as_float, quality_factors=(100,), bases=(10,), unquantized_shares=True, value_range=(-1, 1))
    np.testing.assert_array_equal(g[:, 27:], f[:, 36:])
    with pytest.raises(TypeError, match="unquantized_shares"):
        image_features(black, unquantized_shares=1)


def test_fused_digit_counts_equal_quantizing_then_counting():
    from minigan.benford import kernels
    from minigan.benford.image import _digit_counts, _digit_luts, _quantize

    rng = np.random.default_rng(3)
    coefs = rng.normal(0.0, 60.0, (500, 6))
    coefs[:40] = np.round(coefs[:40]) + 0.5  # ties: rounded half away from zero
    coefs[40:60] = 0.0
    tables = rng.integers(1, 40, (3, 6)).astype(np.float64)
    idx = np.sort(rng.integers(0, 7, 500))
    bases = (3, 10, 17)
    counts = tuple(np.zeros((7, 3, 6, b), dtype=np.int64) for b in bases)
    max_abs = int(np.abs(coefs).max() / tables.min()) + 1
    kernels.quantized_digit_counts(coefs, tables, idx, _digit_luts(bases, max_abs), counts)
    for j, base in enumerate(bases):
        for i, table in enumerate(tables):
            np.testing.assert_array_equal(counts[j][:, i], _digit_counts(_quantize(coefs, table), idx, 7, base))
