"""Benford's law: digit tests for any numeric data, and detectors of GAN-generated images.

Digit statistics (:mod:`.digits`), the ICPR 2020 image features (:mod:`.image`),
the detectors (:mod:`.detector`) and their scores (:mod:`.evaluation`) import
only NumPy (the generalized-Benford fit and the divergences run Numba kernels
from :mod:`.kernels`, imported on first use). The charts (:mod:`.plots`, matplotlib) and the command line
(:mod:`.cli`) are submodules imported on demand; :mod:`.io` reads numbers from files;
:func:`scan` (:mod:`.scan`) screens folders of image files with a detector, streaming,
in one process or on a Dask cluster.
"""
from __future__ import annotations

from .detector import BenfordDetector, PixelDetector, load_detector
from .digits import (
    BenfordResult,
    GeneralizedBenfordFit,
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
from .evaluation import accuracy, balanced_accuracy, roc_auc, roc_curve, tpr_at_fpr
from .scan import ScanRow, scan
from .image import (
    divergences,
    first_digit_histograms,
    image_feature_names,
    image_features,
    quantization_table,
    quantized_dct,
    zigzag_order,
)

__all__ = [
    "BenfordDetector",
    "BenfordResult",
    "GeneralizedBenfordFit",
    "PixelDetector",
    "accuracy",
    "balanced_accuracy",
    "benford_pmf",
    "benford_test",
    "chi2_sf",
    "conformity_label",
    "digit_support",
    "divergences",
    "first_digit_histograms",
    "first_digits",
    "first_two_digits",
    "fit_generalized_benford",
    "generalized_benford_pmf",
    "image_feature_names",
    "image_features",
    "load_detector",
    "quantization_table",
    "quantized_dct",
    "roc_auc",
    "roc_curve",
    "scan",
    "ScanRow",
    "second_digits",
    "tpr_at_fpr",
    "zigzag_order",
]
