"""Does a conditional generator make the class it is asked for? Numbers from the digit classifier.

* ``label_accuracy``: the share of images generated for label ``k`` that the built-in
  digit classifier (:class:`minigan.metrics.DigitClassifier`) reads as ``k`` -- per
  class, their mean (the accuracy over classes weighted equally) and the worst class.
  It is the "classification accuracy" of generated samples used for conditional GANs
  (e.g. Miyato and Koyama 2018, section 4.1, with an Inception classifier on
  ImageNet), here with a digit classifier: it only means something for digit classes
  ``0 .. 9`` that are the digits.
* ``per_class_fid``: for each class, the classifier FID (:mod:`minigan.metrics`)
  between the images generated for that class and the real images of that class. A
  generator that makes good digits of the wrong class has a good overall FID but poor
  per-class ones. With a few hundred images per class the distance is biased upwards
  (Chong and Forsyth 2020, "Effectively Unbiased FID"): compare runs measured with the
  same counts.

Only the classifier's public methods (``features``, ``predict``) are used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int, describe
from ..metrics import (
    NUM_CLASSES,
    DigitClassifier,
    as_classifier_input,
    feature_statistics,
    frechet_distance_from_statistics,
    load_reference_digits,
)
from .labels import check_labels, even_labels

__all__ = ["label_accuracy", "per_class_fid", "evaluate_conditional", "conditional_samples"]


def _classifier(classifier: Any) -> DigitClassifier:
    if classifier is None:
        return DigitClassifier.load_default()
    if not isinstance(classifier, DigitClassifier):
        raise TypeError(f"classifier must be a DigitClassifier, got {describe(classifier)}")
    return classifier


def label_accuracy(images: np.ndarray, labels: np.ndarray, *, classifier: DigitClassifier | None = None,
                   predicted: np.ndarray | None = None) -> dict[str, Any]:
    """How often the digit classifier reads each image as the label it was generated for.

    Parameters
    ----------
    images : ndarray (n, 28, 28) or (n, 784)
        Generated digits, float in [-1, 1] or uint8.
    labels : ndarray (n,) of int in 0 .. 9
        The label each image was generated for.
    classifier : DigitClassifier, optional
        Default: the shipped classifier.
    predicted : ndarray (n,) of int, optional
        The classifier's predictions, if already computed.

    Returns
    -------
    dict
        ``per_class`` (list of 10 floats: the share read as its label, NaN for a class
        with no images), ``mean`` (their mean over the classes present), ``worst`` and
        ``worst_class``, ``overall`` (the share over all images), ``confusion`` (10 x 10
        list: row = asked label, column = the classifier's reading), ``n_samples``.
    """
    flat = as_classifier_input(images, "images")
    labels = check_labels(labels, flat.shape[0], NUM_CLASSES)
    if predicted is None:
        predicted = _classifier(classifier).predict(flat)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    counts = confusion.sum(axis=1)
    present = counts > 0
    per_class = np.full(NUM_CLASSES, np.nan)
    per_class[present] = np.diag(confusion)[present] / counts[present]
    worst_class = int(np.nanargmin(per_class))
    return {
        "n_samples": int(flat.shape[0]),
        "per_class": [float(v) for v in per_class],
        "mean": float(np.nanmean(per_class)),
        "worst": float(per_class[worst_class]),
        "worst_class": worst_class,
        "overall": float(np.mean(predicted == labels)),
        "confusion": confusion.tolist(),
    }


def per_class_fid(images: np.ndarray, labels: np.ndarray, *, real_images: np.ndarray | None = None,
                  real_labels: np.ndarray | None = None, classifier: DigitClassifier | None = None,
                  features: np.ndarray | None = None) -> list[float]:
    """The classifier FID of each class: generated images of label ``k`` against real images of class ``k``.

    Parameters
    ----------
    images : ndarray (n, 28, 28) or (n, 784); labels : ndarray (n,) of int in 0 .. 9
    real_images, real_labels : optional
        Default: the 5,000 bundled digits (500 per class) and their labels.
    classifier : DigitClassifier, optional
    features : ndarray (n, 128), optional
        The classifier's features of ``images``, if already computed.

    Returns
    -------
    list of 10 floats (NaN for a class with fewer than 2 generated or real images).
    """
    classifier = _classifier(classifier)
    flat = as_classifier_input(images, "images")
    labels = check_labels(labels, flat.shape[0], NUM_CLASSES)
    if real_images is None:
        if real_labels is not None:
            raise ValueError("real_labels were given without real_images")
        real_images, real_labels = load_reference_digits()
    real_flat = as_classifier_input(real_images, "real_images")
    real_labels = check_labels(real_labels, real_flat.shape[0], NUM_CLASSES, name="real_labels")
    fake_features = classifier.features(flat) if features is None else features
    real_features = classifier.features(real_flat)
    distances = []
    for k in range(NUM_CLASSES):
        fake_k, real_k = fake_features[labels == k], real_features[real_labels == k]
        if fake_k.shape[0] < 2 or real_k.shape[0] < 2:
            distances.append(float("nan"))
            continue
        distances.append(float(frechet_distance_from_statistics(*feature_statistics(fake_k),
                                                                 *feature_statistics(real_k))))
    return distances


def conditional_samples(gan: Any, n: int, *, seed: int | None = None, ema: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of a conditional GAN spread evenly over its classes (in blocks):
    returns images (n, *image_shape) and their labels (n,)."""
    n = check_int(n, "n", minimum=1)
    if not gan.conditional or not gan.num_classes:
        raise ValueError("conditional_samples needs a conditional GAN whose layers declare num_classes")
    labels = even_labels(n, gan.num_classes)
    return gan.sample(n, seed=seed, labels=labels, ema=ema), labels


def evaluate_conditional(images: np.ndarray, labels: np.ndarray, *, real_images: np.ndarray | None = None,
                         real_labels: np.ndarray | None = None,
                         classifier: DigitClassifier | None = None) -> dict[str, Any]:
    """:func:`label_accuracy` and :func:`per_class_fid` of generated digits, the classifier run
    once over them: ``{"label_accuracy": ..., "per_class_fid": [10 floats], "mean_class_fid": float}``
    (``real_images`` / ``real_labels``: as in :func:`per_class_fid`)."""
    classifier = _classifier(classifier)
    flat = as_classifier_input(images, "images")
    labels = check_labels(labels, flat.shape[0], NUM_CLASSES)
    accuracy = label_accuracy(flat, labels, classifier=classifier, predicted=classifier.predict(flat))
    fids = per_class_fid(flat, labels, real_images=real_images, real_labels=real_labels, classifier=classifier,
                         features=classifier.features(flat))
    return {"label_accuracy": accuracy, "per_class_fid": fids, "mean_class_fid": float(np.nanmean(fids))}
