"""How good are the generated digits? A quality number that needs no download.

GAN losses say little about sample quality, so minigan measures the samples
themselves, offline, with a small digit classifier trained on the bundled real
digits using minigan's own layers:

* ``classifier_fid``: the Frechet distance between the classifier's penultimate
  features (128 numbers per image) on generated and on real digits -- the idea of
  the Inception-based FID (Heusel et al., "GANs Trained by a Two Time-Scale Update
  Rule Converge to a Local Nash Equilibrium", NeurIPS 2017) with a digit network
  in place of Inception. Lower is better; it is only comparable between runs
  measured with the same classifier and similar sample counts.
* ``classes_covered``: how many of the ten digit classes the samples contain
  (mode coverage), and ``mean_confidence``: how sure the classifier is.

Two reference points come with every evaluation so a reader can place the
number: the distance between two halves of the real digits (a floor) and
between uniform noise and the real digits (a ceiling).

The heavy engine (Numba kernels) is imported only when a classifier is built or
loaded; the Frechet distance itself is plain NumPy.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from minigan._validation import check_float_array, check_int, check_real, check_rng, describe
from minigan.serialization import load_npz, save_npz

CLASSIFIER_KIND = "digit-classifier"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
NUM_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
HIDDEN_WIDTHS = (256, 128)
LEAKY_SLOPE = 0.2
DEFAULT_CLASSIFIER_PATH = Path(__file__).resolve().parent / "data" / "digit_classifier.npz"
# A class counts as covered when at least this share of the samples is classified
# as it: a tenth of the 10 % a class gets under a uniform class distribution, so a
# stray misclassification or two in a few hundred samples does not count as a mode.
DEFAULT_MIN_CLASS_SHARE = 0.01
# Pixel values a little outside [-1, 1] are rounding; far outside means the
# caller passed another scale (e.g. 0..255 as float), which would silently give
# meaningless features.
_RANGE_TOLERANCE = 1e-3
_BATCH = 1000


# --------------------------------------------------------------------------- Frechet distance


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via its eigen-decomposition."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    # Rounding can make tiny eigenvalues of a PSD matrix slightly negative.
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def feature_statistics(features: np.ndarray, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a set of feature vectors.

    Parameters
    ----------
    features : ndarray of shape (n, k)
        One row per sample, ``n >= 2``.
    name : str
        Argument name for error messages.

    Returns
    -------
    mean : ndarray of float64, shape (k,)
    covariance : ndarray of float64, shape (k, k)
        Unbiased (divides by ``n - 1``), as in the usual FID computation.
    """
    features = check_float_array(features, name, ndim=2)
    if features.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (samples) to estimate a covariance, got {features.shape[0]}")
    features = features.astype(np.float64, copy=False)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance_from_statistics(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Frechet distance between two Gaussians given by their means and covariances.

    ``d^2 = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``. The
    trace of the square root is computed as ``tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``:
    the inner matrix is similar to ``S_a S_b`` (same eigenvalues) but symmetric
    positive semi-definite, so symmetric eigen-decompositions suffice (no SciPy,
    no complex round-off).

    Parameters
    ----------
    mean_a, mean_b : ndarray of shape (k,)
    cov_a, cov_b : ndarray of shape (k, k)
        Symmetric positive semi-definite covariance matrices.

    Returns
    -------
    float
        The squared Frechet distance (the number usually reported as "FID"), >= 0.
    """
    mean_a = check_float_array(mean_a, "mean_a", ndim=1).astype(np.float64, copy=False)
    mean_b = check_float_array(mean_b, "mean_b", ndim=1).astype(np.float64, copy=False)
    k = mean_a.shape[0]
    if mean_b.shape != (k,):
        raise ValueError(f"mean_b must have shape ({k},) like mean_a, got {mean_b.shape}")
    covs = []
    for name, cov in (("cov_a", cov_a), ("cov_b", cov_b)):
        cov = check_float_array(cov, name, ndim=2).astype(np.float64, copy=False)
        if cov.shape != (k, k):
            raise ValueError(f"{name} must have shape ({k}, {k}) to match the means, got {cov.shape}")
        scale = max(float(np.abs(cov).max()), 1e-300)
        if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-8 * scale):
            raise ValueError(f"{name} must be a symmetric covariance matrix")
        covs.append((cov + cov.T) / 2.0)
    cov_a, cov_b = covs
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2.0
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())
    diff = mean_a - mean_b
    distance = float(diff @ diff) + float(np.trace(cov_a)) + float(np.trace(cov_b)) - 2.0 * trace_root
    # Identical sets give zero up to rounding, which may land just below it.
    return max(distance, 0.0)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors.

    Parameters
    ----------
    feat_a : ndarray of shape (n, k)
    feat_b : ndarray of shape (m, k)
        Feature vectors, one row per sample; ``n, m >= 2`` and the same ``k``.
        The estimate is biased upwards for small sample counts; compare numbers
        measured with similar ``n`` and ``m`` (hundreds to thousands).

    Returns
    -------
    float
        The squared Frechet distance, >= 0; 0 for identical sets, symmetric in
        its arguments.
    """
    feat_a = check_float_array(feat_a, "feat_a", ndim=2)
    feat_b = check_float_array(feat_b, "feat_b", ndim=2)
    if feat_a.shape[1] != feat_b.shape[1]:
        raise ValueError(
            f"feat_a and feat_b must have the same number of features (columns), "
            f"got {feat_a.shape[1]} and {feat_b.shape[1]}"
        )
    mean_a, cov_a = feature_statistics(feat_a, "feat_a")
    mean_b, cov_b = feature_statistics(feat_b, "feat_b")
    return frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b)


# --------------------------------------------------------------------------- images in


def as_classifier_input(images: Any, name: str = "images") -> np.ndarray:
    """Bring digit images into the classifier's input form.

    Parameters
    ----------
    images : ndarray of shape (n, 28, 28) or (n, 784)
        Float pixels in ``[-1, 1]`` (generator output) or uint8 pixels ``0..255``
        (raw digits, mapped by ``x / 127.5 - 1``).
    name : str
        Argument name for error messages.

    Returns
    -------
    ndarray of float32, shape (n, 784)
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of digit images, got {describe(images)}")
    if images.ndim == 3 and images.shape[1:] == IMAGE_SHAPE:
        flat = images.reshape(images.shape[0], NUM_PIXELS)
    elif images.ndim == 2 and images.shape[1] == NUM_PIXELS:
        flat = images
    else:
        raise ValueError(f"{name} must have shape (n, 28, 28) or (n, 784), got {images.shape}")
    if flat.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {images.shape}")
    if flat.dtype == np.uint8:
        return (flat.astype(np.float32) / np.float32(127.5)) - np.float32(1.0)
    flat = check_float_array(flat, name)
    low, high = float(flat.min()), float(flat.max())
    if low < -1.0 - _RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(
            f"{name} must be float pixels in [-1, 1] (or uint8 0..255), got values in [{low:.4g}, {high:.4g}]; "
            "rescale with x / 127.5 - 1 for 0..255 data or 2 * x - 1 for [0, 1] data"
        )
    return np.clip(flat, -1.0, 1.0).astype(np.float32, copy=False)


def _check_labels(labels: Any, n: int) -> np.ndarray:
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer NumPy array, got {describe(labels)}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}, got values in [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


# --------------------------------------------------------------------------- the classifier


def _shift_images(flat: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Randomly translate each 28x28 image by up to ``max_shift`` pixels, filling with background (-1)."""
    n = flat.shape[0]
    images = flat.reshape(n, *IMAGE_SHAPE)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), constant_values=-1.0)
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + IMAGE_SHAPE[0], dx[i] : dx[i] + IMAGE_SHAPE[1]]
    return out.reshape(n, NUM_PIXELS)


class DigitClassifier:
    """A small dense digit classifier built from minigan layers, used to score samples.

    Architecture: Dense 784->256, LeakyReLU(0.2), Dense 256->128, LeakyReLU(0.2)
    (the ``body``, whose output is the 128-number feature vector used by the
    classifier FID), then Dense 128->10 (the ``head``, logits). Float32.

    Use :meth:`load_default` for the weights shipped with minigan (trained by
    ``scripts/train_digit_classifier.py`` on 4,500 of the bundled digits) or
    :meth:`fit` to train one on other data (e.g. Fashion-MNIST).

    Attributes
    ----------
    body, head : minigan.Sequential
    meta : dict
        What the weights are (training settings, held-out accuracy, ...).
    """

    def __init__(self, body: Any, head: Any, meta: dict[str, Any] | None = None) -> None:
        """Wrap trained ``body`` (784 -> 128 features) and ``head`` (128 -> 10 logits) networks."""
        self.body = body
        self.head = head
        self.meta: dict[str, Any] = dict(meta or {})
        self.extra_arrays: dict[str, np.ndarray] = {}
        self._reference_cache: dict[tuple, dict[str, Any]] = {}
        self.body.eval()
        self.head.eval()

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, *, seed: int | np.random.Generator | None = 0) -> "DigitClassifier":
        """An untrained classifier with freshly initialised weights from ``seed``."""
        from minigan.models import mlp

        rng = check_rng(seed, "seed")
        # LeakyReLU(0.2) is mlp's "leaky_relu"; the weights are drawn layer by layer from one stream
        body = mlp(NUM_PIXELS, HIDDEN_WIDTHS, None, activation="leaky_relu", rng=rng)
        head = mlp(HIDDEN_WIDTHS[-1], (), NUM_CLASSES, rng=rng)
        return cls(body, head)

    @classmethod
    def fit(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 1e-3,
        max_shift: int = 2,
        seed: int = 0,
        progress: bool = False,
    ) -> "DigitClassifier":
        """Train a classifier with Adam and softmax cross-entropy.

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28) or (n, 784)
            uint8 or float in ``[-1, 1]``.
        labels : ndarray of int, shape (n,)
            Classes 0..9.
        epochs, batch_size : int
            Passes over the data and mini-batch size.
        lr : float
            Initial Adam learning rate, decayed to zero along a cosine over the
            training steps.
        max_shift : int
            Random translation of each training image by up to this many pixels
            (0 turns it off). It makes the classifier less sensitive to the small
            misplacements typical of generated digits.
        seed : int
            Seeds the initial weights, the shuffling and the shifts.
        progress : bool
            Print one line per epoch.

        Returns
        -------
        DigitClassifier
            In evaluation mode, with the settings in ``meta``.
        """
        from minigan.losses import SoftmaxCrossEntropy
        from minigan.optim import Adam
        from minigan.training import train_minibatches

        flat = as_classifier_input(images, "images")
        targets = _check_labels(labels, flat.shape[0])
        epochs = check_int(epochs, "epochs", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        lr = check_real(lr, "lr", minimum=0.0, min_inclusive=False)
        max_shift = check_int(max_shift, "max_shift", minimum=0, maximum=8)
        seed = check_int(seed, "seed", minimum=0)
        rng = np.random.default_rng(seed)
        model = cls.build(seed=rng)
        params = list(model.body.parameters()) + list(model.head.parameters())
        n = flat.shape[0]
        total_steps = epochs * -(-n // batch_size)

        def cosine(step: int) -> float:
            # Cosine decay to zero: the last epochs settle instead of hopping
            # between minima, which makes the result less sensitive to the seed.
            return lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))

        def report(epoch: int, mean_loss: float) -> None:
            print(f"epoch {epoch + 1}/{epochs}: mean loss {mean_loss:.4f}", flush=True)

        train_minibatches(
            [model.body, model.head], SoftmaxCrossEntropy(), Adam(params, lr=lr), flat, targets,
            epochs=epochs, batch_size=batch_size, epoch_order=lambda epoch: rng.permutation(n),
            learning_rate=cosine, augment=(lambda batch: _shift_images(batch, rng, max_shift)) if max_shift else None,
            on_epoch_end=report if progress else None,
        )
        model.meta.update(
            {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "max_shift": max_shift,
                "seed": seed,
                "n_train": int(n),
            }
        )
        return model

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DigitClassifier":
        """Load weights written by :meth:`save` (raises ``FileFormatError`` on foreign or corrupt files)."""
        arrays, meta = load_npz(path, kind=CLASSIFIER_KIND)
        model = cls.build(seed=0)
        try:
            model.body.load_state_dict({k[5:]: v for k, v in arrays.items() if k.startswith("body.")})
            model.head.load_state_dict({k[5:]: v for k, v in arrays.items() if k.startswith("head.")})
        except (KeyError, ValueError, TypeError) as exc:
            from minigan.serialization import FileFormatError

            raise FileFormatError(f"{path} does not hold weights of this digit classifier ({exc})") from None
        model.body.eval()
        model.head.eval()
        model.meta = {k: v for k, v in meta.items() if k != "minigan_format"}
        model.extra_arrays = {k: v for k, v in arrays.items() if not k.startswith(("body.", "head."))}
        return model

    @classmethod
    def load_default(cls) -> "DigitClassifier":
        """The classifier shipped with minigan (loaded once per process, then shared)."""
        return _default_classifier()

    def save(self, path: str | os.PathLike, extra_arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the weights and ``meta`` to one ``.npz`` file atomically (no pickle)."""
        arrays = {f"body.{k}": np.asarray(v) for k, v in self.body.state_dict().items()}
        arrays.update({f"head.{k}": np.asarray(v) for k, v in self.head.state_dict().items()})
        arrays.update(extra_arrays or {})
        save_npz(path, arrays, self.meta, kind=CLASSIFIER_KIND)

    # ------------------------------------------------------------------ inference

    def features_and_logits(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features and class scores of ``images`` in one pass.

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28) or (n, 784)
            Float in ``[-1, 1]`` or uint8.

        Returns
        -------
        features : ndarray of float64, shape (n, 128)
        logits : ndarray of float64, shape (n, 10)
        """
        flat = as_classifier_input(images, "images")
        features, logits = [], []
        for start in range(0, flat.shape[0], _BATCH):
            hidden = self.body.forward(flat[start : start + _BATCH])
            features.append(np.array(hidden, dtype=np.float64))
            logits.append(np.array(self.head.forward(hidden), dtype=np.float64))
        return np.concatenate(features), np.concatenate(logits)

    def reference_points(self, real_images: np.ndarray, seed: int = 0) -> dict[str, Any]:
        """Statistics of real digits and the two reference distances, remembered per classifier.

        Parameters
        ----------
        real_images : ndarray of shape (m, 28, 28) or (m, 784)
            Float in ``[-1, 1]`` or uint8; ``m >= 4``.
        seed : int
            Seeds the halving of the real digits and the noise images.

        Returns
        -------
        dict
            ``real_stats``: (mean (128,), covariance (128, 128)) of the real features;
            ``fid_real_vs_real``: the Frechet distance between two random halves of
            the real digits (a floor); ``fid_noise``: between m/2 uniform-noise
            images and all real digits (a ceiling). The last four results are kept,
            keyed by the content of ``real_images`` and ``seed``, so that evaluating
            every N iterations of a run costs only the forward pass over the fakes.
        """
        real = as_classifier_input(real_images, "real_images")
        if real.shape[0] < 4:
            raise ValueError(
                f"at least 4 real images are needed (two halves of 2 for the real-vs-real reference), "
                f"got {real.shape[0]}"
            )
        seed = check_int(seed, "seed", minimum=0)
        key = (hashlib.sha1(real.tobytes()).hexdigest(), real.shape, seed)
        cache = self._reference_cache
        if key in cache:
            return cache[key]
        features = self.features(real)
        rng = np.random.default_rng(seed)
        order = rng.permutation(features.shape[0])
        half = features.shape[0] // 2
        noise = rng.uniform(-1.0, 1.0, size=(half, NUM_PIXELS)).astype(np.float32)
        stats = feature_statistics(features, "real features")
        entry = {
            "real_stats": stats,
            "fid_real_vs_real": frechet_distance(features[order[:half]], features[order[half : 2 * half]]),
            "fid_noise": frechet_distance_from_statistics(*feature_statistics(self.features(noise)), *stats),
        }
        while len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = entry
        return entry

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer features.

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28) or (n, 784)
            Float in ``[-1, 1]`` or uint8.

        Returns
        -------
        ndarray of float64, shape (n, 128)
        """
        return self.features_and_logits(images)[0]

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Class scores before the softmax, shape (n, 10) float64."""
        return self.features_and_logits(images)[1]

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10) float64, rows summing to 1."""
        return _softmax(self.logits(images))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Most likely class of each image, shape (n,) int64."""
        return self.logits(images).argmax(axis=1)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Share of ``images`` classified as their ``labels`` (int, shape (n,))."""
        predicted = self.predict(images)
        return float((predicted == _check_labels(labels, predicted.shape[0])).mean())


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=1)
def _default_classifier() -> DigitClassifier:
    if not DEFAULT_CLASSIFIER_PATH.is_file():
        raise FileNotFoundError(
            f"the shipped digit classifier {DEFAULT_CLASSIFIER_PATH} is missing; "
            "create it with: python scripts/train_digit_classifier.py"
        )
    return DigitClassifier.load(DEFAULT_CLASSIFIER_PATH)


# --------------------------------------------------------------------------- evaluation


def heldout_split(labels: np.ndarray, per_class: int = 50, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into training and held-out sets, ``per_class`` held out from each class.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
    per_class : int
        Held-out images per class (50 x 10 = 500 of the 5,000 bundled digits).
    seed : int

    Returns
    -------
    train_indices, test_indices : ndarray of int64
        Sorted, disjoint, together covering ``0..n-1``.
    """
    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        raise TypeError(f"labels must be a 1-D integer NumPy array, got {describe(labels)}")
    labels = _check_labels(labels, labels.shape[0])
    per_class = check_int(per_class, "per_class", minimum=1)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    test = []
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        if members.shape[0] <= per_class:
            raise ValueError(f"class {digit} has {members.shape[0]} images, need more than per_class={per_class}")
        test.append(rng.choice(members, size=per_class, replace=False))
    test_indices = np.sort(np.concatenate(test)).astype(np.int64)
    train_indices = np.setdiff1d(np.arange(labels.shape[0]), test_indices).astype(np.int64)
    return train_indices, test_indices


def load_reference_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled real digits: uint8 images (5000, 28, 28) and int labels (5000,)."""

    images, labels = _bundled_digits()
    return images.copy(), labels.copy()


@functools.lru_cache(maxsize=1)
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    from minigan import datasets

    images, labels = datasets.load("mnist-5k")
    images, labels = np.array(images), np.array(labels)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def evaluate_samples(
    fake_images: np.ndarray,
    real_images: np.ndarray | None = None,
    *,
    classifier: DigitClassifier | None = None,
    min_class_share: float = DEFAULT_MIN_CLASS_SHARE,
    seed: int = 0,
) -> dict[str, Any]:
    """Score generated digits with the digit classifier.

    Parameters
    ----------
    fake_images : ndarray of shape (n, 28, 28) or (n, 784)
        Generated digits, float in ``[-1, 1]`` or uint8; ``n >= 2``, preferably a
        few thousand (the Frechet distance is biased upwards for small ``n``).
    real_images : ndarray of shape (m, 28, 28) or (m, 784), optional
        Real digits to compare with; default: the 5,000 bundled MNIST digits.
    classifier : DigitClassifier, optional
        Default: the shipped classifier (:meth:`DigitClassifier.load_default`).
    min_class_share : float
        A class is *covered* when at least this share of the samples is
        classified as it (default 0.01, i.e. 1 %).
    seed : int
        Seeds the real-data halving and the noise of the reference points.

    Returns
    -------
    dict
        ``n_samples`` (int); ``classifier_fid`` (float, fakes vs all real
        images -- by default all 5,000 bundled digits, including the 4,500 the
        shipped classifier was trained on, as the GAN is trained on them too);
        ``classes_covered`` (int, 0..10); ``class_histogram`` (list of 10 ints,
        argmax predictions per class); ``mean_confidence`` (float, mean of the
        top class probability); ``min_class_share`` (the threshold used); and the
        reference points ``fid_real_vs_real`` (two random halves of the real
        digits, each m/2 images: the floor) and ``fid_noise`` (m/2 uniform-noise
        images vs all real: the ceiling). All plain Python numbers, so the dict
        can go straight into JSON.
    """
    if classifier is None:
        classifier = DigitClassifier.load_default()
    elif not isinstance(classifier, DigitClassifier):
        raise TypeError(f"classifier must be a DigitClassifier, got {describe(classifier)}")
    min_class_share = check_real(min_class_share, "min_class_share", minimum=0.0, maximum=1.0)
    seed = check_int(seed, "seed", minimum=0)
    fake = as_classifier_input(fake_images, "fake_images")
    if fake.shape[0] < 2:
        raise ValueError(
            f"at least 2 generated images are needed to estimate the covariance of their features, got {fake.shape[0]}"
        )
    reference = classifier.reference_points(_bundled_digits()[0] if real_images is None else real_images, seed)

    features, logits = classifier.features_and_logits(fake)
    probs = _softmax(logits)
    predicted = probs.argmax(axis=1)
    histogram = np.bincount(predicted, minlength=NUM_CLASSES)
    n = int(fake.shape[0])
    # At least one sample, so that a zero threshold means "appears at all".
    covered = int(np.count_nonzero(histogram >= max(min_class_share * n, 1.0)))
    fid = frechet_distance_from_statistics(*feature_statistics(features, "fake features"), *reference["real_stats"])
    return {
        "n_samples": n,
        "classifier_fid": float(fid),
        "classes_covered": covered,
        "class_histogram": [int(count) for count in histogram],
        "mean_confidence": float(probs.max(axis=1).mean()),
        "min_class_share": float(min_class_share),
        "fid_real_vs_real": float(reference["fid_real_vs_real"]),
        "fid_noise": float(reference["fid_noise"]),
    }


__all__ = [
    "DigitClassifier",
    "evaluate_samples",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "feature_statistics",
    "as_classifier_input",
    "heldout_split",
]
