"""The adversarial training loop, written out plainly.

:meth:`GAN.train_step` is the whole algorithm in one method; :meth:`GAN.fit` runs
it over a data set and takes care of the run directory (config, metrics,
samples, plots, checkpoints, resume, Ctrl-C).
"""
from __future__ import annotations

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


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or inf; the last good checkpoint is left untouched."""


def _sigmoid_mean(logits: np.ndarray) -> float:
    # sigmoid(z) = (1 + tanh(z / 2)) / 2 never overflows.
    return float(np.mean(0.5 + 0.5 * np.tanh(0.5 * logits.astype(np.float64))))


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

    # ------------------------------------------------------------------
    def _noise(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        return (rng or self.rng).standard_normal((n, self.latent_dim), dtype=self.dtype)

    def _real_target(self) -> float:
        return 1.0 - self.label_smoothing if self.loss_name in ("bce", "lsgan") else 1.0

    def _score_summary(self, scores: np.ndarray) -> float:
        """Mean D probability for ``bce`` (sigmoid of the logits), mean raw score otherwise."""
        return _sigmoid_mean(scores) if self.loss_name == "bce" else float(np.mean(scores))

    def train_step(self, real_batch: np.ndarray) -> dict[str, float]:
        """One adversarial iteration on a batch of B real images in [-1, 1].

        1. Discriminator (``d_steps`` times): B fresh fakes from G; D forward and backward
           on the real batch (target 1, or ``1 - label_smoothing``) and, separately, on the
           fakes (target 0) -- separate batches keep their statistics apart; the two
           losses are averaged (each gradient weighted 1/2); one D update.
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

        # ---- 1. discriminator -------------------------------------------------
        for _ in range(self.d_steps):
            fake = G._forward(self._noise(batch))
            scores_real = self._finite_scores(D._forward(real), "the real batch")
            loss_real = self._d_loss.forward(scores_real, self._real_target())
            # GRAD_WRITE replaces D's old gradients (a zero_grad without the extra sweep) ...
            D._backward(0.5 * self._d_loss.backward(), K.GRAD_WRITE, False)
            d_real = self._score_summary(scores_real)
            scores_fake = self._finite_scores(D._forward(fake), "the fakes")
            loss_fake = self._d_loss.forward(scores_fake, 0.0)
            # ... and the fake half adds to them: d(0.5 * (L_real + L_fake)).
            D._backward(0.5 * self._d_loss.backward(), K.GRAD_ADD, False)
            d_fake = self._score_summary(scores_fake)
            self.d_optimizer.step()
            if self.loss_name == "wgan":
                for p in D.parameters():
                    K.clip_inplace(p.value.reshape(-1), self.clip_value)
        d_loss = 0.5 * (loss_real + loss_fake)

        # ---- 2. generator, through the frozen discriminator -------------------
        fake = G._forward(self._noise(batch))
        scores = self._finite_scores(D._forward(fake), "the fakes")
        g_loss = self._g_loss.forward(scores, 1.0)
        grad_fake = D._backward(self._g_loss.backward(), K.GRAD_SKIP, True)  # D frozen: no weight gradients
        G._backward(grad_fake, K.GRAD_WRITE, False)
        self.g_optimizer.step()

        self.iteration += 1
        return {"d_loss": float(d_loss), "g_loss": float(g_loss), "d_real": d_real, "d_fake": d_fake}

    def _finite_scores(self, scores: np.ndarray, what: str) -> np.ndarray:
        """Stop before the loss sees NaN/inf (its input check would raise a plain ValueError)."""
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

    # ------------------------------------------------------------------
    def sample(self, n: int, *, seed: int | None = None, noise: np.ndarray | None = None,
               batch_size: int = 1000) -> np.ndarray:
        """Generate ``n`` images with the generator in inference mode.

        Parameters
        ----------
        n : int
        seed : int, optional
            Seed of the noise (the GAN's own random stream is not touched).
        noise : ndarray (n, latent_dim), optional
            Use these noise vectors instead.

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
        G = self.generator
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
        for prefix, obj in (("G", self.generator), ("D", self.discriminator),
                            ("g_opt", self.g_optimizer), ("d_opt", self.d_optimizer)):
            for key, value in obj.state_dict().items():
                arrays[f"{prefix}/{key}"] = value
        meta = {
            "iteration": self.iteration,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "loss": self.loss_name,
            "dtype": self.dtype.name,
            "rng": self.rng.bit_generator.state,
            "layer_rngs": [g.bit_generator.state for g in _layer_generators(self)],
        }
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str = "checkpoint",
                   *, models_only: bool = False) -> None:
        """Restore what :meth:`state` returned, after checking that it fits these models.

        All or nothing: if any part does not fit, nothing changes. ``models_only`` loads
        G and D alone (enough to sample), leaving optimizers and random streams as they are.
        """
        for key, expected in (("latent_dim", self.latent_dim), ("image_shape", list(self.image_shape)),
                              ("loss", self.loss_name), ("dtype", self.dtype.name)):
            if meta.get(key) != expected:
                raise ValueError(f"{source} was made with {key}={meta.get(key)!r}, but this GAN has {key}={expected!r}")
        parts: dict[str, dict[str, np.ndarray]] = {"G": {}, "D": {}, "g_opt": {}, "d_opt": {}}
        for key, value in arrays.items():
            prefix, _, name = key.partition("/")
            if prefix in parts:
                parts[prefix][name] = value
        generators = _layer_generators(self)
        if len(generators) != len(meta.get("layer_rngs", [])):
            raise ValueError(f"{source} holds {len(meta.get('layer_rngs', []))} layer random streams, the models have {len(generators)}")
        targets = {"G": self.generator, "D": self.discriminator, "g_opt": self.g_optimizer, "d_opt": self.d_optimizer}
        if models_only:
            targets = {"G": self.generator, "D": self.discriminator}
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
