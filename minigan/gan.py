"""The adversarial training loop, written out plainly.

:meth:`GAN.train_step` is the whole algorithm in one method. What varies between
GANs plugs into it as parts: the objective (:mod:`minigan.objectives`: D's and G's
losses), extra discriminator and generator terms (:mod:`minigan.terms`: gradient
penalties, a frozen detector's score), and a condition (labels) that travels with
the real batch to conditional networks. :meth:`GAN.fit` runs the step over a data
set and takes care of the run directory (:mod:`minigan.run`).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import kernels as K
from ._validation import check_float_array, check_int, check_real, describe
from .conditional.labels import check_class_names, check_labels, default_class_names
from .errors import TrainingDiverged
from .model import Sequential
from .objectives import Objective, make_objective, objective_config
from .optim import Adam, Optimizer
from .run import train
from .settings import DEFAULTS
from .terms import DiscriminatorTerm, GeneratorTerm

#: The generator's moving average is updated every this many iterations: a sweep over
#: G's 1.49 M weights measured 0.15-0.21 ms, 2-2.5% of a step at batch 64 with 2 threads,
#: and averaging every 4th iterate (the decay raised to the 4th power) spans the same
#: window for a quarter of that.
EMA_EVERY = 4


class GAN:
    """A generator and a discriminator trained against each other.

    Parameters
    ----------
    generator : Sequential
        Maps noise (N, latent_dim) to flat images (N, prod(image_shape)).
    discriminator : Sequential
        Maps flat images to one score per image (N, 1): a logit for ``"bce"``.
    latent_dim : int
        Size of the noise vectors z ~ N(0, 1).
    loss : str or Objective
        A name from :data:`minigan.objectives.OBJECTIVES` -- ``bce`` (the article's),
        ``lsgan``, ``hinge``, ``wgan`` (weight clipping), ``rabce`` (relativistic
        average), ``wgan-gp`` (gradient penalty; it attaches its penalty term) -- or an
        :class:`~minigan.objectives.Objective` instance.
    g_optimizer, d_optimizer : Optimizer, optional
        Default: Adam with the default learning rate and betas of
        :mod:`minigan.settings` (the article's).
    d_steps : int
        Discriminator updates per generator update (each with fresh noise, same real batch).
    label_smoothing : float in [0, 0.5)
        One-sided: real targets become ``1 - label_smoothing`` (bce, lsgan, rabce).
    clip_value : float, optional
        Critic weight clipping for ``wgan`` (default: the objective's own).
    seed : int, optional
        Seeds the noise, the data order and the fixed sample noise.
    ema_decay : float in [0, 1), optional
        Keep ``generator_ema``, an exponential moving average of the generator's
        weights with per-iteration decay ``min(ema_decay, (1 + t) / (10 + t))`` at
        iteration t (the warm-up of TensorFlow's ``ExponentialMovingAverage``, so a
        short run is not dominated by the initial weights), updated after the G step
        of every ``EMA_EVERY``-th (4th) iteration; its BatchNorm statistics are the
        live generator's. :meth:`sample` uses it: averaged weights give
        markedly better digits than the last iterate (Yazici et al., "The Unusual
        Effectiveness of Averaging in GAN Training", ICLR 2019). ``None`` or 0: off.
    image_shape : tuple, optional
        Shape of one image, e.g. (28, 28); default: a square from the generator's output size.
    discriminator_terms, generator_terms : sequences of terms
        Extra loss terms (see :mod:`minigan.terms`), e.g. ``[terms.R1Penalty(10.0, every=16)]``.
        ``discriminator_terms`` afterwards also lists the objective's own terms, first.
    class_names : list of str, optional
        For a conditional GAN: the name of each class, in label order (recorded with a
        run, shown by ``minigan info`` and accepted by ``minigan sample --label NAME``).
        Default: the classes' numbers.
    """

    def __init__(
        self,
        generator: Sequential,
        discriminator: Sequential,
        *,
        latent_dim: int,
        loss: str | Objective = DEFAULTS["loss"],
        g_optimizer: Optimizer | None = None,
        d_optimizer: Optimizer | None = None,
        d_steps: int = DEFAULTS["d_steps"],
        label_smoothing: float = DEFAULTS["label_smoothing"],
        clip_value: float | None = DEFAULTS["clip_value"],
        seed: int | None = None,
        ema_decay: float | None = DEFAULTS["ema_decay"],
        image_shape: Sequence[int] | None = None,
        discriminator_terms: Iterable[DiscriminatorTerm] = (),
        generator_terms: Iterable[GeneratorTerm] = (),
        class_names: Sequence[str] | None = None,
    ) -> None:
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, Sequential):
                raise TypeError(f"{name} must be a minigan Sequential, got {describe(net)}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        g_in = generator.in_features
        if g_in is not None and g_in != self.latent_dim:
            raise ValueError(f"latent_dim must match the generator's input size {g_in}, got {self.latent_dim}")
        out_features = generator.output_features(self.latent_dim)
        d_in = discriminator.in_features
        if d_in is not None and d_in != out_features:
            raise ValueError(
                f"the discriminator takes {d_in} features but the generator produces {out_features}; "
                "build both for the same image_shape"
            )
        if discriminator.output_features(out_features) != 1:
            raise ValueError("the discriminator must output one score per image (its last layer must have 1 unit)")
        if image_shape is None:
            side = math.isqrt(out_features)
            image_shape = (side, side) if side * side == out_features else (out_features,)
        self.image_shape = tuple(int(s) for s in image_shape)
        if int(np.prod(self.image_shape)) != out_features:
            raise ValueError(f"image_shape {self.image_shape} does not hold the generator's {out_features} outputs")
        if generator.dtype != discriminator.dtype:
            raise TypeError(f"generator ({generator.dtype}) and discriminator ({discriminator.dtype}) dtypes differ")
        self.dtype = np.dtype(generator.dtype or np.float32)
        self.objective = make_objective(loss, label_smoothing=label_smoothing, clip_value=clip_value)
        self.d_steps = check_int(d_steps, "d_steps", minimum=1)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.g_optimizer = g_optimizer or Adam(generator.parameters(), lr=DEFAULTS["lr"], beta1=DEFAULTS["beta1"],
                                               beta2=DEFAULTS["beta2"])
        self.d_optimizer = d_optimizer or Adam(discriminator.parameters(), lr=DEFAULTS["lr"],
                                               beta1=DEFAULTS["beta1"], beta2=DEFAULTS["beta2"])
        #: Terms the objective brings (WGAN-GP's penalty), first; recorded with the objective, not as terms.
        self.objective_terms: list[DiscriminatorTerm] = list(self.objective.discriminator_terms())
        self.discriminator_terms = [*self.objective_terms,
                                    *_check_terms(discriminator_terms, DiscriminatorTerm, "discriminator_terms")]
        for term in self.discriminator_terms:
            term.check_discriminator(discriminator)
        self.generator_terms = _check_terms(generator_terms, GeneratorTerm, "generator_terms")
        self.num_classes = _num_classes(generator, discriminator)
        self.class_names = class_names
        self.iteration = 0
        if ema_decay is not None:
            ema_decay = check_real(ema_decay, "ema_decay", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.ema_decay = ema_decay or None
        self.generator_ema: Sequential | None = None
        if self.ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).eval()
        # D without batch statistics takes the real and fake halves in one pass (train_step).
        self._stack_d_batches = discriminator.rows_independent
        self._buffers: dict[str, np.ndarray] = {}
        self._real_cache: dict[str, Any] | None = None
        #: The ``config.json`` record of the run this GAN was loaded from (:func:`minigan.load_gan`), else None.
        self.record: dict[str, Any] | None = None

    @property
    def loss_name(self) -> str:
        """The objective's registry name."""
        return self.objective.name

    @property
    def conditional(self) -> bool:
        """True when the generator or the discriminator takes a condition (labels)."""
        return self.generator.uses_condition or self.discriminator.uses_condition

    @property
    def class_names(self) -> list[str] | None:
        """The classes' names in label order (a conditional GAN with a known number of
        classes; default their numbers), else None."""
        if self.num_classes is None:
            return None
        return self._class_names or default_class_names(self.num_classes)

    @class_names.setter
    def class_names(self, names: Sequence[str] | None) -> None:
        if names is not None and self.num_classes is None:
            raise ValueError("class_names are for a conditional GAN whose layers declare num_classes; "
                             f"this GAN's networks take no labels, got {describe(names)}")
        self._class_names = None if names is None else check_class_names(names, self.num_classes)

    @property
    def log_names(self) -> tuple[str, ...]:
        """The keys of :meth:`train_step`'s result, in order."""
        names = ["d_loss", "g_loss", "d_real", "d_fake"]
        for term in (*self.discriminator_terms, *self.generator_terms):
            names += [n for n in term.log_names if n not in names]
        return tuple(names)

    # ------------------------------------------------------------------
    def noise(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` noise vectors z ~ N(0, 1), shape (n, latent_dim), from ``rng`` (default:
        the GAN's own stream, which this advances)."""
        return (rng or self.rng).standard_normal((n, self.latent_dim), dtype=self.dtype)

    def train_step(self, real_batch: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
        """One adversarial iteration on a batch of B real images in [-1, 1].

        1. Discriminator (``d_steps`` times): B fresh fakes from G; D's scores on the
           real batch and on the fakes, as two passes (BatchNorm statistics kept apart)
           or, for a D without batch statistics, as one pass of 2B rows (the same
           arithmetic with larger matrix products); the objective's loss and its
           gradient with respect to every score; D's backward writes its gradients;
           each extra discriminator term that is due adds its own; one D update; the
           objective's after-step action (the critic clipping of ``wgan``).
        2. Generator: B fresh noise vectors through G and D; the objective's G loss
           (D's scores on the real batch too, for relativistic objectives). D is
           frozen: its backward only propagates to the fakes (``GRAD_SKIP``) and its
           weights are not updated. Each extra generator term adds its gradient with
           respect to the fakes; G's backward; one G update; the moving average.

        The labels of a conditional GAN (one per real image) go with the batch to every
        network that takes a condition: the fakes of both steps are generated for the
        batch's labels.

        Parameters
        ----------
        real_batch : ndarray (B, *image_shape) or (B, prod(image_shape)), the models' dtype
        labels : ndarray (B,) of int, optional
            Required when a network is conditional, refused otherwise.

        Returns
        -------
        dict with ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (the objective's
        summaries of D's scores on the real batch and on the fakes of the last D step:
        mean probabilities for ``bce``), and the values the extra terms log.
        """
        real = self._flat_batch(real_batch, "real_batch")
        self._check_labels(labels, real.shape[0])
        condition = labels  # what the networks' conditional layers receive
        batch = real.shape[0]
        G, D, objective = self.generator, self.discriminator, self.objective
        logs: dict[str, float] = {}

        # ---- 1. discriminator -------------------------------------------------
        for step in range(self.d_steps):
            fake = G.forward_unchecked(self.noise(batch), condition)
            real_scores, fake_scores = self._discriminate(real, fake, condition)
            grad_real, grad_fake = self._score_gradients(batch)
            d_loss = objective.discriminator_loss(real_scores, fake_scores, grad_real, grad_fake)
            self._backpropagate_discriminator(grad_real, grad_fake)  # writes D's gradients
            d_update = self.iteration * self.d_steps + step + 1  # D updates so far, this one included
            for term in self.discriminator_terms:
                if d_update % term.every == 0:
                    logs.update(term.add_gradients(D, real, fake, condition, self.rng))
            self.d_optimizer.step()
            objective.after_discriminator_step(D)
        d_real, d_fake = objective.score_summaries(real_scores, fake_scores)

        # ---- 2. generator, through the frozen discriminator -------------------
        real_scores = D.forward_unchecked(real, condition) if objective.generator_uses_real_scores else None
        fake = G.forward_unchecked(self.noise(batch), condition)
        fake_scores = self._finite_scores(D.forward_unchecked(fake, condition), "the fakes")
        grad_scores = self._buffer("generator_scores", fake_scores.shape)
        g_loss = objective.generator_loss(fake_scores, real_scores, grad_scores)
        grad_fake = D.backward_unchecked(grad_scores, K.GRAD_SKIP, True)  # D frozen: no weight gradients
        for term in self.generator_terms:
            logs.update(term.add_image_gradient(fake, condition, grad_fake))
        G.backward_unchecked(grad_fake, K.GRAD_WRITE, False)
        self.g_optimizer.step()
        self._update_ema()

        self.iteration += 1
        return {"d_loss": float(d_loss), "g_loss": float(g_loss), "d_real": d_real, "d_fake": d_fake, **logs}

    # -- the discriminator's two halves -------------------------------------------
    def _discriminate(self, real: np.ndarray, fake: np.ndarray,
                      condition: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """D's scores on the real batch and on the fakes, with what its backward needs kept.

        A D without batch statistics gets ``[real; fakes]`` as one pass of 2B rows (one
        backward later); otherwise two passes, the first pass's cache set aside for
        :meth:`_backpropagate_discriminator`.
        """
        D, batch = self.discriminator, real.shape[0]
        if self._stack_d_batches:
            stacked_condition = None if condition is None else self._stack("condition", condition, condition)
            scores = D.forward_unchecked(self._stack("images", real, fake), stacked_condition)
            scores = self._finite_scores(scores, "the real batch and the fakes")
            return scores[:batch], scores[batch:]
        real_scores = self._finite_scores(D.forward_unchecked(real, condition), "the real batch")
        self._real_cache = D.cache_state()
        fake_scores = self._finite_scores(D.forward_unchecked(fake, condition), "the fakes")
        return real_scores, fake_scores

    def _score_gradients(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of one (2B, 1) buffer for d loss / d scores of the two halves."""
        grad = self._buffer("discriminator_scores", (2 * batch, 1))
        return grad[:batch], grad[batch:]

    def _backpropagate_discriminator(self, grad_real: np.ndarray, grad_fake: np.ndarray) -> None:
        """D's backward of both halves; the parameter gradients are *written* (replacing the
        last step's, a zero_grad without the extra sweep)."""
        D = self.discriminator
        if self._stack_d_batches:
            D.backward_unchecked(self._buffers["discriminator_scores"], K.GRAD_WRITE, False)
            return
        D.backward_unchecked(grad_fake, K.GRAD_WRITE, False)  # the cache holds the fake pass
        D.restore_cache(self._real_cache)
        D.backward_unchecked(grad_real, K.GRAD_ADD, False)  # a + b == b + a: the order does not matter
        self._real_cache = None

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A work array reused across steps (whoever reads it is done before it is refilled)."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape:
            buffer = self._buffers[name] = np.empty(shape, dtype=self.dtype)
        return buffer

    def _stack(self, name: str, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``[first; second]`` in a reused buffer (D's backward is done with the previous
        one before this overwrites it)."""
        shape = (first.shape[0] + second.shape[0], *first.shape[1:])
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != first.dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=first.dtype)
        buffer[:first.shape[0]] = first
        buffer[first.shape[0]:] = second
        return buffer

    def _update_ema(self) -> None:
        """Every ``EMA_EVERY`` iterations, move ``generator_ema`` towards the generator
        (weights averaged with the per-iteration decay raised to ``EMA_EVERY``, BatchNorm
        statistics copied); see ``ema_decay``."""
        t = self.iteration + 1  # iterations done, this one included
        if self.generator_ema is None or t % EMA_EVERY:
            return
        decay = min(self.ema_decay, (1.0 + t) / (10.0 + t)) ** EMA_EVERY
        for average, live in zip(self.generator_ema.layers, self.generator.layers):
            for name, value in live.params.items():
                K.ema_update(average.params[name].reshape(-1), value.reshape(-1), decay)
            for name, value in live.buffers.items():
                average.buffers[name][...] = value

    def _finite_scores(self, scores: np.ndarray, what: str) -> np.ndarray:
        """Stop before the objective sees NaN/inf."""
        if not K.all_finite(scores.reshape(-1)):
            raise TrainingDiverged(f"the discriminator's output on {what} became NaN or inf at iteration "
                                   f"{self.iteration + 1}")
        return scores

    def _flat_batch(self, batch: Any, name: str) -> np.ndarray:
        batch = check_float_array(batch, name, dtype=self.dtype)
        size = int(np.prod(self.image_shape))
        if batch.ndim < 2 or int(np.prod(batch.shape[1:])) != size:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, self.image_shape))}), got {batch.shape}")
        if batch.shape[0] < 2:
            raise ValueError(f"{name} must hold at least 2 images (BatchNorm needs a batch), got {batch.shape[0]}")
        if batch.min() < -1.0 - 1e-6 or batch.max() > 1.0 + 1e-6:
            raise ValueError(
                f"{name} must hold pixels in [-1, 1], got values from {batch.min():.3g} to {batch.max():.3g}; "
                "scale uint8 images with minigan.datasets.to_tanh_range"
            )
        return batch.reshape(batch.shape[0], size)

    def _check_labels(self, labels: Any, n: int, name: str = "labels") -> None:
        if labels is None and self.conditional:
            raise ValueError(f"this GAN is conditional: pass {name}= (one label per image)")
        if labels is not None and not self.conditional:
            raise ValueError(f"this GAN's networks take no labels (no conditional layer), got {describe(labels)}")
        for net in (self.generator, self.discriminator):
            if net.uses_condition:
                net.check_condition(labels, n, name)

    def _sample_labels(self, labels: Any, n: int) -> np.ndarray | None:
        """``labels`` for :meth:`sample`: one class (an int) for all ``n`` images, or one per image."""
        if labels is None:
            return None
        if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):
            labels = np.full(n, int(labels), dtype=np.int64)
        return check_labels(labels, n, self.num_classes, name="labels")

    # ------------------------------------------------------------------
    def sample(self, n: int, *, seed: int | None = None, noise: np.ndarray | None = None,
               labels: np.ndarray | None = None, batch_size: int = 1000, ema: bool = True) -> np.ndarray:
        """Generate ``n`` images with the generator in inference mode.

        Parameters
        ----------
        n : int
        seed : int, optional
            Seed of the noise (the GAN's own random stream is not touched).
        noise : ndarray (n, latent_dim), optional
            Use these noise vectors instead.
        labels : int or ndarray (n,) of int, optional
            The classes to generate, for a conditional generator: one class for every
            image, or one per image (:func:`minigan.conditional.even_labels` spreads
            ``n`` images evenly over the classes).
        ema : bool
            Use ``generator_ema`` (the moving average of G's weights) when the GAN keeps
            one (the default); ``False``: the live generator.

        Returns
        -------
        ndarray (n, *image_shape), the models' dtype, values in the generator's output range.
        """
        n = check_int(n, "n", minimum=1)
        if noise is None:
            noise = self.noise(n, np.random.default_rng(seed))
        else:
            noise = check_float_array(noise, "noise", ndim=2, dtype=self.dtype)
            if noise.shape != (n, self.latent_dim):
                raise ValueError(f"noise must have shape ({n}, {self.latent_dim}), got {noise.shape}")
        if not isinstance(ema, (bool, np.bool_)):
            raise TypeError(f"ema must be True or False, got {describe(ema)}")
        G = self.generator_ema if ema and self.generator_ema is not None else self.generator
        if self.conditional:
            labels = self._sample_labels(labels, n)
        if G.uses_condition or labels is not None:
            G.check_condition(labels, n, "labels")
        was_training = G.training
        G.eval()
        try:
            chunks = [G.forward_unchecked(noise[i:i + batch_size],
                                          None if labels is None else labels[i:i + batch_size]).copy()
                      for i in range(0, n, batch_size)]
        finally:
            if was_training:
                G.train()
        return np.concatenate(chunks).reshape((n, *self.image_shape))

    def latent_walk(self, walks: int, steps: int, *, seed: int | None = None,
                    labels: np.ndarray | None = None, ema: bool = True) -> np.ndarray:
        """Images along ``walks`` paths in the noise space, ``steps`` images each.

        Each path runs from one random noise vector to another along the great circle
        between them (spherical interpolation, "slerp": White 2016, "Sampling Generative
        Networks"), which keeps every point at the typical norm of a Gaussian vector;
        straight lines would pass through the low-norm middle that G rarely sees.

        Parameters
        ----------
        walks, steps : int
            Number of paths and images per path (``steps >= 2``: the two ends included).
        seed : int, optional
            Seed of the end points.
        labels : int or ndarray (walks,) of int, optional
            One class for every path, or one per path, for a conditional generator.

        Returns
        -------
        ndarray (walks, steps, *image_shape)
        """
        walks = check_int(walks, "walks", minimum=1)
        steps = check_int(steps, "steps", minimum=2)
        rng = np.random.default_rng(seed)
        start, end = self.noise(walks, rng).astype(np.float64), self.noise(walks, rng).astype(np.float64)
        cosine = np.sum(start * end, axis=1) / (np.linalg.norm(start, axis=1) * np.linalg.norm(end, axis=1))
        angle = np.arccos(np.clip(cosine, -1.0, 1.0))[:, None, None]
        t = np.linspace(0.0, 1.0, steps)[None, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            slerp = (np.sin((1 - t) * angle) * start[:, None] + np.sin(t * angle) * end[:, None]) / np.sin(angle)
        lerp = (1 - t) * start[:, None] + t * end[:, None]  # where the ends (nearly) coincide
        path = np.where(angle > 1e-6, slerp, lerp).reshape(walks * steps, self.latent_dim).astype(self.dtype)
        if self.conditional:
            labels = self._sample_labels(labels, walks)
        per_image = None if labels is None else np.repeat(np.asarray(labels), steps)
        images = self.sample(walks * steps, noise=path, labels=per_image, ema=ema)
        return images.reshape((walks, steps, *self.image_shape))

    # ------------------------------------------------------------------
    def fit(
        self,
        data: np.ndarray,
        *,
        labels: np.ndarray | None = None,
        iterations: int | None = None,
        epochs: int | None = None,
        batch_size: int = DEFAULTS["batch_size"],
        out_dir: str | Path | None = None,
        sample_every: int = DEFAULTS["sample_every"],
        checkpoint_every: int = DEFAULTS["checkpoint_every"],
        eval_every: int = DEFAULTS["eval_every"],
        resume: bool = False,
        progress: bool = True,
        callbacks: Iterable[Callable[["GAN", int, dict], Any]] = (),
        config: dict | None = None,
    ) -> Any:
        """Train on ``data`` for ``iterations`` (or ``epochs``) iterations of ``train_step``.

        Parameters
        ----------
        data : ndarray (n, *image_shape)
            uint8 pixels (scaled to [-1, 1] here) or floats already in [-1, 1].
        labels : ndarray (n,) of int, optional
            One label per image: the condition of a conditional GAN.
        iterations, epochs : int
            How long to train: give one. An epoch is ``n // batch_size`` iterations
            (the last partial batch is dropped: BatchNorm wants full batches).
        batch_size : int
        out_dir : path, optional
            Run directory: ``config.json``, ``metrics.csv``, ``samples/*.png``, ``losses.png``,
            ``progress.gif``, ``checkpoint.npz``. Without it nothing is written. The run
            records how the networks were built, so ``minigan sample | evaluate | info``
            and :func:`minigan.load_gan` read it (see :func:`minigan.run.describe_gan`).
        sample_every, checkpoint_every : int
            Every how many iterations to write a fixed-noise sample grid / a checkpoint
            (0: only at the end). Both are also written at the end and on Ctrl-C/SIGTERM.
        eval_every : int
            Every how many iterations to log the built-in quality numbers (classifier FID,
            classes covered, mean confidence) into ``metrics.csv`` (0: never).
        resume : bool
            Continue from ``out_dir/checkpoint.npz``; the result is bit-identical to an
            uninterrupted run with the same settings. The run's settings, batch size
            and data must match the recorded ones (an error says what differs).
        progress : bool
            Show a tqdm progress bar.
        callbacks : iterable of callables ``f(gan, iteration, logs)``
            Called after every iteration.
        config : dict, optional
            Extra JSON-compatible settings to record in ``config.json`` (the command
            line records its options here).

        Returns
        -------
        minigan.run.TrainingResult with the metrics history, whether the run was
        interrupted, and paths.
        """
        return train(
            self, data, labels=labels, iterations=iterations, epochs=epochs, batch_size=batch_size,
            out_dir=out_dir, sample_every=sample_every, checkpoint_every=checkpoint_every, eval_every=eval_every,
            resume=resume, progress=progress, callbacks=callbacks, config=config,
        )

    # ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything that defines this GAN, as JSON-compatible values: the objective, the
        optimizers, the loop's settings and the extra terms (the networks are described by
        :meth:`Sequential.get_config`). Resume compares it with the run's record."""
        return {
            "objective": objective_config(self.objective),
            "g_optimizer": self.g_optimizer.get_config(),
            "d_optimizer": self.d_optimizer.get_config(),
            "d_steps": self.d_steps,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "dtype": self.dtype.name,
            "discriminator_terms": [term_config(t) for t in self.discriminator_terms
                                    if not any(t is own for own in self.objective_terms)],
            "generator_terms": [term_config(t) for t in self.generator_terms],
        }

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything needed to continue training: arrays and JSON metadata."""
        arrays: dict[str, np.ndarray] = {}
        for prefix, obj in self._stateful_parts().items():
            for key, value in obj.state_dict().items():
                arrays[f"{prefix}/{key}"] = value
        meta = {
            "iteration": self.iteration,
            "ema_decay": self.ema_decay,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "loss": self.loss_name,
            "dtype": self.dtype.name,
            "rng": self.rng.bit_generator.state,
            "layer_rngs": [g.bit_generator.state for g in _layer_generators(self)],
        }
        return arrays, meta

    def _stateful_parts(self) -> dict[str, Any]:
        """What a checkpoint holds, by key prefix: the models, the average, the optimizers."""
        parts: dict[str, Any] = {"G": self.generator, "D": self.discriminator}
        if self.generator_ema is not None:
            parts["G_ema"] = self.generator_ema
        parts.update({"g_opt": self.g_optimizer, "d_opt": self.d_optimizer})
        return parts

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str = "checkpoint",
                   *, models_only: bool = False) -> None:
        """Restore what :meth:`state` returned, after checking that it fits these models.

        All or nothing: if any part does not fit, nothing changes. ``models_only`` loads
        G, D and the average alone (enough to sample), leaving optimizers and random
        streams as they are. A checkpoint without an average (``ema_decay=None``) starts
        this GAN's average from its generator.
        """
        for key, expected in (("latent_dim", self.latent_dim), ("image_shape", list(self.image_shape)),
                              ("loss", self.loss_name), ("dtype", self.dtype.name)):
            if meta.get(key) != expected:
                raise ValueError(f"{source} was made with {key}={meta.get(key)!r}, but this GAN has {key}={expected!r}")
        targets = self._stateful_parts()
        if models_only:
            targets = {prefix: targets[prefix] for prefix in ("G", "D", "G_ema") if prefix in targets}
        parts: dict[str, dict[str, np.ndarray]] = {prefix: {} for prefix in targets}
        for key, value in arrays.items():
            prefix, _, name = key.partition("/")
            if prefix in parts:
                parts[prefix][name] = value
        if "G_ema" in parts and not parts["G_ema"]:
            # A checkpoint without an average (trained with ema_decay=None, or older):
            # the average starts from the generator it holds.
            parts["G_ema"] = parts["G"]
        generators = _layer_generators(self)
        if len(generators) != len(meta.get("layer_rngs", [])):
            raise ValueError(f"{source} holds {len(meta.get('layer_rngs', []))} layer random streams, the models have {len(generators)}")
        backup = {prefix: obj.state_dict() for prefix, obj in targets.items()}
        try:
            for prefix, obj in targets.items():
                obj.load_state_dict(parts[prefix])
        except (ValueError, TypeError) as exc:
            for prefix, obj in targets.items():  # all or nothing: undo the parts already loaded
                obj.load_state_dict(backup[prefix])
            raise ValueError(f"{source} does not fit this GAN's models: {exc}") from None
        self.iteration = int(meta["iteration"])
        if models_only:
            return
        self.rng.bit_generator.state = meta["rng"]
        for g, s in zip(generators, meta["layer_rngs"]):
            g.bit_generator.state = s

    def checkpoint_nbytes(self) -> int:
        """Bytes of the arrays a checkpoint holds: the networks, the average and the
        optimizers' states (what :meth:`state` would copy, counted without copying)."""
        total = 0
        for part in self._stateful_parts().values():
            if isinstance(part, Sequential):
                total += sum(a.nbytes for a in (*part.params.values(), *part.buffers.values()))
            else:
                total += sum(a.nbytes for arrays in part._state_arrays().values() for a in arrays)
        return total

    def weights_finite(self) -> bool:
        """True when no parameter of G or D is NaN or inf."""
        return all(K.all_finite(p.value.reshape(-1))
                   for net in (self.generator, self.discriminator) for p in net.parameters())


def _num_classes(generator: Sequential, discriminator: Sequential) -> int | None:
    """The number of classes the networks' conditional layers declare (``num_classes``),
    checked to agree; None when none declares one."""
    found = {}
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        counts = {int(layer.num_classes) for layer in net.layers
                  if layer.uses_condition and isinstance(getattr(layer, "num_classes", None), (int, np.integer))}
        if len(counts) > 1:
            raise ValueError(f"the {name}'s conditional layers take different numbers of classes: {sorted(counts)}")
        if counts:
            found[name] = counts.pop()
    if len(set(found.values())) > 1:
        raise ValueError(f"the generator takes {found['generator']} classes but the discriminator "
                         f"{found['discriminator']}; build both for the same number of classes")
    return next(iter(found.values()), None)


def _check_terms(terms: Iterable[Any], kind: type, name: str) -> list[Any]:
    if isinstance(terms, (str, bytes)) or not hasattr(terms, "__iter__"):
        raise TypeError(f"{name} must be a list of {kind.__name__} objects, got {describe(terms)}")
    checked = list(terms)
    for i, term in enumerate(checked):
        if not isinstance(term, kind):
            raise TypeError(f"{name}[{i}] must be a minigan.terms.{kind.__name__}, got {describe(term)}")
    return checked


def _layer_generators(gan: GAN) -> list[np.random.Generator]:
    """Random streams owned by layers (Dropout masks), in a fixed order."""
    found = []
    for net in (gan.generator, gan.discriminator):
        for layer in net.layers:
            rng = getattr(layer, "rng", None)
            if isinstance(rng, np.random.Generator):
                found.append(rng)
    return found


def term_config(term: Any) -> dict[str, Any]:
    """``{"class": name, "config": term.get_config()}`` for a run's record."""
    return {"class": type(term).__name__, "config": term.get_config()}
