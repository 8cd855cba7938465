"""Soft Benford statistics: the detector's digit histograms and non-zero shares, differentiable.

:class:`SoftBenford` computes, from images a generator made (pixels in [-1, 1]),
what the ICPR 2020 recipe of :mod:`minigan.benford.image` counts, with every hard
decision replaced by a smooth one of adjustable width:

1. pixels to the 8-bit scale, ``v = 127.5 (x + 1)``; with ``round_pixels`` rounded
   as an 8-bit PNG stores them, the gradient passing straight through the rounding
   (the identity: Bengio et al. 2013's straight-through estimator);
2. the AC coefficients of every 8x8 block (edge padding, then the orthonormal DCT-II
   of JPEG) as one matrix product: padding and DCT are one linear map
   ``(P,) -> (n_blocks * K,)`` (the DC coefficient, which the recipe drops, is the
   only one the ``- 128`` level shift changes);
3. for each quality factor, division by the IJG table entry, then for each base a
   *soft first digit* (:mod:`minigan.benford.soft_kernels`: a partition of the
   mantissa circle ``log_b(|c / q| + 1/2) mod 1`` into the digits' arcs, each edge a
   C^3 step of half-width ``temperature`` times the smaller neighbouring arc) counted
   with a *gate* for "not zero after rounding" (a smooth step in ``log |c / q|``
   around 1/2, half-width ``gate_width``);
4. per image or pooled over the batch: the digit counts, their totals (soft
   non-zero values), the *non-zero shares* (the share gate, half-width
   ``share_width``, averaged over blocks) and the *unquantized shares*: the share of
   blocks with a pixel above black after rounding (the gate on the block's largest
   pixel). A block is flat -- all its DCT coefficients zero, what the detector's
   unquantized shares count -- exactly when it is black on images whose flat blocks
   are black, such as digits.

As the widths go to zero every statistic becomes the detector's hard one
(:func:`hard_statistics`). At the defaults the pooled digit pmfs of the 5,000
bundled real digits are within 0.01 (L1, per quality factor, base and coefficient)
of the hard ones; the shares use a wider gate by default, so that blocks with a
residue of several 8-bit levels still get a gradient.

Backward: ``d/dx = 127.5 * (M^T dL/dc) + (block maxima)``, where ``M`` is the
padding-and-DCT map and ``dL/dc`` comes from
:func:`~minigan.benford.soft_kernels.soft_digit_histograms_backward`; the gradient
of a block's largest pixel gate goes to that pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._validation import check_float_array, check_int, check_real, describe
from .image import (
    DEFAULT_BASES,
    DEFAULT_QUALITY_FACTORS,
    _check_feature_args,
    _check_flag,
    _dct_basis,
    quantization_table,
    zigzag_order,
)

#: Default half-width of the digit edges, as a fraction of the smaller neighbouring digit arc.
DEFAULT_TEMPERATURE = 0.2
#: Default half-width of the counting gate, in log units around |c / q| = 1/2 (exact on integers up to log 2).
DEFAULT_GATE_WIDTH = 0.5
#: Default half-width of the share gates (non-zero and unquantized shares), in log units:
#: from 0.5 e^-3 = 0.025 to 0.5 e^3 = 10 quantization steps or 8-bit levels.
DEFAULT_SHARE_WIDTH = 3.0
_LUT_CELLS_MIN = 1024


@dataclass
class SoftStatistics:
    """What :meth:`SoftBenford.forward` returns; ``G`` groups (images, or 1 when pooled).

    Attributes
    ----------
    counts : ndarray (G, n_qf, n_bases, K, max_base - 1)
        Soft digit counts; digit ``d`` of base ``b`` at index ``d - 1`` (zeros beyond ``b - 1``).
    totals : ndarray (G, n_qf, K)
        Soft non-zero values (the sum of the counting gates; equals ``counts`` summed over digits).
    nonzero_shares : ndarray (G, n_qf, K)
        Mean share gate over the group's blocks.
    unquantized_shares : ndarray (G,)
        Share of the group's blocks with a pixel above black.
    blocks : int
        Blocks per group.
    """

    counts: np.ndarray
    totals: np.ndarray
    nonzero_shares: np.ndarray
    unquantized_shares: np.ndarray
    blocks: int

    def pmf(self) -> np.ndarray:
        """Digit pmfs ``counts / totals``, shape of ``counts`` (NaN where nothing was counted)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.counts / self.totals[:, :, None, :, None]


def check_width(value: Any, name: str, maximum: float | None = None) -> float:
    """A positive width (temperature), at most ``maximum``."""
    return check_real(value, name, minimum=0.0, min_inclusive=False, maximum=maximum)


# NumPy twins of the kernels' smooth step and gates, for whole arrays at once.
def smooth_step(z: np.ndarray) -> np.ndarray:
    """``S(z)`` of :mod:`minigan.benford.soft_kernels`, elementwise."""
    t = np.clip(0.5 * (np.asarray(z, dtype=np.float64) + 1.0), 0.0, 1.0)
    return np.minimum(1.0, t ** 4 * (35.0 + t * (-84.0 + t * (70.0 - 20.0 * t))))


def smooth_step_slope(z: np.ndarray) -> np.ndarray:
    """``S'(z)``, elementwise."""
    t = np.clip(0.5 * (np.asarray(z, dtype=np.float64) + 1.0), 0.0, 1.0)
    return 70.0 * (t * (1.0 - t)) ** 3


def gate(a: np.ndarray, width: float) -> np.ndarray:
    """Soft ``a >= 1/2`` for ``a >= 0``: ``S(log(2a) / width)`` (0 at ``a = 0``), elementwise."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(a > 0.0, smooth_step(np.log(2.0 * np.maximum(a, 1e-300)) / width), 0.0)


def gate_slope(a: np.ndarray, width: float) -> np.ndarray:
    """``d gate / d a``, elementwise (0 at ``a <= 0``)."""
    a = np.asarray(a, dtype=np.float64)
    safe = np.maximum(a, 1e-300)
    return np.where(a > 0.0, smooth_step_slope(np.log(2.0 * safe) / width) / (width * safe), 0.0)


def presence(count: np.ndarray) -> np.ndarray:
    """Soft "at least one": ``S(2 count - 1)``, elementwise."""
    return smooth_step(2.0 * np.asarray(count, dtype=np.float64) - 1.0)


def presence_slope(count: np.ndarray) -> np.ndarray:
    return 2.0 * smooth_step_slope(2.0 * np.asarray(count, dtype=np.float64) - 1.0)


class SoftBenford:
    """Differentiable Benford statistics of grey images (see the module docstring).

    Parameters
    ----------
    image_shape : (h, w)
        Size of the images (each side at least 8).
    quality_factors, bases, n_coefficients :
        As :func:`minigan.benford.image.image_features` (defaults: the detector's).
    temperature : float in (0, 0.5]
        Half-width of each digit edge, as a fraction of the smaller digit arc beside it.
    gate_width : float > 0
        Half-width, in log units, of the gate that counts a value as non-zero.
    share_width : float > 0
        Half-width of the gates behind the non-zero and unquantized shares.
    round_pixels : bool
        Round the 8-bit pixels as a PNG stores them (gradient straight through).
    hard_shares : bool
        The shares' values are the hard ones (``|c / q| >= 1/2``, a pixel ``>= 1/2``)
        and only their gradient is the share gate's (the straight-through estimator).
        A wide share gate counts a block whose brightest pixel is 1 as 0.67 of a
        block, and matching soft shares left the hard share of non-black blocks of
        generated digits at 0.58 against 0.48 for real ones; with hard values the
        generator is pushed until the detector's own shares match. Off, every
        statistic is a smooth function of the pixels (finite differences check it).

    Shapes
    ------
    Images enter flat, ``(N, h * w)``, as the generator makes them: floats in [-1, 1]
    (``uint8=False``) or 0..255 values (``uint8=True``, e.g. real images; never rounded).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28),
        *,
        quality_factors: Sequence[int] = DEFAULT_QUALITY_FACTORS,
        bases: Sequence[int] = DEFAULT_BASES,
        n_coefficients: int = 9,
        temperature: float = DEFAULT_TEMPERATURE,
        gate_width: float = DEFAULT_GATE_WIDTH,
        share_width: float = DEFAULT_SHARE_WIDTH,
        round_pixels: bool = True,
        hard_shares: bool = False,
    ) -> None:
        shape = tuple(image_shape) if not isinstance(image_shape, (int, np.integer)) else (image_shape,)
        if len(shape) == 3 and shape[2] == 1:
            shape = shape[:2]
        if len(shape) != 2:
            raise ValueError(f"image_shape must be (height, width) of grey images, got {image_shape!r}")
        self.image_shape = tuple(check_int(s, f"image_shape[{i}]", minimum=8) for i, s in enumerate(shape))
        self.quality_factors, self.bases, self.n_coefficients = _check_feature_args(
            quality_factors, bases, n_coefficients)
        self.temperature = check_width(temperature, "temperature", maximum=0.5)
        self.gate_width = check_width(gate_width, "gate_width")
        self.share_width = check_width(share_width, "share_width")
        self.round_pixels = _check_flag(round_pixels, "round_pixels")
        self.hard_shares = _check_flag(hard_shares, "hard_shares")
        self._build_maps()
        self._cache: dict[str, Any] | None = None

    # -- fixed maps ---------------------------------------------------------------
    def _build_maps(self) -> None:
        h, w = self.image_shape
        ph, pw = h + (-h % 8), w + (-w % 8)
        rows = np.minimum(np.arange(ph), h - 1)  # edge padding: the last row/column repeated
        cols = np.minimum(np.arange(pw), w - 1)
        source = (rows[:, None] * w + cols[None, :])  # (ph, pw) flat source pixel
        bh, bw = ph // 8, pw // 8
        self.block_pixels = np.ascontiguousarray(
            source.reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3).reshape(bh * bw, 64)).astype(np.int64)
        self.blocks_per_image = bh * bw
        positions = zigzag_order(self.n_coefficients + 1)[1:]
        basis = _dct_basis(positions)  # (64, K)
        K = self.n_coefficients
        dct = np.zeros((h * w, self.blocks_per_image * K))
        for b in range(self.blocks_per_image):
            np.add.at(dct[:, b * K:(b + 1) * K], self.block_pixels[b], basis)
        self.dct_map = dct  # (P, n_blocks * K): coefficients = pixels @ dct_map
        self._dct_maps = {np.dtype(np.float64): dct}
        tables = np.stack([quantization_table(q).ravel()[positions] for q in self.quality_factors]).astype(np.float64)
        self.inv_tables = np.ascontiguousarray(1.0 / tables)
        self.log_inv_tables = np.log(self.inv_tables)
        max_base = max(self.bases)
        n_b = len(self.bases)
        self.n_digits = np.array([b - 1 for b in self.bases], dtype=np.int64)
        self.inv_log_bases = np.array([1.0 / math.log(b) for b in self.bases])
        bounds = np.ones((n_b, max_base + 1))
        half = np.ones((n_b, max_base + 1))
        min_gap = 1.0
        for i, b in enumerate(self.bases):
            edges = np.log(np.arange(1, b + 1)) / math.log(b)  # log_b d for d = 1..b
            bounds[i, 1:b + 1] = edges
            gaps = np.diff(edges)  # arc of digit d at index d - 1
            min_gap = min(min_gap, float(gaps.min()))
            half[i, 1] = half[i, b] = self.temperature * min(gaps[0], gaps[-1])
            for d in range(2, b):
                half[i, d] = self.temperature * min(gaps[d - 2], gaps[d - 1])
        self.bounds, self.half_widths = bounds, half
        cells = max(_LUT_CELLS_MIN, 1 << int(math.ceil(math.log2(2.0 / min_gap))))
        lut = np.ones((n_b, cells), dtype=np.int64)
        grid = np.arange(cells) / cells
        for i, b in enumerate(self.bases):
            lut[i] = np.clip(np.searchsorted(bounds[i, 1:b + 1], grid, side="right"), 1, b - 1)
        self.lut = lut
        self.max_base = max_base

    def _dct_map(self, dtype: np.dtype) -> np.ndarray:
        if dtype not in self._dct_maps:
            self._dct_maps[dtype] = self.dct_map.astype(dtype)
        return self._dct_maps[dtype]

    def _logs(self, coefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log |c|`` (n_blocks, K) and ``log max(|c| / q + 1/2, 1)`` (n_blocks, n_qf, K), float64."""
        a = np.abs(coefs.astype(np.float64))
        with np.errstate(divide="ignore"):
            log_abs = np.log(a)
        quantized = a[:, None, :] * self.inv_tables[None, :, :]
        np.add(quantized, 0.5, out=quantized)
        np.maximum(quantized, 1.0, out=quantized)
        return log_abs, np.log(quantized)

    @property
    def n_pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    def statistic_shapes(self, groups: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the statistics for ``groups`` groups."""
        nq, nb, K = len(self.quality_factors), len(self.bases), self.n_coefficients
        return {"counts": (groups, nq, nb, K, self.max_base - 1), "totals": (groups, nq, K),
                "nonzero_shares": (groups, nq, K), "unquantized_shares": (groups,)}

    # -- forward / backward -----------------------------------------------------------
    def check_images(self, images: Any, name: str = "images", uint8: bool = False) -> np.ndarray:
        """``images`` as a flat (N, h * w) array; floats in [-1, 1], or with ``uint8`` 0..255 (uint8 or float)."""
        if uint8 and isinstance(images, np.ndarray) and images.dtype == np.uint8:
            arr = images.astype(np.float64)
        else:
            arr = check_float_array(images, name)
        if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != self.n_pixels or arr.shape[0] == 0:
            raise ValueError(f"{name} must have shape (N, {self.image_shape[0]}, {self.image_shape[1]}) or "
                             f"(N, {self.n_pixels}) with N >= 1, got {describe(images)}")
        low, high = (0.0, 255.0) if uint8 else (-1.0, 1.0)
        slack = 1e-4 * (high - low)
        if arr.min() < low - slack or arr.max() > high + slack:
            raise ValueError(f"{name} must hold pixels in [{low:g}, {high:g}], got values from {arr.min():.4g} "
                             f"to {arr.max():.4g}")
        return np.ascontiguousarray(arr.reshape(arr.shape[0], self.n_pixels))

    def forward(self, images: Any, *, per_image: bool = False, uint8: bool = False) -> SoftStatistics:
        """The soft statistics of ``images``, pooled over the batch or per image.

        Parameters
        ----------
        images : ndarray (N, h, w) or (N, h * w)
            Floats in [-1, 1] (a generator's output), or 0..255 with ``uint8=True``.
        per_image : bool
            One group per image (the detector's view) instead of one for the batch.
        uint8 : bool
            The pixels are already on the 8-bit scale (not rounded again).

        Returns
        -------
        SoftStatistics, float64; :meth:`backward` then gives the gradient with respect to ``images``.
        """
        from . import soft_kernels as SK

        x = self.check_images(images, uint8=uint8)
        self._cache = None
        pixels = x.astype(np.float64) if uint8 else (x.astype(np.float64) + 1.0) * 127.5
        if self.round_pixels and not uint8:
            pixels = np.floor(np.clip(pixels, 0.0, 255.0) + 0.5)
        n = x.shape[0]
        groups = n if per_image else 1
        nb, K = self.blocks_per_image, self.n_coefficients
        coefs = np.ascontiguousarray((pixels.astype(x.dtype) @ self._dct_map(x.dtype)).reshape(n * nb, K))
        log_abs, log_u = self._logs(coefs)
        image_index = np.repeat(np.arange(n), nb) if per_image else np.zeros(n * nb, dtype=np.int64)
        shapes = self.statistic_shapes(groups)
        counts = np.zeros(shapes["counts"])
        totals = np.zeros(shapes["totals"])
        shares = np.zeros(shapes["nonzero_shares"])
        SK.soft_digit_histograms(coefs, log_abs, log_u, image_index, self.inv_tables, self.log_inv_tables,
                                 self.inv_log_bases, self.bounds,
                                 self.half_widths, self.lut, self.n_digits, self.gate_width, self.share_width,
                                 self.hard_shares, counts, totals, shares)
        gates = np.empty((n, nb))
        argmax = np.empty((n, nb), dtype=np.int64)
        SK.block_max_gates(pixels, self.block_pixels, self.share_width, self.hard_shares, gates, argmax)
        per_group = nb if per_image else n * nb
        flat = gates.mean(axis=1) if per_image else np.array([gates.mean()])
        self._cache = {"n": n, "pixels": pixels, "coefs": coefs, "log_abs": log_abs, "log_u": log_u, "image_index": image_index, "argmax": argmax,
                       "per_group": per_group, "per_image": per_image, "dtype": x.dtype, "uint8": uint8,
                       "groups": groups}
        return SoftStatistics(counts, totals, shares / per_group, flat, per_group)

    def backward(self, grad_counts: np.ndarray | None = None, grad_totals: np.ndarray | None = None,
                 grad_nonzero_shares: np.ndarray | None = None,
                 grad_unquantized_shares: np.ndarray | None = None) -> np.ndarray:
        """``d loss / d images`` (N, h * w), in the images' dtype, from the gradients of the
        statistics of the last :meth:`forward` (each of its shape; None: zero).

        With ``v = 127.5 (x + 1)`` (rounded or not: the rounding passes the gradient
        through), ``dL/dx = 127.5 (M^T dL/dc + sum over blocks of dL/dmax)``.
        """
        from . import soft_kernels as SK

        cache = self._cache
        if cache is None:
            raise RuntimeError("SoftBenford.backward() called before forward(): run forward first")
        shapes = self.statistic_shapes(cache["groups"])
        given = {"counts": grad_counts, "totals": grad_totals, "nonzero_shares": grad_nonzero_shares,
                 "unquantized_shares": grad_unquantized_shares}
        grads = {}
        for key, value in given.items():
            if value is None:
                grads[key] = np.zeros(shapes[key])
            else:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shapes[key]:
                    raise ValueError(f"grad_{key} must have shape {shapes[key]}, got {value.shape}")
                grads[key] = np.ascontiguousarray(value)
        n, nb = cache["n"], self.blocks_per_image
        grad_coefs = np.zeros(cache["coefs"].shape)
        SK.soft_digit_histograms_backward(
            cache["coefs"], cache["log_abs"], cache["log_u"], cache["image_index"], self.inv_tables,
            self.log_inv_tables, self.inv_log_bases, self.bounds,
            self.half_widths, self.lut, self.n_digits, self.gate_width, self.share_width, grads["counts"],
            grads["totals"], grads["nonzero_shares"] / cache["per_group"], grad_coefs)
        dtype = cache["dtype"]
        grad_pixels = (grad_coefs.reshape(n, nb * self.n_coefficients).astype(dtype) @ self._dct_map(dtype).T)
        grad_pixels = grad_pixels.astype(np.float64)
        per_block = grads["unquantized_shares"] / cache["per_group"]
        grad_gates = np.repeat(per_block, nb).reshape(n, nb) if cache["per_image"] else np.full((n, nb), per_block[0])
        SK.block_max_gates_backward(cache["pixels"], cache["argmax"], self.share_width, grad_gates, grad_pixels)
        if not cache["uint8"]:
            grad_pixels *= 127.5
        return grad_pixels.astype(cache["dtype"], copy=False)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as JSON-compatible values."""
        return {"image_shape": list(self.image_shape), "quality_factors": list(self.quality_factors),
                "bases": list(self.bases), "n_coefficients": self.n_coefficients, "temperature": self.temperature,
                "gate_width": self.gate_width, "share_width": self.share_width, "round_pixels": self.round_pixels,
                "hard_shares": self.hard_shares}

    def __repr__(self) -> str:
        return f"SoftBenford({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def hard_statistics(images: np.ndarray, *, quality_factors: Sequence[int] = DEFAULT_QUALITY_FACTORS,
                    bases: Sequence[int] = DEFAULT_BASES, n_coefficients: int = 9,
                    per_image: bool = False) -> SoftStatistics:
    """The detector's own (hard) statistics of uint8 grey images (N, h, w), computed with
    :func:`~minigan.benford.image.quantized_dct` and
    :func:`~minigan.benford.image.first_digit_histograms`: what :class:`SoftBenford`
    approaches as its widths go to zero. ``unquantized_shares`` here is the share of
    blocks that are not flat (the detector's unquantized share of every coefficient,
    except in blocks where that coefficient vanishes by symmetry)."""
    from .image import FLAT_BLOCK_TOL, _blocks, _to_luma_list, first_digit_histograms, quantized_dct

    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        raise TypeError(f"images must be a uint8 array (N, h, w), got {describe(images)}")
    qfs, bs, K = _check_feature_args(quality_factors, bases, n_coefficients)
    n = images.shape[0]
    groups = n if per_image else 1
    max_base = max(bs)
    counts = np.zeros((groups, len(qfs), len(bs), K, max_base - 1))
    totals = np.zeros((groups, len(qfs), K))
    for qi, q in enumerate(qfs):
        quantized, index = quantized_dct(images, quality_factor=q, n_coefficients=K)
        if not per_image:
            index = np.zeros_like(index)
        for bi, b in enumerate(bs):
            counts[:, qi, bi, :, : b - 1] = first_digit_histograms(quantized, index, groups, b)
        totals[:, qi] = np.stack([np.bincount(index, weights=(quantized[:, k] != 0), minlength=groups)
                                  for k in range(K)], axis=1)
    blocks = _blocks(np.asarray(_to_luma_list(images, None)))  # (n, nb, 64)
    per_group = blocks.shape[1] * (1 if per_image else n)
    flat = np.ptp(blocks, axis=2) > FLAT_BLOCK_TOL
    unquantized = flat.mean(axis=1) if per_image else np.array([flat.mean()])
    return SoftStatistics(counts, totals, totals / per_group, unquantized, per_group)
