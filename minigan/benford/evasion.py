"""Generator terms that make a GAN's images pass for real ones.

* :class:`BenfordTerm` -- match Benford's law *as the real images obey it*: the
  pooled soft digit histograms and shares of the generated batch
  (:class:`~minigan.benford.soft.SoftBenford`) against the same statistics of the
  real training images, computed once.
* :class:`DetectorTerm` -- a frozen minigan detector's verdict: the loss of its logit
  against "real", backpropagated through the detector's network, its
  standardization and its feature map (:mod:`minigan.benford.soft_features`).

Both are :class:`minigan.terms.GeneratorTerm` subclasses: ``minigan train
--benford-weight W`` and ``--evade DETECTOR.npz --evade-weight W`` add them.

The Benford divergence
----------------------
With ``p`` a digit pmf of the batch (one per quality factor, base and coefficient),
``r`` the real images' pmf, ``s`` a share of the batch and ``s_r`` the real one::

    D = mean_pmfs sum_d (p_d - r_d)^2 / (r_d + eps)            (Pearson's chi-square)
      + mean_shares (s - s_r)^2 / (s_r (1 - s_r) + eps)        (non-zero shares)
      + (u - u_r)^2 / (u_r (1 - u_r) + eps)                    (unquantized share)

each of the three parts with its own weight (``digit_weight``, ``share_weight``,
``unquantized_weight``).

``eps = 1e-3``.

Matched classes: a pooled statistic can be matched by changing *which* digits are
drawn -- a "1" has fewer non-black blocks than an "8", and with the reference fixed
the term made the generator draw 20% more ones (classifier FID 5.8 -> 8.9 after 2,000
iterations). When the real images have labels and are 28x28 digits, the reference
is instead the real statistics of the batch's own class mix: each class's real
statistics (per block), weighted by the built-in digit classifier's mean class
probabilities on the batch (a constant of the step: no gradient flows into the
classifier), so drawing other digits does not move the target.

The gradient is ``2 (p - r) / (r + eps)`` on the pmfs, then
``dp_d / dcounts_d = 1 / T`` and ``dp / dT = -p / T`` (``T`` the soft non-zero count),
then :meth:`SoftBenford.backward`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import kernels as K
from .._validation import check_int, describe
from ..terms import GeneratorTerm, register_term
from .image import DEFAULT_QUALITY_FACTORS
from .soft import DEFAULT_GATE_WIDTH, DEFAULT_SHARE_WIDTH, DEFAULT_TEMPERATURE, SoftBenford

_EPS = 1e-3
#: Bases of the Benford term by default: the first-digit law itself. The detector's
#: four bases cost about 3.5x as much per step (the digit sweep is per base).
TERM_BASES = (10,)


def _reference_images(reference: Any) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """Real images as an array, their labels (or None), and what to record of them (a name
    or path, or None)."""
    if isinstance(reference, (str, os.PathLike)):
        from ..datasets import dataset_names, load

        source = str(reference)
        if source not in dataset_names():
            source = str(Path(source).expanduser().resolve())
        images, labels = load(source)
        return np.asarray(images), None if labels is None else np.asarray(labels), source
    if isinstance(reference, np.ndarray):
        return reference, None, None
    if isinstance(reference, dict) and "unrecorded" in reference:
        raise ValueError("this Benford term was made from in-memory images, which a run cannot record; rebuild the "
                         "GAN in Python with BenfordTerm(your_images, ...) to continue it")
    raise TypeError(f"reference must be a dataset name, a path or an array of real images, got {describe(reference)}")


def _as_8bit(images: np.ndarray, name: str) -> np.ndarray:
    """Real images as float64 0..255 (N, h, w): uint8 as they are, floats in [-1, 1] scaled."""
    if images.dtype == np.uint8:
        return images.astype(np.float64)
    if images.dtype.kind != "f":
        raise TypeError(f"{name} must be uint8 (0..255) or floats in [-1, 1], got dtype {images.dtype}")
    if images.min() < -1.0 - 1e-6 or images.max() > 1.0 + 1e-6:
        raise ValueError(f"{name} floats must lie in [-1, 1], got {images.min():.3g} to {images.max():.3g}")
    return np.floor(np.clip((images.astype(np.float64) + 1.0) * 127.5, 0.0, 255.0) + 0.5)


@register_term
class BenfordTerm(GeneratorTerm):
    """``weight * D``: the batch's soft Benford statistics against the real images' (module docstring).

    Parameters
    ----------
    reference : str, path or ndarray
        The real images: a dataset name (``"mnist-5k"``), a folder / ``.npy`` / ``.npz``
        (as :func:`minigan.datasets.load` reads), or an array (N, h, w) of uint8 or
        floats in [-1, 1]. Its statistics are computed once, here.
    labels : ndarray (N,) of int 0..9, optional
        Classes of an array ``reference`` (a dataset's own labels are read with it).
    match_classes : bool
        Match the batch against real digits of its own class mix (module docstring);
        needs labels and 28x28 images, otherwise the pooled reference is used.
    weight : float
    quality_factors, bases, n_coefficients :
        Which histograms to match (default: the detector's quality factors, base 10,
        9 coefficients).
    digit_weight, share_weight, unquantized_weight : float
        Weights of the three parts of ``D`` (module docstring).
    temperature, gate_width, share_width, round_pixels, hard_shares :
        As :class:`~minigan.benford.soft.SoftBenford` (``hard_shares`` on by default:
        the shares are matched as the detector counts them).
    """

    name = "benford"

    def __init__(self, reference: Any = "mnist-5k", *, weight: float = 1.0, labels: np.ndarray | None = None,
                 match_classes: bool = True,
                 quality_factors: Sequence[int] = DEFAULT_QUALITY_FACTORS, bases: Sequence[int] = TERM_BASES,
                 n_coefficients: int = 9, temperature: float = DEFAULT_TEMPERATURE,
                 gate_width: float = DEFAULT_GATE_WIDTH, share_width: float = DEFAULT_SHARE_WIDTH,
                 round_pixels: bool = True, hard_shares: bool = True, digit_weight: float = 1.0,
                 share_weight: float = 1.0, unquantized_weight: float = 1.0) -> None:
        from .._validation import check_real

        super().__init__(weight)
        self.parts = tuple(check_real(v, name, minimum=0.0) for v, name in (
            (digit_weight, "digit_weight"), (share_weight, "share_weight"), (unquantized_weight, "unquantized_weight")))
        images, dataset_labels, self.source = _reference_images(reference)
        labels = dataset_labels if labels is None else labels
        real = _as_8bit(images, "reference")
        if real.ndim == 4 and real.shape[-1] == 1:
            real = real[..., 0]
        if real.ndim != 3 or real.shape[0] < 2:
            raise ValueError(f"reference must hold at least 2 grey images (N, h, w), got {describe(images)}")
        self.soft = SoftBenford(real.shape[1:], quality_factors=quality_factors, bases=bases,
                                n_coefficients=n_coefficients, temperature=temperature, gate_width=gate_width,
                                share_width=share_width, round_pixels=round_pixels, hard_shares=hard_shares)
        flat = real.reshape(real.shape[0], -1)
        self.match_classes = bool(match_classes) and labels is not None and self.soft.image_shape == (28, 28)
        if self.match_classes:
            labels = np.asarray(labels)
            if labels.shape != (real.shape[0],) or labels.dtype.kind not in "iu" or labels.min() < 0 \
                    or labels.max() > 9:
                raise ValueError(f"labels must be one digit class 0..9 per reference image, got {describe(labels)}")
            groups = [flat[labels == c] for c in range(10)]
        else:
            groups = [flat]
        # per class (or once): counts, totals and shares per block, and the unquantized share
        rates = []
        for members in groups:
            if len(members) == 0:
                rates.append(None)
                continue
            stats = self.soft.forward(members, uint8=True)
            rates.append((stats.counts[0] / stats.blocks, stats.totals[0] / stats.blocks, stats.nonzero_shares[0],
                          float(stats.unquantized_shares[0])))
        self._rates = rates
        self._classifier = None
        mask = np.zeros(next(r for r in rates if r is not None)[0].shape, dtype=bool)
        for bi, b in enumerate(self.soft.bases):
            mask[:, bi, :, : b - 1] = True
        self._digit_mask = mask
        self._set_reference(np.full(len(groups), 1.0 / len(groups)) if self.match_classes else np.ones(1))

    def _set_reference(self, class_weights: np.ndarray) -> None:
        """The reference statistics of a class mix (weights over the groups, summing to 1)."""
        present = [(w, r) for w, r in zip(class_weights, self._rates) if r is not None and w > 0]
        total = sum(w for w, _ in present)
        counts = sum(w * r[0] for w, r in present) / total
        totals = sum(w * r[1] for w, r in present) / total
        with np.errstate(invalid="ignore", divide="ignore"):
            pmf = np.where(totals[:, None, :, None] > 0, counts / totals[:, None, :, None], 0.0)
        pmf = np.where(self._digit_mask, pmf, 0.0)
        self._reference = pmf
        digit_weight, share_weight, unquantized_weight = self.parts
        self._pmf_weight = digit_weight * np.where(self._digit_mask, 1.0 / (pmf + _EPS), 0.0) / float(
            np.prod(pmf.shape[:3]))
        nz = sum(w * r[2] for w, r in present) / total
        self.reference_nonzero = nz
        self._share_weight = share_weight / (nz * (1.0 - nz) + _EPS) / nz.size
        u = sum(w * r[3] for w, r in present) / total
        self.reference_unquantized = float(u)
        self._unquantized_weight = unquantized_weight / (u * (1.0 - u) + _EPS)

    def class_weights(self, images: np.ndarray) -> np.ndarray:
        """The batch's class mix (10,): the digit classifier's mean class probabilities."""
        if self._classifier is None:
            from ..metrics import DigitClassifier

            self._classifier = DigitClassifier.load_default()
        return self._classifier.predict_proba(images).mean(axis=0)

    @property
    def log_names(self) -> tuple[str, ...]:
        return (self.name, "benford_digits", "benford_shares")

    def divergence(self, images: np.ndarray) -> tuple[float, float, float]:
        """``(D, digit part, share part)`` of a batch (N, h * w) in [-1, 1]; keeps what
        :meth:`gradient` needs."""
        if self.match_classes:
            self._set_reference(self.class_weights(images))
        stats = self.soft.forward(images)
        totals = stats.totals[0][:, None, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            pmf = np.where(totals > 0, stats.counts[0] / totals, 0.0)
        diff = np.where(self._digit_mask, pmf - self._reference, 0.0)
        digits = float(np.sum(self._pmf_weight * diff * diff))
        share_diff = stats.nonzero_shares[0] - self.reference_nonzero
        unq_diff = float(stats.unquantized_shares[0] - self.reference_unquantized)
        shares = float(np.sum(self._share_weight * share_diff ** 2)) + self._unquantized_weight * unq_diff ** 2
        self._state = (stats, pmf, diff, share_diff, unq_diff)
        return digits + shares, digits, shares

    def gradient(self) -> np.ndarray:
        """``dD / d images`` (N, h * w) of the last :meth:`divergence`."""
        stats, pmf, diff, share_diff, unq_diff = self._state
        totals = stats.totals[0][:, None, :, None]
        grad_pmf = 2.0 * self._pmf_weight * diff
        with np.errstate(invalid="ignore", divide="ignore"):
            grad_counts = np.where(totals > 0, grad_pmf / totals, 0.0)
            grad_totals = -np.where(totals > 0, (grad_pmf * pmf) / totals, 0.0).sum(axis=(1, 3))
        return self.soft.backward(grad_counts[None], grad_totals[None], (2.0 * self._share_weight * share_diff)[None],
                                  np.array([2.0 * self._unquantized_weight * unq_diff]))

    def add_image_gradient(self, images, condition, grad_images):
        value, digits, shares = self.divergence(images)
        grad = self.gradient()
        grad *= self.weight
        grad_images += grad.astype(grad_images.dtype, copy=False)
        return {self.name: self.weight * value, "benford_digits": digits, "benford_shares": shares}

    def get_config(self) -> dict[str, Any]:
        soft = self.soft.get_config()
        return {"reference": self.source if self.source is not None else {"unrecorded": "in-memory images"},
                "weight": self.weight, "match_classes": self.match_classes, "quality_factors": soft["quality_factors"], "bases": soft["bases"],
                "n_coefficients": soft["n_coefficients"], "temperature": soft["temperature"],
                "gate_width": soft["gate_width"], "share_width": soft["share_width"],
                "round_pixels": soft["round_pixels"], "hard_shares": soft["hard_shares"],
                "digit_weight": self.parts[0], "share_weight": self.parts[1], "unquantized_weight": self.parts[2]}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file (a run records which detector it evaded)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Judge:
    """One frozen detector with its soft feature map: logits of generated images and their gradient."""

    def __init__(self, detector: Any, image_shape: Sequence[int] | None, widths: dict[str, Any]) -> None:
        from .detector import BenfordDetector, PixelDetector
        from .soft_features import SoftBenfordFeatures, SoftPixelFeatures

        if not isinstance(detector, (BenfordDetector, PixelDetector)):
            raise TypeError(f"a detector must be a path or a BenfordDetector / PixelDetector, got {describe(detector)}")
        self.detector = detector
        if isinstance(detector, PixelDetector):
            self.kind = "pixel"
            self.features: Any = SoftPixelFeatures(detector, share_width=widths["share_width"],
                                                   round_pixels=widths["round_pixels"],
                                                   hard_mask=widths["hard_shares"])
            self.image_shape = tuple(detector.image_shape_)
        else:
            self.kind = "benford"
            shape = tuple(image_shape) if image_shape is not None else (28, 28)
            self.features = SoftBenfordFeatures(detector, shape, **widths)
            self.image_shape = self.features.soft.image_shape
        self._networks: dict[np.dtype, Any] = {}

    def _network(self, dtype: np.dtype) -> Any:
        dtype = np.dtype(dtype)
        if dtype not in self._networks:
            net = self.detector.network_
            self._networks[dtype] = (net if net.dtype == dtype else net.astype(dtype)).eval()
        return self._networks[dtype]

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The detector's logits (n,) of images (n, h * w) in [-1, 1], through the soft features."""
        features = self.features.forward(images)
        z = (features - self.detector.mean_) / self.detector.std_
        self._finite = np.isfinite(z)
        z = np.where(self._finite, z, 0.0)
        net = self._network(images.dtype)
        return net.forward_unchecked(np.ascontiguousarray(z, dtype=images.dtype))[:, 0].astype(np.float64)

    def backward(self, grad_logits: np.ndarray, dtype: Any) -> np.ndarray:
        """``d loss / d images`` (n, h * w) from ``d loss / d logits`` (n,) of the last :meth:`logits`."""
        net = self._network(dtype)
        grad_z = net.backward_unchecked(np.ascontiguousarray(grad_logits[:, None], dtype=dtype), K.GRAD_SKIP, True)
        grad_features = np.where(self._finite, grad_z.astype(np.float64) / self.detector.std_, 0.0)
        return self.features.backward(grad_features)


@register_term
class DetectorTerm(GeneratorTerm):
    """Frozen detectors' verdicts: for each, ``mean_i softplus(logit_i)``, the BCE of its
    logits against "real" (label 0), on the first ``max_images`` fakes of each batch.

    Gradient of one detector: ``sigmoid(logit) / n`` at the logits, back through its
    frozen network (weights untouched), its standardization (``/ std_``) and its soft
    feature map (:mod:`minigan.benford.soft_features`).

    Balance
    -------
    A detector's logits on fakes can be +-100 and its landscape steep: its raw gradient
    was 1,000-20,000 times the discriminator's on a plain-bce generator's digits, and
    followed as it is it wrecked training in a few dozen steps. With ``balance`` (the
    default) each detector's gradient is rescaled to ``weight`` times the norm of the
    gradient the term receives (the discriminator's: :func:`minigan.models.build_gan`
    adds this term first), as the loss balancer of Defossez et al. (2022, "High Fidelity
    Neural Audio Compression") does; ``weight = 1`` pulls as hard as the discriminator.
    Without it the term is the plain loss ``weight * sum over detectors``.

    Parameters
    ----------
    detectors : path, detector, or a sequence of them
        Detector ``.npz`` files written by ``detector.save`` (recorded by absolute path
        and SHA-256) or fitted BenfordDetector / PixelDetector objects.
    weight : float
    balance : bool
    image_shape : (h, w), optional
        Of the generated images, for Benford detectors (default (28, 28)).
    max_images : int
        How many of each batch's fakes are judged (a Benford detector's features cost
        about 6 ms per image, its fits being most of it).
    temperature, gate_width, share_width, round_pixels, hard_shares :
        Of the soft features (:mod:`minigan.benford.soft_features`); with
        ``hard_shares`` (default) the shares and the pixel mask the network sees are
        the detector's own, only their gradients the share gate's.
    name : str
        Prefix of the log columns (``evade_benford``, ``evade_pixel``).
    sha256 : list of str, optional
        The files' expected SHA-256 (a run's record): a changed file is an error.
    """

    name = "evade"

    def __init__(self, detectors: Any, *, weight: float = 1.0, balance: bool = True,
                 image_shape: Sequence[int] | None = None, max_images: int = 16,
                 temperature: float = DEFAULT_TEMPERATURE, gate_width: float = DEFAULT_GATE_WIDTH,
                 share_width: float = DEFAULT_SHARE_WIDTH, round_pixels: bool = True, hard_shares: bool = True,
                 name: str = "evade", sha256: Sequence[str | None] | None = None) -> None:
        from .detector import load_detector

        super().__init__(weight)
        if isinstance(detectors, (str, os.PathLike, dict)) or not isinstance(detectors, (list, tuple)):
            detectors = [detectors]
        if not detectors:
            raise ValueError("detectors must name at least one detector")
        digests = list(sha256) if sha256 is not None else [None] * len(detectors)
        if len(digests) != len(detectors):
            raise ValueError(f"sha256 must give one digest per detector ({len(detectors)}), got {len(digests)}")
        self.balance = bool(balance)
        self.max_images = check_int(max_images, "max_images", minimum=1)
        self.name = str(name)  # type: ignore[misc]
        self.widths = {"temperature": temperature, "gate_width": gate_width, "share_width": share_width,
                       "round_pixels": bool(round_pixels), "hard_shares": bool(hard_shares)}
        self.paths: list[str | None] = []
        self.digests: list[str | None] = []
        self.judges: list[_Judge] = []
        for detector, expected in zip(detectors, digests):
            path = digest = None
            if isinstance(detector, dict) and "unrecorded" in detector:
                raise ValueError("this evasion term was made from an in-memory detector, which a run cannot record; "
                                 "save the detector and pass its path, or rebuild the GAN in Python")
            if isinstance(detector, (str, os.PathLike)):
                resolved = Path(detector).expanduser().resolve()
                if not resolved.is_file():
                    raise FileNotFoundError(f"detector file not found: {resolved}")
                digest = file_digest(resolved)
                if expected is not None and expected != digest:
                    raise ValueError(f"the detector file {resolved} changed since the run recorded it (SHA-256 "
                                     f"{expected[:12]}, now {digest[:12]}); restore it or start a new run")
                path = str(resolved)
                detector = load_detector(resolved)
            self.judges.append(_Judge(detector, image_shape, self.widths))
            self.paths.append(path)
            self.digests.append(digest)
        kinds = [judge.kind for judge in self.judges]
        self._columns = [f"{self.name}_{kind}" if kinds.count(kind) == 1 else f"{self.name}_{kind}_{kinds[:i + 1].count(kind)}"
                         for i, kind in enumerate(kinds)]

    @property
    def log_names(self) -> tuple[str, ...]:
        return tuple(self._columns)

    def add_image_gradient(self, images, condition, grad_images):
        n = min(self.max_images, images.shape[0])
        judged = images[:n]
        reference = float(np.linalg.norm(grad_images)) if self.balance else 0.0
        logs = {}
        total = np.zeros(judged.shape)
        for judge, column in zip(self.judges, self._columns):
            logits = judge.logits(judged)
            logs[column] = float(np.mean(np.logaddexp(0.0, logits)))
            grad_logits = 0.5 * (1.0 + np.tanh(0.5 * logits)) / n  # sigmoid, without overflow
            grad = judge.backward(grad_logits, images.dtype).astype(np.float64)
            if self.balance:
                norm = float(np.linalg.norm(grad))
                scale = self.weight * reference / norm if norm > 0.0 else 0.0
            else:
                scale = self.weight
            total += scale * grad
        grad_images[:n] += total.astype(grad_images.dtype, copy=False)
        return logs

    def get_config(self) -> dict[str, Any]:
        detectors = [p if p is not None else {"unrecorded": "an in-memory detector"} for p in self.paths]
        return {"detectors": detectors, "sha256": self.digests, "weight": self.weight, "balance": self.balance,
                "image_shape": list(self.judges[0].image_shape), "max_images": self.max_images, **self.widths,
                "name": self.name}
