"""The feature maps of minigan's detectors, differentiable with respect to the pixels.

:class:`SoftBenfordFeatures` is :func:`minigan.benford.image.image_features` as a
fitted :class:`~minigan.benford.detector.BenfordDetector` computes it, made smooth:
per image the soft digit counts of :class:`~minigan.benford.soft.SoftBenford`, their
pmfs, the generalized-Benford fit, the three divergences, the non-zero shares and
the unquantized shares, with the detector's imputation of missing features by its
training mean. :class:`SoftPixelFeatures` is the
:class:`~minigan.benford.detector.PixelDetector`'s map: log intensity and the
above-black mask.

Where the detector makes a hard decision the soft map makes a smooth one:

* a digit pmf exists once its image has one non-zero value; the soft feature is
  ``rho(T) * divergence + (1 - rho(T)) * mean_``, with ``T`` the soft count of
  non-zero values and ``rho(T) = S(2T - 1)`` (0 at none, 1 from one value on), so a
  coefficient that appears does not jump from the imputed mean to its divergence;
* the detector's divergences skip digits that do not occur; the soft ones weight each
  digit by ``S(2 count - 1)``, which is that rule on integer counts;
* the fit: the detector's own fit (the one its ``fit_start`` names), optionally polished by
  Newton steps to the optimum, is differentiated implicitly
  (``d theta / d p = 2 H^-1 J^T``, see :func:`minigan.benford.soft_kernels.fitted_divergences`);
  parameters held at the fit's box walls stay fixed;
* the pixel detector's mask ``pixel > 0`` has no gradient; the soft mask is the
  share gate ``S(log(2 v) / share_width)`` of the 8-bit value ``v`` (exactly 0 on
  black, near 1 above a few levels), so a faint residue learns to go black.

Pixels are rounded to 8 bits as they are published (the detector sees those), the
gradient passing straight through the rounding.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import describe
from .digits import _digit_factors
from .soft import (
    DEFAULT_GATE_WIDTH,
    DEFAULT_SHARE_WIDTH,
    DEFAULT_TEMPERATURE,
    SoftBenford,
    check_width,
    gate,
    gate_slope,
    presence,
    presence_slope,
)


def _fit_box() -> tuple[np.ndarray, np.ndarray]:
    from .digits import _FIT_LOWER, _FIT_UPPER

    return _FIT_LOWER, _FIT_UPPER


def _fitted(detector: Any, attributes: tuple[str, ...]) -> None:
    missing = [name for name in attributes if getattr(detector, name, None) is None]
    if missing:
        raise ValueError(f"the detector {type(detector).__name__} is not fitted (no {', '.join(missing)}): fit or "
                         "load a fitted detector first")


class SoftBenfordFeatures:
    """A fitted BenfordDetector's features of generated images, with their gradient.

    Parameters
    ----------
    detector : BenfordDetector
        Fitted; its ``quality_factors``, ``bases``, ``n_coefficients``, ``fit_start``,
        ``nonzero_shares``, ``unquantized_shares`` and ``mean_`` are read.
    image_shape : (h, w)
    temperature, gate_width, share_width, round_pixels, hard_shares :
        As :class:`~minigan.benford.soft.SoftBenford`.
    polish_fit : bool
        Move each fit from the detector's result (the fit its ``fit_start`` names, converged
        to a relative tolerance) to the exact optimum (Newton steps) before using and
        differentiating it. Off by default:
        the features then equal the detector's in the limit of small widths; on, they
        are a smooth function of the pixels (what a finite-difference check needs).

    Shapes
    ------
    ``forward(images (N, h * w) in [-1, 1]) -> features (N, n_features)``, float64,
    finite (missing features are the training mean, as the detector imputes them);
    ``backward(grad_features (N, n_features)) -> grad_images (N, h * w)``.
    """

    def __init__(self, detector: Any, image_shape: Any, *, temperature: float = DEFAULT_TEMPERATURE,
                 gate_width: float = DEFAULT_GATE_WIDTH, share_width: float = DEFAULT_SHARE_WIDTH,
                 round_pixels: bool = True, hard_shares: bool = False, polish_fit: bool = False) -> None:
        _fitted(detector, ("mean_", "std_", "network_"))
        self.polish_steps = 8 if polish_fit else 0
        self.detector = detector
        self.soft = SoftBenford(image_shape, quality_factors=detector.quality_factors, bases=detector.bases,
                                n_coefficients=detector.n_coefficients, temperature=temperature,
                                gate_width=gate_width, share_width=share_width, round_pixels=round_pixels,
                                hard_shares=hard_shares)
        from .image import ALPHA

        self.alpha = ALPHA
        self.n_features = len(detector.feature_names)
        if detector.mean_.shape != (self.n_features,):
            raise ValueError(f"the detector's mean_ has shape {detector.mean_.shape}, expected ({self.n_features},)")
        nq, nb, K = len(detector.quality_factors), len(detector.bases), detector.n_coefficients
        self._div_shape = (nq, nb, K, 3)
        self._n_div = nq * nb * K * 3
        self._cache: dict[str, Any] | None = None

    def forward(self, images: Any) -> np.ndarray:
        """Features (N, n_features) of images in [-1, 1] (N, h * w)."""
        from . import soft_kernels as SK
        from .digits import fit_generalized_benford

        stats = self.soft.forward(images, per_image=True)
        n = stats.counts.shape[0]
        nq, nb, K, _ = self._div_shape
        mean = self.detector.mean_
        div_mean = mean[: self._n_div].reshape(self._div_shape)
        features = np.empty((n, self.n_features))
        divs = np.empty((n, nq, nb, K, 3))
        rows = []
        lower, upper = _fit_box()
        for bi, base in enumerate(self.detector.bases):
            counts = np.ascontiguousarray(stats.counts[:, :, bi, :, : base - 1].reshape(-1, base - 1))
            totals = np.ascontiguousarray(stats.totals.reshape(-1))
            with np.errstate(invalid="ignore", divide="ignore"):
                pmf = counts / totals[:, None]
            fit = fit_generalized_benford(pmf, base, start=self.detector.fit_start)
            theta = np.ascontiguousarray(np.stack([fit.N, fit.beta, fit.gamma], axis=1))
            out = np.empty((counts.shape[0], 3))
            log_d = np.log(np.arange(1, base, dtype=np.float64))
            SK.fitted_divergences(counts, totals, theta, log_d, *_digit_factors(base), 1.0 / math.log(base),
                                  self.alpha, lower, upper, self.polish_steps, np.zeros((counts.shape[0], 3)), out,
                                  np.zeros_like(counts), np.zeros_like(totals))
            divs[:, :, bi] = out.reshape(n, nq, K, 3)
            rows.append((counts, totals, theta, log_d))
        rho = presence(stats.totals)[:, :, None, :, None]  # (n, nq, 1, K, 1)
        finite = np.isfinite(divs)
        blended = np.where(finite, rho * np.where(finite, divs, 0.0) + (1.0 - rho) * div_mean, div_mean)
        features[:, : self._n_div] = blended.reshape(n, -1)
        column = self._n_div
        if self.detector.nonzero_shares:
            features[:, column: column + nq * K] = stats.nonzero_shares.reshape(n, -1)
            column += nq * K
        if self.detector.unquantized_shares:
            features[:, column: column + K] = stats.unquantized_shares[:, None]
            column += K
        self._cache = {"stats": stats, "rows": rows, "divs": divs, "finite": finite, "rho": rho, "n": n}
        return features

    def backward(self, grad_features: np.ndarray) -> np.ndarray:
        """``d loss / d images`` (N, h * w) from ``d loss / d features`` (N, n_features)."""
        from . import soft_kernels as SK

        cache = self._cache
        if cache is None:
            raise RuntimeError("SoftBenfordFeatures.backward() called before forward(): run forward first")
        n = cache["n"]
        grad_features = np.asarray(grad_features, dtype=np.float64)
        if grad_features.shape != (n, self.n_features):
            raise ValueError(f"grad_features must have shape {(n, self.n_features)}, got {grad_features.shape}")
        nq, nb, K, _ = self._div_shape
        stats = cache["stats"]
        g_div = grad_features[:, : self._n_div].reshape(n, nq, nb, K, 3)
        finite, rho, divs = cache["finite"], cache["rho"], cache["divs"]
        div_mean = self.detector.mean_[: self._n_div].reshape(self._div_shape)
        g_div = np.where(finite, g_div, 0.0)
        # feature = rho(T) div + (1 - rho(T)) mean: d/dT = rho'(T) (div - mean), d/ddiv = rho
        slope = presence_slope(stats.totals)
        grad_totals = (slope * (g_div * (np.where(finite, divs, 0.0) - div_mean)).sum(axis=(2, 4)))
        grad_counts = np.zeros(stats.counts.shape)
        lower, upper = _fit_box()
        for bi, base in enumerate(self.detector.bases):
            counts, totals, theta, log_d = cache["rows"][bi]
            g = np.ascontiguousarray((rho * g_div)[:, :, bi].reshape(-1, 3))
            gc = np.zeros_like(counts)
            gt = np.zeros_like(totals)
            SK.fitted_divergences(counts, totals, theta, log_d, *_digit_factors(base), 1.0 / math.log(base),
                                  self.alpha, lower, upper, self.polish_steps, g, np.empty((counts.shape[0], 3)), gc, gt)
            grad_counts[:, :, bi, :, : base - 1] = gc.reshape(n, nq, K, base - 1)
            grad_totals += gt.reshape(n, nq, K)
        column = self._n_div
        grad_nonzero = None
        grad_unquantized = None
        if self.detector.nonzero_shares:
            grad_nonzero = grad_features[:, column: column + nq * K].reshape(n, nq, K)
            column += nq * K
        if self.detector.unquantized_shares:
            grad_unquantized = grad_features[:, column: column + K].sum(axis=1)
        return self.soft.backward(grad_counts, grad_totals, grad_nonzero, grad_unquantized)


class SoftPixelFeatures:
    """A fitted PixelDetector's features of generated images, with their gradient.

    ``v = 127.5 (x + 1)`` rounded to 8 bits (gradient straight through); features
    ``log(1 + v) / log 256`` (``intensity="log"``) or ``v / 255``, then, with the mask,
    ``S(log(2 v) / share_width)`` per pixel (see the module docstring); with
    ``hard_mask`` the mask's value is the detector's own ``v >= 1/2`` and only its
    gradient the gate's (straight through).

    Shapes: ``forward(images (N, P)) -> (N, n_features)``; ``backward(grad (N, n_features)) -> (N, P)``.
    """

    def __init__(self, detector: Any, *, share_width: float = DEFAULT_SHARE_WIDTH, round_pixels: bool = True,
                 hard_mask: bool = False) -> None:
        _fitted(detector, ("mean_", "std_", "network_", "image_shape_"))
        self.hard_mask = bool(hard_mask)
        if len(detector.image_shape_) != 2:
            raise ValueError(f"only detectors of grey images are supported, this one takes {detector.image_shape_}")
        self.detector = detector
        self.share_width = check_width(share_width, "share_width")
        self.round_pixels = bool(round_pixels)
        self.n_pixels = int(np.prod(detector.image_shape_))
        self._cache: dict[str, Any] | None = None

    def forward(self, images: np.ndarray) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != self.n_pixels:
            raise ValueError(f"images must have shape (N, {self.n_pixels}), got {describe(images)}")
        v = (images.astype(np.float64) + 1.0) * 127.5
        if self.round_pixels:
            v = np.floor(np.clip(v, 0.0, 255.0) + 0.5)
        v = np.clip(v, 0.0, 255.0)
        if self.detector.intensity == "log":
            parts = [np.log1p(v) / math.log(256.0)]
        else:
            parts = [v / 255.0]
        if self.detector.nonzero_mask:
            parts.append((v >= 0.5).astype(np.float64) if self.hard_mask else gate(v, self.share_width))
        self._cache = {"v": v, "dtype": images.dtype}
        return np.concatenate(parts, axis=1)

    def backward(self, grad_features: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("SoftPixelFeatures.backward() called before forward(): run forward first")
        v = self._cache["v"]
        p = self.n_pixels
        if self.detector.intensity == "log":
            grad_v = grad_features[:, :p] / ((1.0 + v) * math.log(256.0))
        else:
            grad_v = grad_features[:, :p] / 255.0
        if self.detector.nonzero_mask:
            grad_v = grad_v + grad_features[:, p: 2 * p] * gate_slope(v, self.share_width)
        return (grad_v * 127.5).astype(self._cache["dtype"], copy=False)
