"""Extra terms of a GAN's losses, beside the objective: the loop's extension points.

* A :class:`DiscriminatorTerm` adds to D's loss. After the objective's gradients are
  in D's ``grads``, the loop calls :meth:`~DiscriminatorTerm.add_gradients` on every
  ``every``-th D update (counted over the whole run), before the optimizer step. The
  term computes whatever it needs (on the real batch, the fakes or other inputs,
  e.g. interpolates) and **adds** its weighted gradient into D's ``grads``. A
  gradient penalty is such a term; applied lazily (``every = k``) it is usually
  weighted by ``k`` so its average effect stays the same.
* A :class:`GeneratorTerm` adds to G's loss a function of the generated images
  alone: the loop calls :meth:`~GeneratorTerm.add_image_gradient` with the fakes of
  the G step and the gradient that D's frozen backward produced with respect to
  them; the term adds its own. :class:`FrozenNetworkTerm` is the ready-made one:
  the loss of a frozen network's output on the fakes (e.g. a detector's score).

Both return the numbers they want logged (``metrics.csv`` columns named by
``log_names``). Terms never change any network's parameters.

Ready-made discriminator terms: :class:`R1Penalty` (``--r1 GAMMA``, lazy with
``--r1-every K``) and :class:`WGANGradientPenalty` (the penalty that
``--loss wgan-gp`` brings); both differentiate D's backward pass by hand
(:mod:`minigan.penalties`) and log the mean norm of D's input gradient.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import kernels as K
from ._validation import check_int, check_real, describe
from .losses import BCEWithLogits, Loss, MSE, Wasserstein


class DiscriminatorTerm:
    """Base class of extra discriminator terms (see the module docstring).

    Parameters
    ----------
    every : int
        Apply the term on every ``every``-th D update (1: always).
    """

    name: ClassVar[str] = ""

    def __init__(self, every: int = 1) -> None:
        self.every = check_int(every, "every", minimum=1)

    @property
    def log_names(self) -> tuple[str, ...]:
        """Names of the values :meth:`add_gradients` returns (metrics columns)."""
        return (self.name,)

    def add_gradients(self, discriminator: Any, real: np.ndarray, fake: np.ndarray, condition: np.ndarray | None,
                      rng: np.random.Generator) -> dict[str, float]:
        """Add this term's gradient with respect to D's parameters into D's ``grads``.

        Parameters
        ----------
        discriminator : Sequential
            In training mode; its caches may be overwritten (D's backward is done).
        real, fake : ndarray (B, P)
            The D step's real batch and fakes, flat, in the models' dtype.
        condition : ndarray (B,) or None
            The batch's condition (labels), for a conditional D.
        rng : numpy.random.Generator
            The GAN's random stream, for terms that draw (saved in checkpoints).

        Returns
        -------
        dict of log name -> float
        """
        raise NotImplementedError(f"{type(self).__name__} must implement add_gradients")  # pragma: no cover

    def check_discriminator(self, discriminator: Any) -> None:
        """Raise a clear error if the term cannot work with ``discriminator``; :class:`minigan.GAN`
        calls it when the term is attached (nothing by default)."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-compatible values."""
        return {"every": self.every}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class GeneratorTerm:
    """Base class of extra generator terms (see the module docstring).

    Parameters
    ----------
    weight : float
        Multiplies the term in G's loss.
    """

    name: ClassVar[str] = ""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = check_real(weight, "weight", minimum=0.0)

    @property
    def log_names(self) -> tuple[str, ...]:
        """Names of the values :meth:`add_image_gradient` returns (metrics columns)."""
        return (self.name,)

    def add_image_gradient(self, images: np.ndarray, condition: np.ndarray | None,
                           grad_images: np.ndarray) -> dict[str, float]:
        """Add ``weight * d term / d images`` into ``grad_images`` (N, P), in place.

        ``images`` (N, P) are the G step's fakes, flat, in [-1, 1] (the generator's
        output range), in the models' dtype; they must not be modified.
        Returns the values to log (the weighted term under ``name``).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement add_image_gradient")  # pragma: no cover

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-compatible values."""
        return {"weight": self.weight}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


_FROZEN_LOSSES = {"bce": BCEWithLogits, "mse": MSE, "wasserstein": Wasserstein}


class FrozenNetworkTerm(GeneratorTerm):
    """``weight * loss(network(images), target)``: a frozen network's judgement of the fakes.

    The network runs in inference mode and only propagates to its input (its
    ``grads`` are left untouched, its weights never change). With a detector of
    fakes (one logit, "fake" = 1) and ``target=0``, G learns to make images the
    detector calls real.

    Parameters
    ----------
    network : Sequential
        Maps flat images (N, P) to (N, k) outputs, in the GAN's dtype.
    target : float
        Target of every output.
    loss : {"bce", "mse", "wasserstein"} or Loss
        ``"bce"`` treats the outputs as logits.
    weight : float
    name : str
        The log column (default ``"frozen"``).
    """

    name = "frozen"

    def __init__(self, network: Any, *, target: float = 0.0, loss: Any = "bce", weight: float = 1.0,
                 name: str = "frozen") -> None:
        from .model import Sequential

        super().__init__(weight)
        if not isinstance(network, Sequential):
            raise TypeError(f"network must be a minigan Sequential, got {describe(network)}")
        self.network = network.eval()
        self.target = check_real(target, "target")
        if isinstance(loss, str):
            if loss not in _FROZEN_LOSSES:
                raise ValueError(f"loss must be one of {sorted(_FROZEN_LOSSES)} or a minigan Loss, got {loss!r}")
            loss = _FROZEN_LOSSES[loss]()
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a name or a minigan Loss, got {describe(loss)}")
        self.loss = loss
        self.name = str(name)  # type: ignore[misc]

    def add_image_gradient(self, images, condition, grad_images):
        outputs = self.network.forward_unchecked(images)
        grad = np.empty_like(outputs)
        target = np.full(outputs.shape, self.target, dtype=outputs.dtype)
        value = self.loss.sum_and_gradient(outputs, target, grad, outputs.size) / outputs.size
        if self.weight != 1.0:
            grad *= grad.dtype.type(self.weight)
        grad_images += self.network.backward_unchecked(grad, K.GRAD_SKIP, True)
        return {self.name: self.weight * value}

    def get_config(self):
        return {"weight": self.weight, "target": self.target, "name": self.name}


#: Term classes that can be rebuilt from a run's record, by class name.
TERMS: dict[str, type] = {}


def register_term(cls: type) -> type:
    """Class decorator: a term whose ``get_config()`` output rebuilds it (``cls(**config)``)
    can be restored from a run's record by :func:`term_from_config`."""
    TERMS[cls.__name__] = cls
    return cls


def term_from_config(spec: Any) -> Any:
    """Rebuild a term from ``{"class": name, "config": {...}}``."""
    if not isinstance(spec, dict) or spec.get("class") not in TERMS:
        name = spec.get("class") if isinstance(spec, dict) else spec
        raise ValueError(
            f"the run has a loss term {name!r} that cannot be rebuilt from its record (it holds a network or is "
            "not registered with minigan.terms.register_term); load it with models_only=True to sample, or "
            "rebuild the GAN in Python and fit(..., resume=True) to continue training"
        )
    return TERMS[spec["class"]](**spec["config"])


class _PenaltyTerm(DiscriminatorTerm):
    """A gradient penalty on D's input gradient (see :mod:`minigan.penalties`); applied on
    every ``every``-th D update with its weight multiplied by ``every``."""

    def check_discriminator(self, discriminator: Any) -> None:
        from .penalties import check_penalty_model

        check_penalty_model(discriminator, "discriminator")

    @property
    def log_names(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_grad_norm")

    def _apply(self, discriminator: Any, x: np.ndarray, weight: float, center: float,
               condition: np.ndarray | None) -> dict[str, float]:
        from .penalties import gradient_penalty_unchecked

        value, norms = gradient_penalty_unchecked(discriminator, x, weight * self.every, center, condition)
        return {self.name: value / self.every, f"{self.name}_grad_norm": float(norms.mean())}


@register_term
class R1Penalty(_PenaltyTerm):
    """R1 (Mescheder, Geiger and Nowozin 2018, "Which Training Methods for GANs do actually
    Converge?"): ``gamma / 2 * mean_i ||grad_x D(x_i)||^2`` on the real batch, D's scores
    being its raw outputs (logits for bce).

    Parameters
    ----------
    gamma : float > 0
    every : int
        Lazy regularization (Karras et al. 2020, "Analyzing and Improving the Image
        Quality of StyleGAN", which uses 16): the penalty on every ``every``-th D update,
        its weight multiplied by ``every`` so that its average pull stays the same.

    Logs ``r1`` (the penalty, without the lazy factor) and ``r1_grad_norm`` (the mean of
    ``||grad_x D(x_i)||`` over the batch), on the updates where it is applied.
    """

    name = "r1"

    def __init__(self, gamma: float, every: int = 1) -> None:
        super().__init__(every)
        self.gamma = check_real(gamma, "gamma", minimum=0.0, min_inclusive=False)

    def add_gradients(self, discriminator, real, fake, condition, rng):
        return self._apply(discriminator, real, self.gamma / 2, 0.0, condition)

    def get_config(self):
        return {"gamma": self.gamma, "every": self.every}


@register_term
class WGANGradientPenalty(_PenaltyTerm):
    """WGAN-GP's penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"):
    ``weight * mean_i (||grad_x D(x_hat_i)|| - 1)^2`` on per-row random interpolates
    ``x_hat_i = eps_i x_i + (1 - eps_i) G(z_i)``, ``eps_i ~ U[0, 1)`` drawn from the GAN's
    random stream (saved in checkpoints). ``--loss wgan-gp`` attaches it with weight 10.

    Logs ``gp`` and ``gp_grad_norm`` (the mean input-gradient norm at the interpolates).
    """

    name = "gp"

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(every)
        self.weight = check_real(weight, "weight", minimum=0.0, min_inclusive=False)

    def add_gradients(self, discriminator, real, fake, condition, rng):
        from .penalties import interpolates

        return self._apply(discriminator, interpolates(real, fake, rng), self.weight, 1.0, condition)

    def get_config(self):
        return {"weight": self.weight, "every": self.every}
