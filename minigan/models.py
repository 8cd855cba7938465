"""Ready-made generators and discriminators.

``reference_generator`` / ``reference_discriminator`` are the article's dense
MNIST GAN exactly as GUIDE.md section 1 gives it (Keras-GAN's ``gan/gan.py``):

* generator: z (100) -> Dense 256 -> LeakyReLU(0.2) -> BatchNorm(momentum 0.8)
  -> Dense 512 -> LeakyReLU(0.2) -> BatchNorm(0.8) -> Dense 1024 -> LeakyReLU(0.2)
  -> BatchNorm(0.8) -> Dense 784 -> tanh
* discriminator: 784 -> Dense 512 -> LeakyReLU(0.2) -> Dense 256 -> LeakyReLU(0.2)
  -> Dense 1, which outputs a *logit*: the loss applies the sigmoid (numerically
  stable, see :class:`minigan.losses.BCEWithLogits`).

Keras defaults are kept where the article relies on them: glorot-uniform weights,
zero biases, BatchNorm ``eps=1e-3`` with Keras' meaning of ``momentum``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._validation import check_choice, check_int, check_real, check_rng
from .layers import BatchNorm, Dense, Dropout, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from .model import Sequential

ACTIVATIONS = {"leaky_relu": lambda: LeakyReLU(0.2), "relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
OUTPUTS = {"tanh": Tanh, "sigmoid": Sigmoid, "linear": None}


def _image_size(image_shape: Sequence[int]) -> int:
    if isinstance(image_shape, (int, np.integer)):
        image_shape = (int(image_shape),)
    shape = tuple(image_shape)
    if not shape or len(shape) > 3:
        raise ValueError(f"image_shape must be (height, width) or (height, width, channels), got {image_shape!r}")
    for i, side in enumerate(shape):
        check_int(side, f"image_shape[{i}]", minimum=1)
    return int(np.prod(shape))


def _widths(hidden: Sequence[int], name: str) -> list[int]:
    widths = list(hidden)
    if not widths:
        raise ValueError(f"{name} must list at least one hidden width, got {hidden!r}")
    return [check_int(w, f"{name}[{i}]", minimum=1) for i, w in enumerate(widths)]


def mlp_generator(
    latent_dim: int = 100,
    image_shape: Sequence[int] = (28, 28),
    *,
    hidden: Sequence[int] = (256, 512, 1024),
    activation: str = "leaky_relu",
    batchnorm: bool = True,
    momentum: float = 0.8,
    output: str = "tanh",
    dtype: Any = np.float32,
    rng: Any = None,
) -> Sequential:
    """A dense generator ``z (latent_dim,) -> image (prod(image_shape),)``.

    Each hidden block is Dense -> activation [-> BatchNorm(momentum)], then a Dense
    to the image size and the ``output`` activation (``"tanh"`` for pixels in [-1, 1]).

    Returns
    -------
    Sequential mapping (N, latent_dim) -> (N, prod(image_shape)).
    """
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    size = _image_size(image_shape)
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(output, "output", OUTPUTS)
    rng = check_rng(rng)
    layers: list[Layer] = []
    width_in = latent_dim
    for width in _widths(hidden, "hidden"):
        layers += [Dense(width_in, width, dtype=dtype, rng=rng), ACTIVATIONS[activation]()]
        if batchnorm:
            layers.append(BatchNorm(width, momentum=check_real(momentum, "momentum"), dtype=dtype))
        width_in = width
    layers.append(Dense(width_in, size, dtype=dtype, rng=rng))
    if OUTPUTS[output] is not None:
        layers.append(OUTPUTS[output]())
    return Sequential(layers)


def mlp_discriminator(
    image_shape: Sequence[int] = (28, 28),
    *,
    hidden: Sequence[int] = (512, 256),
    activation: str = "leaky_relu",
    dropout: float = 0.0,
    dtype: Any = np.float32,
    rng: Any = None,
) -> Sequential:
    """A dense discriminator ``image (prod(image_shape),) -> logit (1,)``.

    Each hidden block is Dense -> activation [-> Dropout(dropout)]; the last Dense has
    one output, a logit (no sigmoid: the loss applies it).
    """
    size = _image_size(image_shape)
    check_choice(activation, "activation", ACTIVATIONS)
    dropout = check_real(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
    rng = check_rng(rng)
    layers: list[Layer] = []
    width_in = size
    for width in _widths(hidden, "hidden"):
        layers += [Dense(width_in, width, dtype=dtype, rng=rng), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout, rng=rng.spawn(1)[0]))
        width_in = width
    layers.append(Dense(width_in, 1, dtype=dtype, rng=rng))
    return Sequential(layers)


def reference_generator(
    latent_dim: int = 100, image_shape: Sequence[int] = (28, 28), *, dtype: Any = np.float32, rng: Any = None
) -> Sequential:
    """The article's generator (see the module docstring): 1,489,936 trainable parameters for MNIST
    (+3,584 BatchNorm running statistics; Keras' summary reports the sum, 1,493,520)."""
    return mlp_generator(latent_dim, image_shape, hidden=(256, 512, 1024), activation="leaky_relu",
                         batchnorm=True, momentum=0.8, output="tanh", dtype=dtype, rng=rng)


def reference_discriminator(
    image_shape: Sequence[int] = (28, 28), *, dtype: Any = np.float32, rng: Any = None
) -> Sequential:
    """The article's discriminator (see the module docstring), outputting logits: 533,505 parameters."""
    return mlp_discriminator(image_shape, hidden=(512, 256), activation="leaky_relu", dropout=0.0, dtype=dtype, rng=rng)


#: Settings :func:`build_gan` understands, with their defaults (the article's GAN).
GAN_DEFAULTS: dict[str, Any] = {
    "architecture": "reference",
    "latent_dim": 100,
    "image_shape": [28, 28],
    "loss": "bce",
    "lr": 2e-4,
    "beta1": 0.5,
    "beta2": 0.999,
    "d_steps": 1,
    "label_smoothing": 0.0,
    "seed": 0,
    "dtype": "float32",
    "g_hidden": [256, 512, 1024],
    "d_hidden": [512, 256],
    "d_dropout": 0.0,
    "ema_decay": 0.999,
}


def build_gan(settings: dict[str, Any] | None = None) -> Any:
    """A :class:`minigan.GAN` built from plain settings (as stored in a run's ``config.json``).

    ``architecture="reference"`` builds :func:`reference_generator` and
    :func:`reference_discriminator`; ``"mlp"`` uses ``g_hidden``, ``d_hidden`` and
    ``d_dropout``. Both networks get Adam(lr, beta1, beta2). The weights are drawn from
    a stream derived from ``seed`` and distinct from the GAN's noise stream.
    Unknown keys are ignored; missing keys take :data:`GAN_DEFAULTS`.
    """
    from .gan import GAN
    from .optim import Adam

    s = {**GAN_DEFAULTS, **(settings or {})}
    check_choice(s["architecture"], "architecture", ("reference", "mlp"))
    seed = check_int(s["seed"], "seed", minimum=0)
    init_rng = np.random.default_rng([seed, 1])
    shape = tuple(s["image_shape"])
    if s["architecture"] == "reference":
        G = reference_generator(s["latent_dim"], shape, dtype=s["dtype"], rng=init_rng)
        D = reference_discriminator(shape, dtype=s["dtype"], rng=init_rng)
    else:
        G = mlp_generator(s["latent_dim"], shape, hidden=s["g_hidden"], dtype=s["dtype"], rng=init_rng)
        D = mlp_discriminator(shape, hidden=s["d_hidden"], dropout=s["d_dropout"], dtype=s["dtype"], rng=init_rng)
    lr = check_real(s["lr"], "lr", minimum=0.0, min_inclusive=False)
    g_opt = Adam(G.parameters(), lr=lr, beta1=s["beta1"], beta2=s["beta2"])
    d_opt = Adam(D.parameters(), lr=lr, beta1=s["beta1"], beta2=s["beta2"])
    return GAN(G, D, latent_dim=s["latent_dim"], loss=s["loss"], g_optimizer=g_opt, d_optimizer=d_opt,
               d_steps=s["d_steps"], label_smoothing=s["label_smoothing"], seed=seed, ema_decay=s["ema_decay"],
               image_shape=shape)
