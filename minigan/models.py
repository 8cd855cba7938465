"""Ready-made generators and discriminators.

``reference_generator`` / ``reference_discriminator`` are the article's dense
MNIST GAN in the canonical form of Keras-GAN's ``gan/gan.py`` (github.com/eriklindernoren/Keras-GAN):

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

import os
from typing import Any, Sequence

import numpy as np

from ._validation import check_choice, check_int, check_real, check_rng
from .checkpoint import checkpoint_path, load_checkpoint
from .conditional.layers import ConditionalBatchNorm, LabelConcat, Projection
from .gan import GAN
from .layers import BatchNorm, Dense, Dropout, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from .model import Sequential
from .objectives import objective_from_config
from .optim import Adam, optimizer_from_config
from .serialization import FileFormatError
from .settings import ACTIVATION_NAMES, BY_NAME, D_CONDITIONINGS, G_CONDITIONINGS, resolve
from .terms import R1Penalty, term_from_config

_ACTIVATION_LAYERS = {"leaky_relu": lambda: LeakyReLU(0.2), "relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
#: Hidden activations by name (the names are the settings' ``g_activation`` / ``d_activation`` choices).
ACTIVATIONS = {name: _ACTIVATION_LAYERS[name] for name in ACTIVATION_NAMES}
OUTPUTS = {"tanh": Tanh, "sigmoid": Sigmoid, "linear": None}
DEFAULT_G_CONDITIONING = BY_NAME["g_conditioning"].default
DEFAULT_D_CONDITIONING = BY_NAME["d_conditioning"].default
#: Width of the generator's learned label embedding (``conditioning="embedding"``; PyTorch-GAN's cgan: one per
#: class of MNIST).
DEFAULT_EMBEDDING_DIM = 10


def _image_size(image_shape: Sequence[int]) -> int:
    if isinstance(image_shape, (int, np.integer)):
        image_shape = (int(image_shape),)
    shape = tuple(image_shape)
    if not shape or len(shape) > 3:
        raise ValueError(f"image_shape must be (height, width) or (height, width, channels), got {image_shape!r}")
    for i, side in enumerate(shape):
        check_int(side, f"image_shape[{i}]", minimum=1)
    return int(np.prod(shape))


def _widths(hidden: Sequence[int], name: str, allow_empty: bool = False) -> list[int]:
    widths = list(hidden)
    if not widths and not allow_empty:
        raise ValueError(f"{name} must list at least one hidden width, got {hidden!r}")
    return [check_int(w, f"{name}[{i}]", minimum=1) for i, w in enumerate(widths)]


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int | None,
    *,
    activation: str = "leaky_relu",
    batchnorm_momentum: float | None = None,
    dropout: float = 0.0,
    output: str = "linear",
    dtype: Any = np.float32,
    rng: Any = None,
    dropout_rng: np.random.Generator | None = None,
) -> Sequential:
    """A dense network: hidden blocks ``Dense -> activation [-> BatchNorm] [-> Dropout]``,
    then a ``Dense`` to ``out_features`` and the ``output`` activation.

    The one builder behind the GAN networks, the detectors and the digit classifier.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Hidden widths (may be empty: a single Dense).
    out_features : int or None
        Size of the last Dense; None ends the network after the last hidden block.
    activation : {"leaky_relu" (slope 0.2), "relu", "tanh", "sigmoid"}
    batchnorm_momentum : float, optional
        Add ``BatchNorm(width, momentum=...)`` (Keras' meaning) after each hidden activation.
    dropout : float
        Add ``Dropout(dropout)`` after each hidden block when > 0.
    output : {"linear", "tanh", "sigmoid"}
    dtype : float32 or float64
    rng : numpy.random.Generator, int or None
        Initial weights, drawn layer by layer in order.
    dropout_rng : numpy.random.Generator, optional
        One stream for every Dropout layer's masks; by default each Dropout layer gets
        its own, spawned from ``rng``.

    Returns
    -------
    Sequential mapping (N, in_features) -> (N, out_features) (or the last hidden width).
    """
    in_features = check_int(in_features, "in_features", minimum=1)
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(output, "output", OUTPUTS)
    dropout = check_real(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
    if batchnorm_momentum is not None:
        batchnorm_momentum = check_real(batchnorm_momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
    rng = check_rng(rng)
    widths = _widths(hidden, "hidden", allow_empty=out_features is not None)
    layers: list[Layer] = []
    width_in = in_features
    for width in widths:
        layers += [Dense(width_in, width, dtype=dtype, rng=rng), ACTIVATIONS[activation]()]
        if batchnorm_momentum is not None:
            layers.append(BatchNorm(width, momentum=batchnorm_momentum, dtype=dtype))
        if dropout > 0:
            layers.append(Dropout(dropout, rng=dropout_rng if dropout_rng is not None else rng.spawn(1)[0]))
        width_in = width
    if out_features is not None:
        layers.append(Dense(width_in, check_int(out_features, "out_features", minimum=1), dtype=dtype, rng=rng))
        if OUTPUTS[output] is not None:
            layers.append(OUTPUTS[output]())
    return Sequential(layers)


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
    num_classes: int | None = None,
    embedding_dim: int | None = DEFAULT_EMBEDDING_DIM,
    conditioning: str = DEFAULT_G_CONDITIONING,
) -> Sequential:
    """A dense generator ``z (latent_dim,) -> image (prod(image_shape),)``.

    Each hidden block is Dense -> activation [-> BatchNorm(momentum)], then a Dense
    to the image size and the ``output`` activation (``"tanh"`` for pixels in [-1, 1]).

    With ``num_classes`` the generator is conditional, ``(z, label) -> image``, by
    ``conditioning`` (see :mod:`minigan.conditional`):

    * ``"one-hot"``: a :class:`~minigan.conditional.LabelConcat` first joins the label's
      one-hot code to z (Mirza and Osindero 2014), so the first Dense takes
      ``latent_dim + num_classes`` inputs;
    * ``"embedding"``: the same with a learned embedding of ``embedding_dim`` numbers
      (PyTorch-GAN's cgan);
    * ``"batchnorm"``: every BatchNorm becomes a
      :class:`~minigan.conditional.ConditionalBatchNorm`, a scale and shift per class
      (Miyato and Koyama's generator); needs ``batchnorm=True``.

    Returns
    -------
    Sequential mapping (N, latent_dim) [and labels (N,)] -> (N, prod(image_shape)).
    """
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    rng = check_rng(rng)
    label = None
    if num_classes is not None:
        check_choice(conditioning, "conditioning", G_CONDITIONINGS)
        if conditioning == "batchnorm" and not batchnorm:
            raise ValueError("conditioning='batchnorm' makes the generator's BatchNorm layers conditional, and "
                             "this generator has none (batchnorm=False); choose 'one-hot' or 'embedding'")
        if conditioning != "batchnorm":
            label = _label_concat(latent_dim, num_classes, embedding_dim if conditioning == "embedding" else None,
                                  dtype, rng)
    net = mlp(latent_dim if label is None else label.output_features(latent_dim), _widths(hidden, "hidden"),
              _image_size(image_shape), activation=activation,
              batchnorm_momentum=check_real(momentum, "momentum") if batchnorm else None, output=output,
              dtype=dtype, rng=rng)
    if num_classes is None:
        return net
    if conditioning == "batchnorm":
        return Sequential([ConditionalBatchNorm(layer.num_features, num_classes, momentum=layer.momentum,
                                                eps=layer.eps, dtype=dtype) if isinstance(layer, BatchNorm) else layer
                           for layer in net.layers])
    return Sequential([label, *net.layers])


def mlp_discriminator(
    image_shape: Sequence[int] = (28, 28),
    *,
    hidden: Sequence[int] = (512, 256),
    activation: str = "leaky_relu",
    dropout: float = 0.0,
    dtype: Any = np.float32,
    rng: Any = None,
    num_classes: int | None = None,
    conditioning: str = DEFAULT_D_CONDITIONING,
    embedding_dim: int | None = None,
) -> Sequential:
    """A dense discriminator ``image (prod(image_shape),) -> logit (1,)``.

    Each hidden block is Dense -> activation [-> Dropout(dropout)]; the last Dense has
    one output, a logit (no sigmoid: the loss applies it).

    With ``num_classes`` the discriminator is conditional, ``(image, label) -> logit``,
    by ``conditioning``: ``"projection"`` replaces the last Dense by a
    :class:`~minigan.conditional.Projection` (Miyato and Koyama 2018: the score plus
    the inner product of the last hidden features with an embedding of the label);
    ``"concat"`` joins the label's one-hot code (or, with ``embedding_dim``, a learned
    embedding) to the image before the first Dense (Mirza and Osindero 2014).
    """
    size = _image_size(image_shape)
    widths = _widths(hidden, "hidden")
    if num_classes is None:
        return mlp(size, widths, 1, activation=activation, dropout=dropout, dtype=dtype, rng=rng)
    check_choice(conditioning, "conditioning", D_CONDITIONINGS)
    rng = check_rng(rng)
    if conditioning == "projection":
        body = mlp(size, widths, None, activation=activation, dropout=dropout, dtype=dtype, rng=rng)
        return Sequential([*body.layers, Projection(widths[-1], num_classes, dtype=dtype, rng=rng)])
    label = _label_concat(size, num_classes, embedding_dim, dtype, rng)
    body = mlp(label.output_features(size), widths, 1, activation=activation, dropout=dropout, dtype=dtype, rng=rng)
    return Sequential([label, *body.layers])


def _label_concat(in_features: int, num_classes: int | None, embedding_dim: int | None, dtype: Any,
                  rng: np.random.Generator) -> LabelConcat | None:
    """The label's entry layer of a conditional network (None without ``num_classes``)."""
    if num_classes is None:
        return None
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    return LabelConcat(in_features, num_classes, embedding_dim=embedding_dim, dtype=dtype, rng=rng)


def reference_generator(
    latent_dim: int = 100, image_shape: Sequence[int] = (28, 28), *, dtype: Any = np.float32, rng: Any = None,
    num_classes: int | None = None, embedding_dim: int | None = DEFAULT_EMBEDDING_DIM,
    conditioning: str = DEFAULT_G_CONDITIONING,
) -> Sequential:
    """The article's generator (see the module docstring): 1,489,936 trainable parameters for MNIST
    (+3,584 BatchNorm running statistics; Keras' summary reports the sum, 1,493,520).
    ``num_classes``: the conditional variant (see :func:`mlp_generator`)."""
    return mlp_generator(latent_dim, image_shape, hidden=(256, 512, 1024), activation="leaky_relu",
                         batchnorm=True, momentum=0.8, output="tanh", dtype=dtype, rng=rng,
                         num_classes=num_classes, embedding_dim=embedding_dim, conditioning=conditioning)


def reference_discriminator(
    image_shape: Sequence[int] = (28, 28), *, dtype: Any = np.float32, rng: Any = None,
    num_classes: int | None = None, conditioning: str = DEFAULT_D_CONDITIONING,
    embedding_dim: int | None = None,
) -> Sequential:
    """The article's discriminator (see the module docstring), outputting logits: 533,505 parameters.
    ``num_classes``: the conditional variant (see :func:`mlp_discriminator`)."""
    return mlp_discriminator(image_shape, hidden=(512, 256), activation="leaky_relu", dropout=0.0, dtype=dtype,
                             rng=rng, num_classes=num_classes, conditioning=conditioning,
                             embedding_dim=embedding_dim)


def build_gan(settings: dict[str, Any] | None = None, *, terms: bool = True) -> GAN:
    """A :class:`minigan.GAN` built from plain settings (those of :mod:`minigan.settings`,
    as ``minigan train`` takes them, plus ``image_shape``).

    ``architecture="reference"`` builds :func:`reference_generator` and
    :func:`reference_discriminator`; ``"mlp"`` uses ``g_hidden``, ``g_activation``,
    ``g_batchnorm``, ``d_hidden``, ``d_activation`` and ``d_dropout``. The generator
    gets Adam(g_lr, beta1, beta2), the discriminator Adam(d_lr, beta1, beta2). The
    weights are drawn from a stream derived from ``seed`` and distinct from the GAN's
    noise stream. ``r1`` (> 0) attaches :class:`minigan.terms.R1Penalty` (gamma ``r1``,
    applied every ``r1_every`` D updates). Missing settings take their defaults;
    unknown ones are an error.

    ``evade`` adds a :class:`minigan.benford.evasion.DetectorTerm` of its detector files
    and ``benford_weight > 0`` a :class:`minigan.benford.evasion.BenfordTerm` against the
    images of ``data``. ``terms=False`` leaves out these and the penalty (enough to sample).

    ``conditional=True`` builds the conditional variants of both networks for
    ``num_classes`` classes, G by ``g_conditioning`` (:func:`mlp_generator`) and D by
    ``d_conditioning`` (:func:`mlp_discriminator`); ``num_classes`` and the optional
    ``class_names`` are given beside the settings, like ``image_shape``.
    """
    given = dict(settings or {})
    shape = tuple(given.pop("image_shape", (28, 28)))
    num_classes = given.pop("num_classes", None)
    class_names = given.pop("class_names", None)
    s = resolve(given)
    if not s["conditional"]:
        for key in ("g_conditioning", "d_conditioning"):
            if s[key] != BY_NAME[key].default:
                raise ValueError(f"{key}={s[key]!r} applies to a conditional GAN: add conditional=true "
                                 f"(--conditional) or leave {key} out")
        num_classes = class_names = None
    elif num_classes is None:
        raise ValueError("a conditional GAN needs num_classes (the number of classes of its data's labels)")
    else:
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        if s["g_conditioning"] == "batchnorm" and s["architecture"] == "mlp" and not s["g_batchnorm"]:
            raise ValueError("g_conditioning='batchnorm' (--g-conditioning batchnorm) makes G's BatchNorm layers "
                             "conditional, and g_batchnorm=false leaves G without any; choose one-hot or embedding")
    g_conditioned = {"num_classes": num_classes, "conditioning": s["g_conditioning"]} if num_classes else {}
    d_conditioned = {"num_classes": num_classes, "conditioning": s["d_conditioning"]} if num_classes else {}
    init_rng = np.random.default_rng([s["seed"], 1])
    if s["architecture"] == "reference":
        G = reference_generator(s["latent_dim"], shape, dtype=s["dtype"], rng=init_rng, **g_conditioned)
        D = reference_discriminator(shape, dtype=s["dtype"], rng=init_rng, **d_conditioned)
    else:
        G = mlp_generator(s["latent_dim"], shape, hidden=s["g_hidden"], activation=s["g_activation"],
                          batchnorm=s["g_batchnorm"], dtype=s["dtype"], rng=init_rng, **g_conditioned)
        D = mlp_discriminator(shape, hidden=s["d_hidden"], activation=s["d_activation"], dropout=s["d_dropout"],
                              dtype=s["dtype"], rng=init_rng, **d_conditioned)
    g_opt = Adam(G.parameters(), lr=s["g_lr"], beta1=s["beta1"], beta2=s["beta2"])
    d_opt = Adam(D.parameters(), lr=s["d_lr"], beta1=s["beta1"], beta2=s["beta2"])
    if not s["r1"] and s["r1_every"] != BY_NAME["r1_every"].default:
        raise ValueError(f"r1_every={s['r1_every']} has no effect without r1: set the penalty's gamma "
                         "(--r1 GAMMA) or leave r1_every out")
    d_terms = [R1Penalty(s["r1"], every=s["r1_every"])] if s["r1"] else []
    return GAN(G, D, latent_dim=s["latent_dim"], loss=s["loss"], g_optimizer=g_opt, d_optimizer=d_opt,
               d_steps=s["d_steps"], label_smoothing=s["label_smoothing"], clip_value=s["clip_value"],
               seed=s["seed"], ema_decay=s["ema_decay"], image_shape=shape,
               discriminator_terms=d_terms if terms else (),
               generator_terms=_generator_terms(s, shape) if terms else (), class_names=class_names)


def _generator_terms(s: dict[str, Any], shape: tuple[int, ...]) -> list[Any]:
    """The extra generator terms the settings ask for: the detectors to evade first (their
    gradient is balanced against the discriminator's, which only the first term receives
    alone), then the Benford term."""
    found: list[Any] = []
    if s["evade"]:
        from .benford.evasion import DetectorTerm

        found.append(DetectorTerm(s["evade"].split(","), weight=s["evade_weight"], image_shape=shape[:2],
                                  max_images=s["evade_images"]))
    if s["benford_weight"] > 0:
        from .benford.evasion import BenfordTerm

        found.append(BenfordTerm(s["data"], weight=s["benford_weight"]))
    return found


def gan_from_record(config: dict[str, Any], *, custom_layers: dict[str, type] | None = None,
                    terms: bool = True) -> GAN:
    """A fresh :class:`minigan.GAN` (weights not loaded) built as a run's ``config.json`` records.

    A run made by ``minigan train`` is rebuilt from its settings (:func:`build_gan`);
    one trained from Python from its recorded networks, objective, optimizers and
    terms; one from an older minigan from its flat settings. ``terms=False`` leaves
    out extra loss terms (not needed to sample).
    """
    if not isinstance(config, dict):
        raise ValueError(f"a run record must be a dict, got {type(config).__name__}")
    classes = {key: config[key] for key in ("num_classes", "class_names") if config.get(key) is not None}
    if isinstance(config.get("settings"), dict):
        return build_gan({**config["settings"], "image_shape": config.get("image_shape", (28, 28)), **classes},
                         terms=terms)
    if "generator" not in config:
        if "architecture" in config:  # a run recorded by an older minigan: flat settings
            return build_gan({k: v for k, v in config.items() if k in BY_NAME or k == "image_shape"})
        raise ValueError("the run does not record how its networks were built; rebuild them yourself and call "
                         "GAN.load_state(*minigan.checkpoint.load_checkpoint(path))")
    networks = []
    for name in ("generator", "discriminator"):
        spec = config[name]
        if "unrecorded" in spec:
            raise ValueError(f"the run could not record its {name}: {spec['unrecorded']}")
        networks.append(Sequential.from_config(spec, custom_layers))
    G, D = networks
    return GAN(
        G, D, latent_dim=config["latent_dim"], loss=objective_from_config(config["objective"]),
        g_optimizer=optimizer_from_config(config["g_optimizer"], G.parameters()),
        d_optimizer=optimizer_from_config(config["d_optimizer"], D.parameters()),
        d_steps=config["d_steps"], seed=config["seed"], ema_decay=config["ema_decay"],
        image_shape=config["image_shape"],
        discriminator_terms=[term_from_config(t) for t in config["discriminator_terms"]] if terms else (),
        generator_terms=[term_from_config(t) for t in config["generator_terms"]] if terms else (),
        class_names=classes.get("class_names"),
    )


def load_gan(path: str | os.PathLike, *, models_only: bool = False,
             custom_layers: dict[str, type] | None = None) -> GAN:
    """Rebuild the GAN of a run (directory or checkpoint file) with its trained state.

    Works for runs made by ``minigan train`` and by :meth:`GAN.fit` from Python alike
    (the run records how its networks were built: :func:`gan_from_record`).

    Parameters
    ----------
    path : run directory or checkpoint file
    models_only : bool
        Load the two networks and the average alone (all that sampling needs).
    custom_layers : dict of class name -> Layer subclass, optional
        Your own layer classes, if the networks hold any (see
        :func:`minigan.layers.layer_from_config`).

    Returns
    -------
    minigan.GAN at the checkpoint's iteration.
    """
    arrays, meta = load_checkpoint(path)
    try:
        gan = gan_from_record(meta.get("config") or {}, custom_layers=custom_layers, terms=not models_only)
    except ValueError as exc:
        raise FileFormatError(f"{checkpoint_path(path)}: {exc}") from None
    gan.load_state(arrays, meta, source=str(checkpoint_path(path)), models_only=models_only)
    gan.record = meta.get("config") or {}
    return gan
