"""The adversarial training loop, written out plainly.

:meth:`GAN.train_step` is the whole algorithm in one method; :meth:`GAN.fit` runs
it over a data set and takes care of the run directory (config, metrics,
samples, plots, checkpoints, resume, Ctrl-C).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import kernels as K
from ._validation import check_choice, check_float_array, check_int, check_real, describe
from .losses import BCEWithLogits, Hinge, MSE, Wasserstein
from .model import Sequential
from .optim import Adam, Optimizer

GAN_LOSSES = ("bce", "lsgan", "hinge", "wgan")
#: The generator's moving average is updated every this many iterations: a sweep over
#: G's 1.49 M weights measured 0.15-0.21 ms, 2-2.5% of a step at batch 64 with 2 threads,
#: and averaging every 4th iterate (the decay raised to the 4th power) spans the same
#: window for a quarter of that.
EMA_EVERY = 4


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or inf; the last good checkpoint is left untouched."""


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
    loss : {"bce", "lsgan", "hinge", "wgan"}
        ``bce``: cross-entropy on logits, non-saturating generator loss (the article's).
        ``lsgan``: least squares on D's raw output (targets 1 / 0).
        ``hinge``: hinge loss for D, ``-mean(D(G(z)))`` for G.
        ``wgan``: Wasserstein critic with weight clipping to ``[-clip_value, clip_value]``.
    g_optimizer, d_optimizer : Optimizer, optional
        Default: ``Adam(lr=2e-4, beta1=0.5, beta2=0.999)`` for each, as the article.
    d_steps : int
        Discriminator updates per generator update (each with fresh noise, same real batch).
    label_smoothing : float in [0, 0.5)
        One-sided: real targets become ``1 - label_smoothing`` (``bce``/``lsgan``).
    clip_value : float
        Critic weight clipping for ``wgan``.
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
    """

    def __init__(
        self,
        generator: Sequential,
        discriminator: Sequential,
        *,
        latent_dim: int,
        loss: str = "bce",
        g_optimizer: Optimizer | None = None,
        d_optimizer: Optimizer | None = None,
        d_steps: int = 1,
        label_smoothing: float = 0.0,
        clip_value: float = 0.01,
        seed: int | None = None,
        ema_decay: float | None = 0.999,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, Sequential):
                raise TypeError(f"{name} must be a minigan Sequential, got {describe(net)}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        g_in = generator._in_features
        if g_in is not None and g_in != self.latent_dim:
            raise ValueError(f"latent_dim must match the generator's input size {g_in}, got {self.latent_dim}")
        out_features = generator.output_features(self.latent_dim)
        d_in = discriminator._in_features
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
        self.loss_name = check_choice(loss, "loss", GAN_LOSSES)
        self.d_steps = check_int(d_steps, "d_steps", minimum=1)
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", minimum=0.0, maximum=0.5, max_inclusive=False)
        self.clip_value = check_real(clip_value, "clip_value", minimum=0.0, min_inclusive=False)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.g_optimizer = g_optimizer or Adam(generator.parameters(), lr=2e-4, beta1=0.5, beta2=0.999)
        self.d_optimizer = d_optimizer or Adam(discriminator.parameters(), lr=2e-4, beta1=0.5, beta2=0.999)
        self._d_loss = {"bce": BCEWithLogits, "lsgan": MSE, "hinge": Hinge, "wgan": Wasserstein}[self.loss_name]()
        # hinge and wgan train G on -mean(D(G(z))), which is the Wasserstein loss with target 1.
        self._g_loss = {"bce": BCEWithLogits, "lsgan": MSE, "hinge": Wasserstein, "wgan": Wasserstein}[self.loss_name]()
        self.iteration = 0
        self._target_cache: dict[str, Any] = {}
        if ema_decay is not None:
            ema_decay = check_real(ema_decay, "ema_decay", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.ema_decay = ema_decay or None
        self.generator_ema: Sequential | None = None
        if self.ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).eval()
        # D without batch statistics takes the real and fake halves in one pass (train_step).
        self._stack_d_batches = discriminator._all_rows_independent()
        self._stack_buffer: np.ndarray | None = None

    # ------------------------------------------------------------------
    def _noise(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        return (rng or self.rng).standard_normal((n, self.latent_dim), dtype=self.dtype)

    def _real_target(self) -> float:
        return 1.0 - self.label_smoothing if self.loss_name in ("bce", "lsgan") else 1.0

    def _score_summary(self, scores: np.ndarray) -> float:
        """Mean D probability for ``bce`` (sigmoid of the logits), mean raw score otherwise."""
        return float(K.sigmoid_mean(scores.reshape(-1))) if self.loss_name == "bce" else float(np.mean(scores))

    def train_step(self, real_batch: np.ndarray) -> dict[str, float]:
        """One adversarial iteration on a batch of B real images in [-1, 1].

        1. Discriminator (``d_steps`` times): B fresh fakes from G; D forward and backward
           on the real batch (target 1, or ``1 - label_smoothing``) and, separately, on the
           fakes (target 0) -- separate batches keep BatchNorm statistics apart; the two
           losses are averaged (each gradient weighted 1/2); one D update. A D without
           batch statistics (only Dense, activations, Dropout) gets both halves in one
           pass of 2B rows: the same arithmetic with larger matrix products.
        2. Generator: B fresh noise vectors through G and D; the loss wants D to call the
           fakes real (target 1, the non-saturating loss). D is frozen: its backward only
           propagates to its input (``GRAD_SKIP``) and its weights are not updated.
           One G update.

        Parameters
        ----------
        real_batch : ndarray (B, *image_shape) or (B, prod(image_shape)), the models' dtype

        Returns
        -------
        dict with ``d_loss``, ``g_loss``, ``d_real`` (mean D output on real: a probability
        for ``bce``), ``d_fake`` (the same on the fakes of the D step).
        """
        real = self._flat_batch(real_batch, "real_batch")
        batch = real.shape[0]
        G, D = self.generator, self.discriminator
        targets = self._targets(batch)

        # ---- 1. discriminator -------------------------------------------------
        for _ in range(self.d_steps):
            fake = G._forward(self._noise(batch))
            if self._stack_d_batches:
                # D has no batch statistics, so one pass over the 2B rows [real; fakes] is
                # the arithmetic of two separate passes with larger matrix products: its
                # mean loss over 2B rows is 0.5 * (L_real + L_fake).
                scores = self._finite_scores(D._forward(self._stack(real, fake)), "the real batch and the fakes")
                d_loss = self._d_loss._forward(scores, targets["real_and_fake"])
                D._backward(self._d_loss.backward(), K.GRAD_WRITE, False)  # replaces old gradients
                d_real, d_fake = self._score_summary(scores[:batch]), self._score_summary(scores[batch:])
            else:
                scores_real = self._finite_scores(D._forward(real), "the real batch")
                loss_real = self._d_loss._forward(scores_real, targets["real"])
                # GRAD_WRITE replaces D's old gradients (a zero_grad without the extra sweep) ...
                D._backward(0.5 * self._d_loss.backward(), K.GRAD_WRITE, False)
                d_real = self._score_summary(scores_real)
                scores_fake = self._finite_scores(D._forward(fake), "the fakes")
                loss_fake = self._d_loss._forward(scores_fake, targets["fake"])
                # ... and the fake half adds to them: d(0.5 * (L_real + L_fake)).
                D._backward(0.5 * self._d_loss.backward(), K.GRAD_ADD, False)
                d_fake = self._score_summary(scores_fake)
                d_loss = 0.5 * (loss_real + loss_fake)
            self.d_optimizer.step()
            if self.loss_name == "wgan":
                for p in D.parameters():
                    K.clip_inplace(p.value.reshape(-1), self.clip_value)

        # ---- 2. generator, through the frozen discriminator -------------------
        fake = G._forward(self._noise(batch))
        scores = self._finite_scores(D._forward(fake), "the fakes")
        g_loss = self._g_loss._forward(scores, targets["generator"])
        grad_fake = D._backward(self._g_loss.backward(), K.GRAD_SKIP, True)  # D frozen: no weight gradients
        G._backward(grad_fake, K.GRAD_WRITE, False)
        self.g_optimizer.step()
        self._update_ema()

        self.iteration += 1
        return {"d_loss": float(d_loss), "g_loss": float(g_loss), "d_real": d_real, "d_fake": d_fake}

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
        """Stop before the loss sees NaN/inf (its input check would raise a plain ValueError)."""
        if not K.all_finite(scores.reshape(-1)):
            raise TrainingDiverged(f"the discriminator's output on {what} became NaN or inf at iteration "
                                   f"{self.iteration + 1}")
        return scores

    def _targets(self, batch: int) -> dict[str, np.ndarray]:
        """The loss targets for a batch of ``batch`` rows (built once per batch size):
        ``real`` (1, or 1 - label_smoothing), ``fake`` (0), ``real_and_fake`` (both
        stacked) and ``generator`` (1, the non-saturating target)."""
        key = (batch, self._real_target(), self.dtype)
        if self._target_cache.get("key") != key:
            def column(value: float) -> np.ndarray:
                return np.full((batch, 1), value, dtype=self.dtype)
            real, fake = column(self._real_target()), column(0.0)
            self._target_cache = {"key": key, "real": real, "fake": fake,
                                  "real_and_fake": np.concatenate([real, fake]), "generator": column(1.0)}
        return self._target_cache

    def _stack(self, real: np.ndarray, fake: np.ndarray) -> np.ndarray:
        """``[real; fake]`` in a buffer reused across steps (D's backward is done with the
        previous one before this overwrites it)."""
        shape = (real.shape[0] + fake.shape[0], real.shape[1])
        if self._stack_buffer is None or self._stack_buffer.shape != shape:
            self._stack_buffer = np.empty(shape, dtype=self.dtype)
        self._stack_buffer[:real.shape[0]] = real
        self._stack_buffer[real.shape[0]:] = fake
        return self._stack_buffer

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

    # ------------------------------------------------------------------
    def sample(self, n: int, *, seed: int | None = None, noise: np.ndarray | None = None,
               batch_size: int = 1000, ema: bool = True) -> np.ndarray:
        """Generate ``n`` images with the generator in inference mode.

        Parameters
        ----------
        n : int
        seed : int, optional
            Seed of the noise (the GAN's own random stream is not touched).
        noise : ndarray (n, latent_dim), optional
            Use these noise vectors instead.
        ema : bool
            Use ``generator_ema`` (the moving average of G's weights) when the GAN keeps
            one (the default); ``False``: the live generator.

        Returns
        -------
        ndarray (n, *image_shape), the models' dtype, values in the generator's output range.
        """
        n = check_int(n, "n", minimum=1)
        if noise is None:
            noise = self._noise(n, np.random.default_rng(seed))
        else:
            noise = check_float_array(noise, "noise", ndim=2, dtype=self.dtype)
            if noise.shape != (n, self.latent_dim):
                raise ValueError(f"noise must have shape ({n}, {self.latent_dim}), got {noise.shape}")
        if not isinstance(ema, (bool, np.bool_)):
            raise TypeError(f"ema must be True or False, got {describe(ema)}")
        G = self.generator_ema if ema and self.generator_ema is not None else self.generator
        was_training = G.training
        G.eval()
        try:
            chunks = [G._forward(noise[i:i + batch_size]).copy() for i in range(0, n, batch_size)]
        finally:
            if was_training:
                G.train()
        return np.concatenate(chunks).reshape((n, *self.image_shape))

    # ------------------------------------------------------------------
    def fit(
        self,
        data: np.ndarray,
        *,
        iterations: int | None = None,
        epochs: int | None = None,
        batch_size: int = 64,
        out_dir: str | Path | None = None,
        sample_every: int = 500,
        checkpoint_every: int = 1000,
        eval_every: int = 0,
        resume: bool = False,
        progress: bool = True,
        callbacks: Iterable[Callable[["GAN", int, dict], Any]] = (),
        config: dict | None = None,
    ) -> "TrainingResult":
        """Train on ``data`` for ``iterations`` (or ``epochs``) iterations of ``train_step``.

        Parameters
        ----------
        data : ndarray (n, *image_shape)
            uint8 pixels (scaled to [-1, 1] here) or floats already in [-1, 1].
        iterations, epochs : int
            How long to train: give one. An epoch is ``n // batch_size`` iterations
            (the last partial batch is dropped: BatchNorm wants full batches).
        batch_size : int
        out_dir : path, optional
            Run directory: ``config.json``, ``metrics.csv``, ``samples/*.png``, ``losses.png``,
            ``progress.gif``, ``checkpoint.npz``. Without it nothing is written.
        sample_every, checkpoint_every : int
            Every how many iterations to write a fixed-noise sample grid / a checkpoint
            (0: only at the end). Both are also written at the end and on Ctrl-C/SIGTERM.
        eval_every : int
            Every how many iterations to log the built-in quality numbers (classifier FID,
            classes covered, mean confidence) into ``metrics.csv`` (0: never).
        resume : bool
            Continue from ``out_dir/checkpoint.npz``; the result is bit-identical to an
            uninterrupted run with the same settings.
        progress : bool
            Show a tqdm progress bar.
        callbacks : iterable of callables ``f(gan, iteration, logs)``
            Called after every iteration.

        Returns
        -------
        TrainingResult with the metrics history, whether the run was interrupted, and paths.
        """
        from .run import train  # the run-directory machinery lives beside the loop

        return train(
            self, data, iterations=iterations, epochs=epochs, batch_size=batch_size, out_dir=out_dir,
            sample_every=sample_every, checkpoint_every=checkpoint_every, eval_every=eval_every, resume=resume,
            progress=progress, callbacks=callbacks, config=config,
        )

    # ------------------------------------------------------------------
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

    def weights_finite(self) -> bool:
        """True when no parameter of G or D is NaN or inf."""
        return all(K.all_finite(p.value.reshape(-1))
                   for net in (self.generator, self.discriminator) for p in net.parameters())


def _layer_generators(gan: GAN) -> list[np.random.Generator]:
    """Random streams owned by layers (Dropout masks), in a fixed order."""
    found = []
    for net in (gan.generator, gan.discriminator):
        for layer in net.layers:
            rng = getattr(layer, "rng", None)
            if isinstance(rng, np.random.Generator):
                found.append(rng)
    return found


class TrainingResult:
    """What :meth:`GAN.fit` returns: ``history`` (dict of metric -> list), ``interrupted``
    (the signal name if Ctrl-C/SIGTERM stopped the run, else None), ``iteration`` reached,
    ``out_dir``, and ``seconds`` of training."""

    def __init__(self, history: dict[str, list[float]], iteration: int, interrupted: str | None,
                 out_dir: Path | None, seconds: float) -> None:
        self.history = history
        self.iteration = iteration
        self.interrupted = interrupted
        self.out_dir = out_dir
        self.seconds = seconds

    def __repr__(self) -> str:
        state = f"interrupted by {self.interrupted}" if self.interrupted else "finished"
        return f"TrainingResult(iteration={self.iteration}, {state}, seconds={self.seconds:.1f})"
