"""Conditional GANs: class labels through the generator and the discriminator.

A conditional GAN learns ``p(image | label)``: G takes ``(z, label)`` and D takes
``(image, label)``, the label being one integer per image that travels with the
batch (:meth:`minigan.GAN.train_step`, :meth:`minigan.GAN.fit` with ``labels=``).

* :mod:`~minigan.conditional.layers`: :class:`LabelConcat` (a one-hot code or a learned
  embedding of the label joined to a layer's input), :class:`Projection` (the
  projection discriminator's output layer) and :class:`ConditionalBatchNorm` (a scale
  and shift per class), with hand-written backward and second-order passes (so
  gradient penalties work on a conditional D);
* :mod:`~minigan.conditional.labels`: the checks of labels, class names, labels
  spread evenly over the classes;
* :mod:`~minigan.conditional.metrics`: how often the built-in digit classifier reads
  a generated image as the label it was asked for, per class, and the per-class FID.

Ready-made conditional networks: ``minigan.models.reference_generator(num_classes=10)``
and the other builders of :mod:`minigan.models` (by default G joins the label's one-hot
code to z and D is a projection discriminator: the combination measured best here, see
the README); ``minigan train --conditional``.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule; loaded on first use (PEP 562), so that the label checks
# (plain NumPy) can be imported without compiling the layers' kernels.
_EXPORTS = {
    "LabelConcat": "layers", "Projection": "layers", "ConditionalBatchNorm": "layers", "CONDITIONAL_LAYERS": "layers",
    "check_labels": "labels", "check_class_names": "labels", "default_class_names": "labels",
    "even_labels": "labels", "label_from_text": "labels",
    "label_accuracy": "metrics", "per_class_fid": "metrics", "evaluate_conditional": "metrics",
    "conditional_samples": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minigan.conditional' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "layers", "labels", "metrics", "kernels"])
