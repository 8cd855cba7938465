"""GAN objectives: what the discriminator minimizes and what the generator minimizes.

An objective is one class. It says, for D's scores on a real batch and on a batch
of fakes, what D's loss is and its gradient with respect to every score; the same
for G's loss on the fakes; what summary of the scores is logged; and what happens
after each D update (the WGAN critic's weight clipping). :data:`OBJECTIVES` maps
each name to its class: :class:`minigan.GAN`, ``minigan train --loss`` and the
TOML reader all take their names from it, so adding an objective is writing one
class here and registering it.

Conventions
-----------
* Scores are D's raw outputs, shape (B, 1): logits for the cross-entropy objectives.
* The loss methods *write* the gradients into arrays the caller owns (``grad_real``,
  ``grad_fake``: the scores' shape and dtype) and return the loss as a float. The
  GAN loop passes views of one buffer, so a discriminator without batch statistics
  backpropagates both halves in one pass.
* D's loss averages its real and fake halves, ``(L_real + L_fake) / 2``, each a mean
  over its rows; with equal halves that is the mean over all 2B rows, the form the
  kernels compute (each gradient entry is ``d / d score`` of ``sum / 2B``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._validation import check_choice, check_real, describe

if TYPE_CHECKING:
    from .losses import Loss

# The registry is read by the command line's --help, which must not load Numba: the
# losses and kernels (compiled code) are imported when an objective is first built.


def _kernels() -> Any:
    from . import kernels

    return kernels


def _losses() -> Any:
    from . import losses

    return losses


class Objective:
    """Base class of the GAN objectives (see the module docstring).

    Class attributes
    ----------------
    name : str
        The registry name (``--loss NAME``).
    score_kind : {"probability", "score"}
        What the logged ``d_real`` / ``d_fake`` are: a mean probability in [0, 1], or
        a mean raw score (any real number; plots use an axis that fits it).
    generator_uses_real_scores : bool
        G's loss also needs D's scores on the real batch (relativistic objectives);
        the GAN loop then runs D on the real batch in the generator step too.
    recommended_settings : dict
        Training settings the objective is meant to run with, applied where the user
        set nothing (e.g. WGAN-GP's optimizer); empty for most.
    """

    name: ClassVar[str] = ""
    score_kind: ClassVar[str] = "score"
    generator_uses_real_scores: ClassVar[bool] = False
    recommended_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self._constants: dict[tuple, np.ndarray] = {}

    # -- the objective ------------------------------------------------------------
    def discriminator_loss(self, real_scores: np.ndarray, fake_scores: np.ndarray,
                           grad_real: np.ndarray, grad_fake: np.ndarray) -> float:
        """D's loss on (B_r, 1) real and (B_f, 1) fake scores; writes d loss / d scores."""
        raise NotImplementedError(f"{type(self).__name__} must implement discriminator_loss")  # pragma: no cover

    def generator_loss(self, fake_scores: np.ndarray, real_scores: np.ndarray | None,
                       grad_fake: np.ndarray) -> float:
        """G's loss on D's (B, 1) scores of the fakes (``real_scores`` given only when
        ``generator_uses_real_scores``); writes d loss / d fake scores."""
        raise NotImplementedError(f"{type(self).__name__} must implement generator_loss")  # pragma: no cover

    def score_summaries(self, real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[float, float]:
        """``(d_real, d_fake)`` for the log: the mean score on each half (see ``score_kind``)."""
        return float(np.mean(real_scores)), float(np.mean(fake_scores))

    def after_discriminator_step(self, discriminator: Any) -> None:
        """Called after every D update (e.g. to clip the critic's weights); nothing by default."""

    def discriminator_terms(self) -> list[Any]:
        """Extra discriminator terms the objective brings (:mod:`minigan.terms`), e.g. WGAN-GP's
        gradient penalty; :class:`minigan.GAN` attaches them. None by default."""
        return []

    def get_config(self) -> dict[str, Any]:
        """The objective's options as JSON-compatible values (``objective_from_config`` inverts it)."""
        return {}

    # -- helpers --------------------------------------------------------------------
    def _constant(self, value: float, like: np.ndarray) -> np.ndarray:
        """A cached array of ``like``'s shape and dtype filled with ``value`` (a target)."""
        key = (value, like.shape, like.dtype)
        array = self._constants.get(key)
        if array is None:
            if len(self._constants) > 16:
                self._constants.clear()
            array = self._constants[key] = np.full(like.shape, value, dtype=like.dtype)
        return array

    def _two_halves(self, loss: "Loss", real_scores: np.ndarray, real_target: float, grad_real: np.ndarray,
                    fake_scores: np.ndarray, fake_target: float, grad_fake: np.ndarray) -> float:
        """``(mean loss on real + mean loss on fake) / 2`` for equal halves: the mean over
        all rows, each half's gradient that of ``sum / (B_r + B_f)``."""
        n = real_scores.shape[0] + fake_scores.shape[0]
        if real_scores.shape[0] != fake_scores.shape[0]:
            raise ValueError(f"the real and fake halves must have equal batch sizes, got "
                             f"{real_scores.shape[0]} and {fake_scores.shape[0]}")
        total = loss.sum_and_gradient(real_scores, self._constant(real_target, real_scores), grad_real, n)
        total += loss.sum_and_gradient(fake_scores, self._constant(fake_target, fake_scores), grad_fake, n)
        return total / n

    def _mean(self, loss: "Loss", scores: np.ndarray, target: float, grad: np.ndarray) -> float:
        return loss.sum_and_gradient(scores, self._constant(target, scores), grad, scores.shape[0]) / scores.shape[0]

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({options})"


def _check_smoothing(value: Any) -> float:
    return check_real(value, "label_smoothing", minimum=0.0, maximum=0.5, max_inclusive=False)


class _TargetObjective(Objective):
    """An objective on one loss with targets: real ``1 - s`` (one-sided label smoothing
    ``s``), fake 0, and 1 for G's fakes (the non-saturating form)."""

    loss_class = ""  # the name of a class in minigan.losses

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing(label_smoothing)
        self._loss = getattr(_losses(), self.loss_class)()

    def discriminator_loss(self, real_scores, fake_scores, grad_real, grad_fake):
        return self._two_halves(self._loss, real_scores, 1.0 - self.label_smoothing, grad_real,
                                fake_scores, 0.0, grad_fake)

    def generator_loss(self, fake_scores, real_scores, grad_fake):
        return self._mean(self._loss, fake_scores, 1.0, grad_fake)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing}


class BCEObjective(_TargetObjective):
    """The article's objective: binary cross-entropy on logits, non-saturating for G.

    ``L_D = (BCE(D(x), 1 - s) + BCE(D(G(z)), 0)) / 2`` with one-sided label smoothing
    ``s``; ``L_G = BCE(D(G(z)), 1)`` (Goodfellow et al. 2014's non-saturating form).
    The logged summaries are mean probabilities ``sigmoid(D)``.

    Recommended with lazy R1 (:attr:`recommended_settings`: gamma 1 on every 16th D
    update, as StyleGAN2 applies it): on the reference GAN it halved the classifier FID
    at 10,000 iterations, on every seed measured, for about 1% more time per step.
    ``--r1 0`` trains the plain objective.
    """

    name = "bce"
    recommended_settings = {"r1": 1.0, "r1_every": 16}
    score_kind = "probability"
    loss_class = "BCEWithLogits"

    def score_summaries(self, real_scores, fake_scores):
        kernels = _kernels()
        return float(kernels.sigmoid_mean(real_scores.reshape(-1))), float(kernels.sigmoid_mean(fake_scores.reshape(-1)))


class LSGANObjective(_TargetObjective):
    """Least squares (Mao et al. 2017, "Least Squares Generative Adversarial Networks"):
    ``L_D = (mean (D(x) - (1 - s))^2 + mean D(G(z))^2) / 2``, ``L_G = mean (D(G(z)) - 1)^2``."""

    name = "lsgan"
    loss_class = "MSE"


class HingeObjective(Objective):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): ``L_D = (mean max(0, 1 - D(x)) +
    mean max(0, 1 + D(G(z)))) / 2``, ``L_G = -mean D(G(z))``."""

    name = "hinge"

    def __init__(self) -> None:
        super().__init__()
        self._d_loss = _losses().Hinge()
        self._g_loss = _losses().Wasserstein()  # -mean(score) for target 1

    def discriminator_loss(self, real_scores, fake_scores, grad_real, grad_fake):
        return self._two_halves(self._d_loss, real_scores, 1.0, grad_real, fake_scores, 0.0, grad_fake)

    def generator_loss(self, fake_scores, real_scores, grad_fake):
        return self._mean(self._g_loss, fake_scores, 1.0, grad_fake)


class WGANObjective(Objective):
    """Wasserstein critic with weight clipping (Arjovsky et al. 2017, "Wasserstein GAN"):
    ``L_D = (-mean D(x) + mean D(G(z))) / 2``, ``L_G = -mean D(G(z))``; after every
    critic update each weight is clipped to ``[-clip_value, clip_value]``."""

    name = "wgan"

    def __init__(self, clip_value: float = 0.01) -> None:
        super().__init__()
        self.clip_value = check_real(clip_value, "clip_value", minimum=0.0, min_inclusive=False)
        self._loss = _losses().Wasserstein()

    def discriminator_loss(self, real_scores, fake_scores, grad_real, grad_fake):
        return self._two_halves(self._loss, real_scores, 1.0, grad_real, fake_scores, 0.0, grad_fake)

    def generator_loss(self, fake_scores, real_scores, grad_fake):
        return self._mean(self._loss, fake_scores, 1.0, grad_fake)

    def after_discriminator_step(self, discriminator):
        for p in discriminator.parameters():
            _kernels().clip_inplace(p.value.reshape(-1), self.clip_value)

    def get_config(self):
        return {"clip_value": self.clip_value}


class WGANGPObjective(Objective):
    """Wasserstein critic with a gradient penalty (Gulrajani et al. 2017, "Improved Training
    of Wasserstein GANs", Algorithm 1): no clipping; instead
    ``L_D = mean D(G(z)) - mean D(x) + gp_weight * mean (||grad D(x_hat)|| - 1)^2`` on random
    interpolates ``x_hat`` (:class:`minigan.terms.WGANGradientPenalty`, which this objective
    attaches), and ``L_G = -mean D(G(z))``.

    The critic's two halves are not averaged here (unlike the other objectives'): this
    is the paper's loss, so that ``gp_weight = 10`` weighs the penalty as the paper's
    lambda does. The paper trains with five critic steps per generator step and
    Adam(1e-4, beta1 0, beta2 0.9): :attr:`recommended_settings`, which ``build_gan``
    and ``minigan train`` apply where nothing was set (a :class:`minigan.GAN` built by
    hand takes the optimizers and ``d_steps`` it is given).
    """

    name = "wgan-gp"
    recommended_settings = {"d_steps": 5, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9}

    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__()
        self.gp_weight = check_real(gp_weight, "gp_weight", minimum=0.0, min_inclusive=False)
        self._loss = _losses().Wasserstein()

    def discriminator_loss(self, real_scores, fake_scores, grad_real, grad_fake):
        return self._mean(self._loss, real_scores, 1.0, grad_real) + self._mean(self._loss, fake_scores, 0.0, grad_fake)

    def generator_loss(self, fake_scores, real_scores, grad_fake):
        return self._mean(self._loss, fake_scores, 1.0, grad_fake)

    def discriminator_terms(self):
        from .terms import WGANGradientPenalty

        return [WGANGradientPenalty(self.gp_weight)]

    def get_config(self):
        return {"gp_weight": self.gp_weight}


class RelativisticBCEObjective(Objective):
    """Relativistic average GAN with cross-entropy (RaSGAN; Jolicoeur-Martineau 2018,
    "The relativistic discriminator: a key element missing from standard GAN").

    D judges whether a real image is more realistic than the average fake and the
    reverse: with ``a_r = D(x_r) - mean D(x_f)`` and ``a_f = D(x_f) - mean D(x_r)``,

    ``L_D = (BCE(a_r, 1 - s) + BCE(a_f, 0)) / 2``,  ``L_G = (BCE(a_f, 1) + BCE(a_r, 0)) / 2``

    (each BCE a mean over its half). Every score enters the other half's means, so
    with ``u = dBCE/da`` per row (``(sigmoid(a) - t) / B``):
    ``dL/dD(x_r)_i = (u_r,i - sum_j u_f,j / B_r) / 2`` and
    ``dL/dD(x_f)_j = (u_f,j - sum_i u_r,i / B_f) / 2``. G's loss needs D's real scores
    too; its gradient flows only through the fakes. The logged summaries are the
    mean relativistic probabilities ``sigmoid(a_r)`` and ``sigmoid(a_f)``.
    """

    name = "rabce"
    score_kind = "probability"
    generator_uses_real_scores = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing(label_smoothing)
        self._loss = _losses().BCEWithLogits()

    def _relativistic(self, real_scores, fake_scores, real_target, fake_target, grad_real, grad_fake,
                      fake_only: bool) -> float:
        a_real = real_scores - float(fake_scores.mean(dtype=np.float64))
        a_fake = fake_scores - float(real_scores.mean(dtype=np.float64))
        u_real = np.empty_like(a_real)
        u_fake = np.empty_like(a_fake)
        loss = self._mean(self._loss, a_real, real_target, u_real) + self._mean(self._loss, a_fake, fake_target, u_fake)
        # a_f depends on every real score through its mean (and a_r on every fake score).
        np.multiply(u_fake - float(u_real.sum(dtype=np.float64)) / fake_scores.shape[0], 0.5, out=grad_fake)
        if not fake_only:
            np.multiply(u_real - float(u_fake.sum(dtype=np.float64)) / real_scores.shape[0], 0.5, out=grad_real)
        return 0.5 * loss

    def discriminator_loss(self, real_scores, fake_scores, grad_real, grad_fake):
        return self._relativistic(real_scores, fake_scores, 1.0 - self.label_smoothing, 0.0,
                                  grad_real, grad_fake, fake_only=False)

    def generator_loss(self, fake_scores, real_scores, grad_fake):
        if real_scores is None:
            raise ValueError("the rabce objective needs D's scores on the real batch for G's loss")
        return self._relativistic(real_scores, fake_scores, 0.0, 1.0, None, grad_fake, fake_only=True)

    def score_summaries(self, real_scores, fake_scores):
        a_real = real_scores - float(fake_scores.mean(dtype=np.float64))
        a_fake = fake_scores - float(real_scores.mean(dtype=np.float64))
        return float(_kernels().sigmoid_mean(a_real.reshape(-1))), float(_kernels().sigmoid_mean(a_fake.reshape(-1)))

    def get_config(self):
        return {"label_smoothing": self.label_smoothing}


#: Every objective by name: the choices of ``GAN(loss=...)``, ``--loss`` and the TOML ``loss``.
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (BCEObjective, LSGANObjective, HingeObjective, WGANObjective, RelativisticBCEObjective,
                              WGANGPObjective)
}


def objective_names() -> tuple[str, ...]:
    """The registered objective names, in registration order."""
    return tuple(OBJECTIVES)


def make_objective(loss: Any, **options: Any) -> Objective:
    """An :class:`Objective` from a name and its options (or an instance, returned as it is).

    Options an objective does not take are refused when set to anything but their
    neutral value (e.g. ``label_smoothing`` for hinge), so a setting never goes
    silently unused.
    """
    import inspect

    if isinstance(loss, Objective):
        extra = {k: v for k, v in options.items() if v is not None and v != _NEUTRAL.get(k)}
        if extra:
            raise ValueError(f"pass {sorted(extra)} to the {type(loss).__name__} you built, not to GAN()")
        return loss
    name = check_choice(loss, "loss", OBJECTIVES)
    cls = OBJECTIVES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in accepted:
            kwargs[key] = value
        elif value != _NEUTRAL.get(key):
            users = [n for n, c in OBJECTIVES.items() if key in inspect.signature(c.__init__).parameters]
            raise ValueError(f"{key}={value!r} has no meaning for loss {name!r}; it applies to "
                             f"{', '.join(users) or 'no objective'}")
    return cls(**kwargs)


#: Option values that mean "not used", which any objective accepts.
_NEUTRAL: dict[str, Any] = {"label_smoothing": 0.0}


def objective_config(objective: Objective) -> dict[str, Any]:
    """``{"name": ..., "options": ...}`` for a run's record."""
    return {"name": objective.name, "options": objective.get_config()}


def objective_from_config(config: Any) -> Objective:
    """Rebuild an objective from :func:`objective_config`'s output."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"an objective config must be a dict with a 'name', got {describe(config)}")
    return make_objective(config["name"], **config.get("options", {}))
