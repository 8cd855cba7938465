"""Benford features of images: the recipe of Bonettini et al., ICPR 2020 (arXiv 2004.07682).

For each image:

1. luma ``Y = 0.299 R + 0.587 G + 0.114 B`` on the 0..255 scale, rounded to an
   integer as an 8-bit JPEG encoder (or PIL's ``convert('L')``) sees it;
2. 8x8 blocks (partial blocks padded by edge replication), minus 128, the
   orthonormal 2-D DCT-II (the DCT of the JPEG standard, ITU-T T.81 A.3.3);
3. for each quality factor QF: division by the IJG luminance table scaled to QF
   and rounding half away from zero (what libjpeg's quantizer does);
4. the first ``n_coefficients`` AC coefficients in true JPEG zig-zag order (the
   DC coefficient is dropped); with 9 they are, as (row, column) of the block,
   (0,1) (1,0) (2,0) (1,1) (0,2) (0,3) (1,2) (2,1) (3,0);
5. for each base: the first-digit pmf over ``1..b-1`` of the non-zero values of
   each coefficient over all blocks of the image;
6. a least-squares fit of the generalized Benford law to each pmf
   (:func:`~minigan.benford.digits.fit_generalized_benford`);
7. three symmetrised divergences ``D(p||q) + D(q||p)`` between the pmf ``p`` and
   the fit ``q``, over the digits where both are positive: Kullback-Leibler in
   bits (both renormalised over those digits, as ``scipy.stats.entropy`` does in
   the authors' code), Renyi of order 0.3 in bits and Tsallis of order 0.3 (both
   on the values as they are).

The blocks of all images are transformed at once: one matrix product of the
``(n_blocks, 64)`` block matrix with the ``(64, n_coefficients)`` basis of the
wanted DCT coefficients, then one ``bincount`` per (QF, base) for the histograms
of every image and coefficient. Images are processed in chunks of at most
``_CHUNK_PIXELS`` pixels to bound memory.

Features that cannot be computed -- a coefficient with no non-zero value in an
image (every AC feature of a constant image), or a fit that fails -- are NaN;
:class:`~minigan.benford.detector.BenfordDetector` imputes them.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Iterator, Sequence

import numpy as np

from .._validation import check_choice, check_int, check_real, describe
from .digits import FIT_STARTS, first_digits

DEFAULT_QUALITY_FACTORS = (80, 85, 90, 95, 100)
DEFAULT_BASES = (10, 20, 40, 60)
DIVERGENCES = ("kl", "renyi", "tsallis")
ALPHA = 0.3
_CHUNK_PIXELS = 1 << 22

# ITU-T T.81 (JPEG) Annex K, Table K.1: the luminance quantization table the IJG
# library scales by its quality setting; natural (row-major) order.
IJG_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)


#: DCT coefficients (in 0..255 luma units) at most this large count as zero for
#: ``unquantized_shares``: the rounding error of a flat block is ~1e-13, the smallest
#: coefficient of an 8-bit block that is not flat ~1e-2.
FLAT_BLOCK_TOL = 1e-6


def quantization_table(quality: int) -> np.ndarray:
    """The IJG luminance table scaled to a JPEG quality factor, shape (8, 8), int64.

    The scaling of libjpeg's ``jpeg_quality_scaling`` / ``jpeg_add_quant_table``
    (jcparam.c): ``s = 5000 / Q`` below 50 and ``200 - 2 Q`` from 50 on; entries
    ``(t * s + 50) // 100`` clamped to ``1..255`` (baseline). Quality 100 gives all ones.
    """
    q = check_int(quality, "quality", minimum=1, maximum=100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((IJG_LUMINANCE * scale + 50) // 100, 1, 255)


def zigzag_order(n: int = 64) -> np.ndarray:
    """The first ``n`` positions of the JPEG zig-zag scan as natural (row-major) indices, shape (n,).

    Anti-diagonals ``r + c = s`` in increasing ``s``; odd diagonals run down
    (increasing row), even ones up. Starts 0, 1, 8, 16, 9, 2, 3, 10, 17, 24
    (libjpeg's ``jpeg_natural_order``).
    """
    n = check_int(n, "n", minimum=1, maximum=64)
    cells = [(r + c, r if (r + c) % 2 else c, r * 8 + c) for r in range(8) for c in range(8)]
    return np.array([idx for _, _, idx in sorted(cells)][:n], dtype=np.int64)


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    c = np.cos(np.pi * (2 * x + 1) * k / 16.0) * math.sqrt(2.0 / 8.0)
    c[0] /= math.sqrt(2.0)
    return c


def _dct_basis(positions: np.ndarray) -> np.ndarray:
    """Columns of the 2-D DCT for the given natural positions, shape (64, len(positions)).

    ``blocks (n, 64) @ basis`` gives those DCT coefficients of every block.
    """
    c = _dct_matrix()
    rows, cols = np.divmod(positions, 8)
    return np.stack([np.outer(c[r], c[s]).ravel() for r, s in zip(rows, cols)], axis=1)


# ---------------------------------------------------------------------------
# input


def _check_value_range(value_range: Any, dtype: np.dtype) -> tuple[float, float]:
    if dtype == np.uint8:
        if value_range is not None and tuple(value_range) != (0, 255):
            raise ValueError(f"uint8 images are always in [0, 255]; got value_range={value_range!r}")
        return (0.0, 255.0)
    if value_range is None:
        return (0.0, 1.0)
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise TypeError(f"value_range must be a pair (low, high) of numbers, got {describe(value_range)}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must be (low, high) with finite low < high, got {value_range!r}")
    return (lo, hi)


def check_pixels(images: np.ndarray, name: str, value_range: Any) -> tuple[float, float]:
    """Check the dtype (uint8 or float), finiteness and range of pixels; return the range (low, high)."""
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise TypeError(
            f"{name} must be uint8 (0..255) or float (float16/32/64, in value_range), got dtype {images.dtype}"
            + ("; convert with .astype(np.uint8)" if images.dtype.kind in "iu" else "")
        )
    lo, hi = _check_value_range(value_range, images.dtype)
    if images.dtype.kind == "f":
        finite = np.isfinite(images)
        if not finite.all():
            raise ValueError(f"{name} has {int(images.size - np.count_nonzero(finite))} NaN or inf pixel(s)")
        slack = 1e-6 * (hi - lo)
        xmin, xmax = float(images.min()), float(images.max())
        if xmin < lo - slack or xmax > hi + slack:
            hint = " (tanh outputs: pass value_range=(-1, 1))" if xmin < 0 and lo >= 0 else ""
            raise ValueError(
                f"{name} has pixels in [{xmin:.4g}, {xmax:.4g}], outside value_range=({lo:g}, {hi:g}){hint}"
            )
    return lo, hi


def _one_image_to_luma(img: np.ndarray, name: str, value_range: Any) -> np.ndarray:
    """Validate one (h, w) / (h, w, 1) / (h, w, 3) image; return its 0..255 luma as uint8, shape (h, w)."""
    if img.dtype != np.uint8 and img.dtype.kind != "f":
        check_pixels(img, name, None)  # raises the dtype error
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise ValueError(f"{name} must have shape (h, w), (h, w, 1) or (h, w, 3), got {img.shape}")
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise ValueError(f"{name} must be at least 8x8 pixels (one DCT block), got {img.shape[0]}x{img.shape[1]}")
    lo, hi = check_pixels(img, name, value_range)
    if img.dtype.kind != "f" and img.ndim == 2:
        return img
    out = np.empty(img.shape[:2], dtype=np.uint8)
    rows = max(1, _CHUNK_PIXELS // max(1, img.shape[1]))
    for r in range(0, img.shape[0], rows):  # slabs bound the float64 temporaries
        x = img[r : r + rows].astype(np.float64)
        if img.dtype.kind == "f":
            x = (np.clip(x, lo, hi) - lo) * (255.0 / (hi - lo))
        if x.ndim == 3:
            x = x @ np.array([0.299, 0.587, 0.114])
        out[r : r + rows] = np.floor(x + 0.5)
    return out


def _to_luma_list(images: Any, value_range: Any) -> list[np.ndarray] | np.ndarray:
    """Validated luma of every image: one (n, h, w) array, or a list of (h, w) arrays."""
    if isinstance(images, np.ndarray):
        if images.size == 0 or images.ndim >= 1 and images.shape[0] == 0:
            raise ValueError(f"images must not be empty, got shape {images.shape}")
        if images.ndim == 2:
            raise ValueError(
                f"images must be a batch (n, h, w) or (n, h, w, 3), got one image of shape {images.shape}; "
                "pass images[None]"
            )
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
            raise ValueError(f"images must have shape (n, h, w), (n, h, w, 1) or (n, h, w, 3), got {images.shape}")
        # validate the batch as one tall image: the same checks in one pass
        luma = _one_image_to_luma(_batch_as_tall_image(images), "images", value_range)
        n, h = images.shape[0], images.shape[1]
        return luma.reshape(n, h, -1)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images must not be empty, got an empty list")
        out = []
        for i, img in enumerate(images):
            if not isinstance(img, np.ndarray):
                raise TypeError(f"images[{i}] must be a NumPy array, got {describe(img)}")
            out.append(_one_image_to_luma(img, f"images[{i}]", value_range))
        return out
    raise TypeError(f"images must be a NumPy array or a list of arrays, got {describe(images)}")


def _batch_as_tall_image(images: np.ndarray) -> np.ndarray:
    """(n, h, w[, c]) -> (n*h, w[, c]) so one image check validates the batch."""
    if images.shape[1] < 8:
        # keep the size check meaningful: report the per-image size
        h, w = images.shape[1], images.shape[2]
        raise ValueError(f"images must be at least 8x8 pixels (one DCT block), got {h}x{w}")
    return images.reshape((images.shape[0] * images.shape[1],) + images.shape[2:])


def _blocks(luma: np.ndarray) -> np.ndarray:
    """All 8x8 blocks of a (n, h, w) stack, edge-padded, shape (n, blocks_per_image, 64)."""
    n, h, w = luma.shape
    luma = luma.astype(np.float64)
    ph, pw = -h % 8, -w % 8
    if ph or pw:
        luma = np.pad(luma, ((0, 0), (0, ph), (0, pw)), mode="edge")
    h8, w8 = luma.shape[1] // 8, luma.shape[2] // 8
    return luma.reshape(n, h8, 8, w8, 8).transpose(0, 1, 3, 2, 4).reshape(n, h8 * w8, 64)


def _groups(luma: list[np.ndarray] | np.ndarray) -> Iterator[list[np.ndarray] | np.ndarray]:
    """Consecutive images of about ``_CHUNK_PIXELS`` pixels together (a larger image alone)."""
    if isinstance(luma, np.ndarray):
        per = max(1, _CHUNK_PIXELS // (luma.shape[1] * luma.shape[2]))
        for start in range(0, luma.shape[0], per):
            yield luma[start : start + per]
        return
    current: list[np.ndarray] = []
    pixels = 0
    for img in luma:
        current.append(img)
        pixels += img.size
        if pixels >= _CHUNK_PIXELS:
            yield current
            current, pixels = [], 0
    if current:
        yield current


def _group_blocks(group: list[np.ndarray] | np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The blocks of a group of images as (blocks (n_blocks, 64) float64, image index in the group (n_blocks,)).

    One batch for a group of images; an image larger than ``_CHUNK_PIXELS`` comes in
    strips of whole block rows (the last one edge-padded like the whole image), so
    the float64 blocks never hold more than about ``_CHUNK_PIXELS`` pixels.
    """
    if isinstance(group, np.ndarray):
        b = _blocks(group)
        yield b.reshape(-1, 64), np.repeat(np.arange(b.shape[0]), b.shape[1])
        return
    if len(group) == 1 and group[0].size > _CHUNK_PIXELS:
        img = group[0]
        rows = max(8, _CHUNK_PIXELS // img.shape[1] // 8 * 8)
        for r in range(0, img.shape[0], rows):
            b = _blocks(img[None, r : r + rows])[0]
            yield b, np.zeros(b.shape[0], dtype=np.int64)
        return
    blocks = []  # one call per run of equally sized images (a folder of photos of one size is one batch)
    start = 0
    while start < len(group):
        end = start + 1
        while end < len(group) and group[end].shape == group[start].shape:
            end += 1
        run = _blocks(np.stack(group[start:end]))
        blocks.extend(run)
        start = end
    yield np.concatenate(blocks, axis=0), np.repeat(np.arange(len(blocks)), [b.shape[0] for b in blocks])


def _chunks(luma: list[np.ndarray] | np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Groups of images as (blocks (n_blocks, 64), image index (n_blocks,), n_images)."""
    out = []
    for group in _groups(luma):
        parts = list(_group_blocks(group))
        out.append((np.concatenate([b for b, _ in parts]), np.concatenate([i for _, i in parts]), len(group)))
    return out


# ---------------------------------------------------------------------------
# coefficients, histograms, features


def _quantize(coefs: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Round ``coefs / table`` half away from zero, as int64."""
    q = coefs / table
    return np.trunc(q + np.copysign(0.5, q)).astype(np.int64)


def quantized_dct(
    images: Any,
    *,
    quality_factor: int = 100,
    n_coefficients: int = 9,
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Quantized AC coefficients of every 8x8 luma block (steps 1-4 of the recipe).

    Parameters
    ----------
    images : ndarray (n, h, w), (n, h, w, 1), (n, h, w, 3), or a list of (h, w[, c]) arrays
        uint8 in 0..255, or float in ``value_range``.
    quality_factor : int
        1..100.
    n_coefficients : int
        AC coefficients kept, 1..63, in zig-zag order.
    value_range : (low, high), optional
        Range of float pixels; default (0, 1). uint8 images are always 0..255.

    Returns
    -------
    coefficients : ndarray of int64, shape (n_blocks, n_coefficients)
    image_index : ndarray of int64, shape (n_blocks,)
        Which image each block comes from.

    Examples
    --------
    Pooled first digits of all blocks, ready for :func:`~minigan.benford.benford_test`:
    ``benford_test(quantized_dct(images)[0])``.
    """
    quality_factor = check_int(quality_factor, "quality_factor", minimum=1, maximum=100)
    n_coefficients = check_int(n_coefficients, "n_coefficients", minimum=1, maximum=63)
    positions = zigzag_order(n_coefficients + 1)[1:]
    basis = _dct_basis(positions)
    table = quantization_table(quality_factor).ravel()[positions].astype(np.float64)
    coefs, index, offset = [], [], 0
    for blocks, idx, n in _chunks(_to_luma_list(images, value_range)):
        coefs.append(_quantize((blocks - 128.0) @ basis, table))
        index.append(idx + offset)
        offset += n
    return np.concatenate(coefs), np.concatenate(index)


def image_feature_names(
    *,
    quality_factors: Sequence[int] = DEFAULT_QUALITY_FACTORS,
    bases: Sequence[int] = DEFAULT_BASES,
    n_coefficients: int = 9,
    nonzero_shares: bool = False,
    unquantized_shares: bool = False,
) -> list[str]:
    """Names of the columns of :func:`image_features`, e.g. ``"qf80_b10_c1_kl"``.

    Order: quality factor, then base, then coefficient (1 = first AC in zig-zag
    order), then divergence (kl, renyi, tsallis); with ``nonzero_shares``, then
    ``"qf80_c1_nonzero"`` ... by quality factor, then coefficient; with
    ``unquantized_shares``, then ``"raw_c1_nonzero"`` ... by coefficient.
    """
    qfs, bs, nc = _check_feature_args(quality_factors, bases, n_coefficients)
    names = [f"qf{q}_b{b}_c{c + 1}_{d}" for q in qfs for b in bs for c in range(nc) for d in DIVERGENCES]
    if _check_flag(nonzero_shares, "nonzero_shares"):
        names += [f"qf{q}_c{c + 1}_nonzero" for q in qfs for c in range(nc)]
    if _check_flag(unquantized_shares, "unquantized_shares"):
        names += [f"raw_c{c + 1}_nonzero" for c in range(nc)]
    return names


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def _check_feature_args(
    quality_factors: Any, bases: Any, n_coefficients: Any
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    try:
        qfs = tuple(quality_factors)
        bs = tuple(bases)
    except TypeError:
        raise TypeError("quality_factors and bases must be sequences of integers") from None
    if not qfs or not bs:
        raise ValueError("quality_factors and bases must not be empty")
    qfs = tuple(check_int(q, "quality_factors[i]", minimum=1, maximum=100) for q in qfs)
    bs = tuple(check_int(b, "bases[i]", minimum=3) for b in bs)
    return qfs, bs, check_int(n_coefficients, "n_coefficients", minimum=1, maximum=63)


def divergences(p: np.ndarray, q: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Symmetrised KL (bits), Renyi and Tsallis divergences of order ``alpha``.

    Parameters
    ----------
    p, q : ndarray, shape (..., k)
        Empirical pmf and fitted law. Bins where either is not positive are dropped.
    alpha : float
        Order of the Renyi and Tsallis divergences, in (0, 1).

    Returns
    -------
    ndarray, shape (..., 3)
        ``[kl, renyi, tsallis]``, NaN where ``q`` is NaN or no bin is left.
    """
    from . import kernels  # Numba: imported on first use to keep ``import minigan`` cheap

    alpha = check_real(alpha, "alpha", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    if p.ndim == 0:
        raise ValueError("p and q must have a last axis of digits, got scalars")
    shape = p.shape
    p2 = np.ascontiguousarray(p.reshape(-1, shape[-1]))
    q2 = np.ascontiguousarray(q.reshape(-1, shape[-1]))
    out = np.empty((p2.shape[0], 3))
    kernels.benford_divergences(p2, q2, alpha, out)
    return out.reshape(shape[:-1] + (3,))


def _digit_lut(max_abs: int, base: int) -> np.ndarray:
    """First digit of 0..max_abs (0 for 0), shape (max_abs + 1,)."""
    lut = np.zeros(max_abs + 1, dtype=np.int64)
    if max_abs >= 1:
        lut[1:] = first_digits(np.arange(1, max_abs + 1, dtype=np.int64), base)
    return lut


def _digit_luts(bases: tuple[int, ...], max_abs: int) -> np.ndarray:
    """First digits of 0..size-1 in each base (0 for 0), shape (len(bases), size), ``size > max_abs``
    rounded up to a power of two (so that the tables are built only a few times)."""
    return _digit_luts_of_size(tuple(bases), 1 << max(10, int(max_abs).bit_length()))


@functools.lru_cache(maxsize=16)
def _digit_luts_of_size(bases: tuple[int, ...], size: int) -> np.ndarray:
    luts = np.stack([_digit_lut(size - 1, base) for base in bases])
    luts.setflags(write=False)
    return luts


def first_digit_histograms(
    quantized: np.ndarray, image_index: np.ndarray, n_images: int, base: int
) -> np.ndarray:
    """Counts of first digits per image and coefficient.

    Parameters
    ----------
    quantized : ndarray of int, shape (n_blocks, n_coefficients)
    image_index : ndarray of int, shape (n_blocks,)
    n_images : int
    base : int

    Returns
    -------
    ndarray of int64, shape (n_images, n_coefficients, base - 1)
        Counts of digits ``1..base-1`` (zeros are not counted).
    """
    return _digit_counts(quantized, image_index, n_images, base)[:, :, 1:]


def image_features(
    images: Any,
    *,
    quality_factors: Sequence[int] = DEFAULT_QUALITY_FACTORS,
    bases: Sequence[int] = DEFAULT_BASES,
    n_coefficients: int = 9,
    value_range: tuple[float, float] | None = None,
    nonzero_shares: bool = False,
    unquantized_shares: bool = False,
    fit_start: str = "grid",
) -> np.ndarray:
    """Benford features of images (the ICPR 2020 recipe; see the module docstring).

    Parameters
    ----------
    images : ndarray or list of ndarray
        A batch ``(n, h, w)`` (grey), ``(n, h, w, 1)`` or ``(n, h, w, 3)`` (RGB), or
        a list of ``(h, w)`` / ``(h, w, 3)`` images of different sizes; every
        image at least 8x8. dtype uint8 (0..255) or float16/32/64.
    quality_factors : sequence of int
        JPEG quality factors (1..100) whose quantization tables are applied.
    bases : sequence of int
        Bases (>= 3) of the first digits.
    n_coefficients : int
        AC coefficients per block, in zig-zag order (1..63).
    value_range : (low, high), optional
        The range of float pixels: ``(0, 1)`` by default, ``(-1, 1)`` for tanh
        outputs. Pixels outside it are an error. uint8 images are always 0..255.
    nonzero_shares : bool
        Also return, for each quality factor and coefficient, the share of the
        image's blocks in which the quantized coefficient is non-zero: how many
        values each first-digit pmf is made of, which the pmf itself forgets.
        Not part of the ICPR 2020 recipe; on small images (a 28x28 digit has 16
        blocks) it carries much of the evidence.
    unquantized_shares : bool
        Also return, for each coefficient, the share of blocks in which the DCT
        coefficient *before* quantization is non-zero (beyond ``FLAT_BLOCK_TOL``,
        the rounding error of a flat block): how many values have a first digit at
        all. A perfectly flat block (an exact-black background) has none; a
        generator's faint background residue, which quantization rounds away,
        gives every block digits.
    fit_start : {"grid", "ones"}
        How the generalized-Benford law is fitted (``start`` of
        :func:`~minigan.benford.digits.fit_generalized_benford`): ``"ones"`` is the
        ICPR 2020 recipe; ``"grid"`` converges in far fewer steps, fails less
        often and reaches a lower residual on many histograms (a higher one, in
        another local minimum, on about 0.1% of those of 28x28 digits). The
        divergences differ between the two.

    Returns
    -------
    ndarray of float64, shape (n_images, n_features)
        ``n_features = len(quality_factors) * len(bases) * n_coefficients * 3``,
        plus ``len(quality_factors) * n_coefficients`` with ``nonzero_shares``
        and ``n_coefficients`` with ``unquantized_shares``; columns named by
        :func:`image_feature_names`. NaN where a coefficient has
        no non-zero value in an image (every divergence of a constant image) or
        the fit failed; the shares are never NaN.

    Raises
    ------
    TypeError
        A dtype other than uint8 or float; not an array or list of arrays.
    ValueError
        Empty input, images smaller than 8x8, NaN/inf pixels, pixels outside
        ``value_range``, a wrong shape.
    """
    qfs, bs, n_coef = _check_feature_args(quality_factors, bases, n_coefficients)
    with_shares = _check_flag(nonzero_shares, "nonzero_shares")
    with_raw_shares = _check_flag(unquantized_shares, "unquantized_shares")
    fit_start = check_choice(fit_start, "fit_start", FIT_STARTS)
    from . import kernels  # Numba: imported on first use to keep ``import minigan`` cheap

    positions = zigzag_order(n_coef + 1)[1:]
    basis = _dct_basis(positions)
    tables = np.stack([quantization_table(q).ravel()[positions] for q in qfs]).astype(np.float64)
    parts = []
    for group in _groups(_to_luma_list(images, value_range)):
        n = len(group)
        # integer counts per image, added up over the group's blocks (an image's strips add up to the
        # whole image): first digits, for each base (n, QF, n_coef, base); blocks; blocks with a raw coefficient
        counts = tuple(np.zeros((n, len(qfs), n_coef, base), dtype=np.int64) for base in bs)
        per_image = np.zeros(n, dtype=np.int64)
        raw_nonzero = np.zeros((n, n_coef), dtype=np.int64)
        for blocks, idx in _group_blocks(group):
            coefs = (blocks - 128.0) @ basis  # (n_blocks, n_coef)
            per_image += np.bincount(idx, minlength=n)
            if with_raw_shares:
                nonzero = np.abs(coefs) > FLAT_BLOCK_TOL
                raw_nonzero += np.stack([np.bincount(idx[nonzero[:, k]], minlength=n) for k in range(n_coef)], 1)
            max_abs = int(np.abs(coefs).max() / tables.min()) + 1 if coefs.size else 0  # bounds every |quantized|
            kernels.quantized_digit_counts(coefs, tables, idx, _digit_luts(bs, max_abs), counts)
        feats = np.empty((n, len(qfs), len(bs), n_coef, len(DIVERGENCES)))
        for j, base in enumerate(bs):
            digit_counts = counts[j][..., 1:]
            totals = digit_counts.sum(axis=-1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                pmf = digit_counts / totals  # NaN rows where the coefficient was always 0
            feats[:, :, j] = _fitted_divergences(pmf, base, fit_start)
        columns = [feats.reshape(n, -1)]
        blocks_per_image = per_image.astype(np.float64)
        if with_shares:
            # non-zero values per (image, QF, coefficient) over the image's blocks
            columns.append((totals[..., 0] / blocks_per_image[:, None, None]).reshape(n, -1))
        if with_raw_shares:
            columns.append(raw_nonzero.astype(np.float64) / blocks_per_image[:, None])
        parts.append(np.concatenate(columns, axis=1))
    return np.concatenate(parts, axis=0)


def _fitted_divergences(pmf: np.ndarray, base: int, start: str = "grid") -> np.ndarray:
    """:func:`divergences` between every pmf (..., base-1) and its generalized-Benford fit, shape (..., 3).

    The fit, the fitted law and the divergences are computed once per distinct pmf
    (small images repeat their histograms) and spread back:
    ``divergences(pmf, fit_generalized_benford(pmf, base, start=start).pmf(base))``, with the
    law as the fit leaves it (:func:`minigan.benford.kernels.fitted_law`, the formula the soft
    features use, so that the two agree to the last bit).
    """
    from . import kernels
    from .digits import _fit_distinct_rows

    shape = pmf.shape[:-1]
    rows = np.ascontiguousarray(pmf.reshape(-1, base - 1))
    first, inverse, _, _, _, _, q = _fit_distinct_rows(rows, base, start=start)
    p = np.ascontiguousarray(rows[first])
    out = np.empty((p.shape[0], 3))
    kernels.benford_divergences(p, q, ALPHA, out)
    return out[inverse].reshape(shape + (3,))


def _digit_counts(quantized: np.ndarray, image_index: np.ndarray, n_images: int, base: int) -> np.ndarray:
    """Counts of first digits 0..base-1 (0: the coefficient is 0) per image and coefficient,
    shape (n_images, n_coefficients, base)."""
    a = np.abs(quantized)
    lut = _digit_lut(int(a.max()) if a.size else 0, base)
    n_coef = quantized.shape[1]
    key = (image_index[:, None] * n_coef + np.arange(n_coef)) * base + lut[a]
    return np.bincount(key.ravel(), minlength=n_images * n_coef * base).reshape(n_images, n_coef, base)
