"""The exceptions minigan raises besides the built-in ones."""
from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or inf; the last good checkpoint is left untouched."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (a ``ValueError`` and an ``AttributeError``,
    as scikit-learn's ``NotFittedError``)."""
