"""Every training setting, declared once: name, type, default, help and check.

``minigan train``'s options, the keys of its TOML ``--config`` file,
:func:`minigan.models.build_gan`, the defaults of :class:`minigan.GAN` and
:meth:`minigan.GAN.fit`, a run's ``config.json`` and ``--resume`` all derive from
:data:`SETTINGS`. A setting's default is written here and nowhere else.

Groups
------
``data``
    What to train on; a resumed run checks that it is the same data (a fingerprint).
``model``
    How the networks and the objective are built; fixed for a run (``--resume``
    refuses a different value and says which).
``training``
    How they are trained; fixed for a run as well.
``schedule``
    How long and how often to write samples, checkpoints and evaluations; a resumed
    run may change these (e.g. ``--iterations`` to train longer).

An objective may recommend settings (WGAN-GP's optimizer, bce's lazy R1, see
:attr:`minigan.objectives.Objective.recommended_settings`); they apply where the
user set nothing, so the order of precedence is: the defaults here, then the
objective's recommendations, then the TOML file, then the command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ._validation import check_choice, check_int, check_real, describe

DTYPES = ("float32", "float64")
#: How long a run trains when neither ``iterations`` nor ``epochs`` is set.
DEFAULT_ITERATIONS = 10000
ARCHITECTURES = ("reference", "mlp")
#: How a conditional generator / discriminator takes the label (``minigan.models.mlp_generator`` and
#: ``mlp_discriminator`` build them).
G_CONDITIONINGS = ("one-hot", "embedding", "batchnorm")
D_CONDITIONINGS = ("projection", "concat")
#: Hidden activations of the mlp architecture (built by ``minigan.models.ACTIVATIONS``).
ACTIVATION_NAMES = ("leaky_relu", "relu", "tanh", "sigmoid")


@dataclass(frozen=True)
class Setting:
    """One setting.

    Attributes
    ----------
    name : str
        Python and TOML name (``g_lr``); the command-line option is ``--g-lr``.
    default : Any
        The default (None: derived, see ``help``).
    help : str
        One line for ``--help``; the default is appended.
    kind : {"int", "float", "str", "bool", "widths", "size"}
        How a command-line string is read (``widths``: comma-separated ints; ``size``:
        ``HEIGHTxWIDTH``).
    group : {"data", "model", "training", "schedule"}
    check : callable (value, name) -> value, optional
        Validates a value from any source and returns it normalised.
    choices : callable returning names, optional
        For string settings with a fixed set of values.
    mlp_only : bool
        Applies to ``architecture = "mlp"`` only.
    """

    name: str
    default: Any
    help: str
    kind: str
    group: str
    check: Callable[[Any, str], Any] | None = None
    choices: Callable[[], tuple[str, ...]] | None = None
    mlp_only: bool = False

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> Any:
        """``value`` checked and normalised (None passes when the default is None)."""
        if value is None and self.default is None:
            return None
        if self.choices is not None:
            return check_choice(value, self.name, self.choices())
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{self.name} must be true or false, got {describe(value)}")
            return value
        if self.kind == "widths":
            return _check_widths(value, self.name)
        if self.kind == "size":
            return _check_size(value, self.name)
        if self.kind == "int":
            value = check_int(value, self.name)
        elif self.kind == "float":
            value = check_real(value, self.name)
        elif self.kind == "str" and not isinstance(value, str):
            raise TypeError(f"{self.name} must be a string, got {describe(value)}")
        return self.check(value, self.name) if self.check is not None else value


def _check_widths(value: Any, name: str) -> list[int]:
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
        try:
            value = [int(part) for part in value]
        except ValueError:
            raise ValueError(f"{name} must be comma-separated integers such as 256,512, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must list at least one layer width, got {describe(value)}")
    return [check_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(value)]


def _check_size(value: Any, name: str) -> list[int]:
    if isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
        try:
            value = [int(part) for part in parts]
        except ValueError:
            raise ValueError(f"{name} must be HEIGHTxWIDTH such as 32x32, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be HEIGHTxWIDTH such as 32x32 (two sizes), got {describe(value)}")
    return [check_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(value)]


def _positive(value: float, name: str) -> float:
    return check_real(value, name, minimum=0.0, min_inclusive=False)


def _unit_interval_open(value: float, name: str) -> float:
    return check_real(value, name, minimum=0.0, maximum=1.0, max_inclusive=False)


def _at_least(minimum: int) -> Callable[[int, str], int]:
    return lambda value, name: check_int(value, name, minimum=minimum)


def _non_negative(value: float, name: str) -> float:
    return check_real(value, name, minimum=0.0)


def _detector_paths(value: str, name: str) -> str:
    """Comma-separated detector files, each made absolute (so a run resumes from any folder)."""
    from pathlib import Path

    paths = [part.strip() for part in value.split(",") if part.strip()]
    if not paths:
        raise ValueError(f"{name} must name at least one detector .npz file, got {value!r}")
    return ",".join(str(Path(p).expanduser().resolve()) for p in paths)


def _objective_names() -> tuple[str, ...]:
    from .objectives import objective_names

    return objective_names()


SETTINGS: tuple[Setting, ...] = (
    # -- model ---------------------------------------------------------------------
    Setting("data", "mnist-5k", "mnist-5k (bundled), mnist, fashion-mnist, or a folder / .npy / .npz of images",
            "str", "data"),
    Setting("color", False, "train on RGB images (default: grey, ITU-R 601-2 luma)", "bool", "data"),
    Setting("resize", None, "resize every image to HEIGHTxWIDTH, e.g. 32x32 (needed for folders of mixed sizes)",
            "size", "data"),
    Setting("architecture", "reference", "reference (the article's networks, fixed) or mlp (the same by default; "
            "widths, activations, BatchNorm and dropout set by the mlp: options)", "str", "model",
            choices=lambda: ARCHITECTURES),
    Setting("conditional", False, "a conditional GAN: G and D take the data's class labels, and "
            "minigan sample --label K asks for class K", "bool", "model"),
    Setting("g_conditioning", "one-hot", "conditional: how G takes the label: one-hot (joined to z), embedding "
            "(a learned 10-number embedding joined to z) or batchnorm (a scale and shift per class in every "
            "BatchNorm)", "str", "model", choices=lambda: G_CONDITIONINGS),
    Setting("d_conditioning", "projection", "conditional: how D takes the label: projection (the score plus "
            "features . class embedding, Miyato and Koyama 2018) or concat (one-hot joined to the image)", "str",
            "model", choices=lambda: D_CONDITIONINGS),
    Setting("latent_dim", 100, "size of the noise vector z", "int", "model", check=_at_least(1)),
    Setting("g_hidden", [256, 512, 1024], "mlp: generator hidden widths, e.g. 128,256", "widths", "model",
            mlp_only=True),
    Setting("d_hidden", [512, 256], "mlp: discriminator hidden widths", "widths", "model", mlp_only=True),
    Setting("g_activation", "leaky_relu", "mlp: generator hidden activation: {choices}", "str", "model",
            choices=lambda: ACTIVATION_NAMES, mlp_only=True),
    Setting("d_activation", "leaky_relu", "mlp: discriminator hidden activation: {choices}", "str", "model",
            choices=lambda: ACTIVATION_NAMES, mlp_only=True),
    Setting("g_batchnorm", True, "mlp: BatchNorm after each generator hidden layer", "bool", "model",
            mlp_only=True),
    Setting("d_dropout", 0.0, "mlp: dropout rate after each discriminator hidden layer", "float", "model",
            check=_unit_interval_open, mlp_only=True),
    Setting("dtype", "float32", "{choices}", "str", "model", choices=lambda: DTYPES),
    Setting("loss", "bce", "the objective: {choices}", "str", "model", choices=_objective_names),
    Setting("label_smoothing", 0.0, "one-sided label smoothing of real targets ({takes:label_smoothing}), e.g. 0.1",
            "float", "model", check=lambda v, n: check_real(v, n, minimum=0.0, maximum=0.5, max_inclusive=False)),
    Setting("clip_value", None, "{takes:clip_value}: clip the critic's weights to [-v, v] (default "
            "{default:clip_value})", "float", "model", check=_positive),
    Setting("r1", None, "R1 gradient penalty gamma/2 * mean ||grad D(x)||^2 on the real batch, for any loss, "
            "e.g. 10 (default: 1 with --loss bce, lazily every 16th D update; off with the other losses; 0: off)",
            "float", "model", check=lambda v, n: check_real(v, n, minimum=0.0)),
    Setting("r1_every", 1, "apply R1 on every K-th D update with its weight times K (lazy regularization; "
            "StyleGAN2 uses 16)", "int", "model", check=_at_least(1)),
    # -- training --------------------------------------------------------------------
    Setting("lr", 2e-4, "Adam learning rate of both networks (see --g-lr, --d-lr)", "float", "training",
            check=_positive),
    Setting("g_lr", None, "generator learning rate (default: --lr)", "float", "training", check=_positive),
    Setting("d_lr", None, "discriminator learning rate (default: --lr); two-timescale training sets it apart",
            "float", "training", check=_positive),
    Setting("beta1", 0.5, "Adam beta1 of both networks", "float", "training", check=_unit_interval_open),
    Setting("beta2", 0.999, "Adam beta2 of both networks", "float", "training", check=_unit_interval_open),
    Setting("d_steps", 1, "discriminator updates per generator update", "int", "training", check=_at_least(1)),
    Setting("ema_decay", 0.999, "samples come from a moving average of G's weights with this decay (0: off)",
            "float", "training", check=_unit_interval_open),
    Setting("seed", 0, "random seed: same seed, same machine, same threads -> identical weights", "int",
            "training", check=_at_least(0)),
    Setting("batch_size", 64, "images per batch", "int", "training", check=_at_least(2)),
    Setting("benford_weight", 0.0, "weight of the Benford term: G matches the real images' soft first-digit "
            "histograms and non-zero shares of block-DCT coefficients (0: off)", "float", "training",
            check=_non_negative),
    Setting("evade", None, "detector .npz file(s), comma-separated, whose verdict G learns to escape "
            "(saved by minigan detect fit or detector.save)", "str", "training", check=_detector_paths),
    Setting("evade_weight", 1.0, "pull of each --evade detector, relative to the discriminator's (its gradient is "
            "rescaled to this times the norm of D's)", "float", "training",
            check=_non_negative),
    Setting("evade_images", 16, "fakes per batch each --evade detector judges", "int", "training",
            check=_at_least(1)),
    # -- schedule ----------------------------------------------------------------------
    Setting("iterations", None, "training iterations (default {iterations} unless --epochs)", "int", "schedule",
            check=_at_least(1)),
    Setting("epochs", None, "train for this many passes over the data instead of --iterations", "int", "schedule",
            check=_at_least(1)),
    Setting("sample_every", 500, "write a sample grid every N iterations (0: only at the end)", "int", "schedule",
            check=_at_least(0)),
    Setting("checkpoint_every", 1000, "write a checkpoint every N iterations (0: only at the end)", "int",
            "schedule", check=_at_least(0)),
    Setting("eval_every", 0, "log classifier FID and class coverage every N iterations (0: off)", "int",
            "schedule", check=_at_least(0)),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: Every setting's default, by name (``DEFAULTS["lr"]``).
DEFAULTS: Mapping[str, Any] = {s.name: s.default for s in SETTINGS}
MLP_ONLY = tuple(s.name for s in SETTINGS if s.mlp_only)


def help_text(setting: Setting) -> str:
    """The ``--help`` line of a setting, with its default."""
    text = setting.help
    if "{choices}" in text and setting.choices is not None:
        text = text.replace("{choices}", ", ".join(setting.choices()))
    text = text.replace("{iterations}", str(DEFAULT_ITERATIONS))
    if "{takes:" in text or "{default:" in text:
        text = _objective_options_text(text)
    if setting.default is None or "(default" in text:
        return text
    default = ",".join(map(str, setting.default)) if isinstance(setting.default, list) else setting.default
    return f"{text} (default {default})"


def _objective_options_text(text: str) -> str:
    """Fill ``{takes:option}`` (the objectives that take an option) and ``{default:option}``
    (its default there) from the objective classes themselves."""
    import inspect
    import re

    from .objectives import OBJECTIVES

    def parameters(cls: type) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(cls).parameters

    def takes(match: re.Match) -> str:
        return ", ".join(name for name, cls in OBJECTIVES.items() if match.group(1) in parameters(cls))

    def default(match: re.Match) -> str:
        found = {str(parameters(cls)[match.group(1)].default) for cls in OBJECTIVES.values()
                 if match.group(1) in parameters(cls)}
        return " / ".join(sorted(found))

    return re.sub(r"\{default:(\w+)\}", default, re.sub(r"\{takes:(\w+)\}", takes, text))


def unknown_keys(keys: Any) -> list[str]:
    """Keys that name no setting."""
    return sorted(set(keys) - set(BY_NAME))


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value: the defaults, the objective's recommendations where nothing
    was given, then ``given`` (every value validated; ``g_lr`` / ``d_lr`` filled from ``lr``).

    Raises
    ------
    ValueError, TypeError
        An unknown key, a bad value, or an mlp-only setting with the reference architecture.
    """
    from .objectives import OBJECTIVES

    unknown = unknown_keys(given)
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(BY_NAME)}")
    values = dict(DEFAULTS)
    loss = BY_NAME["loss"].validate(given.get("loss", DEFAULTS["loss"]))
    for key, value in OBJECTIVES[loss].recommended_settings.items():
        if key not in given:
            values[key] = value
    values.update({k: v for k, v in given.items()})
    resolved = {name: BY_NAME[name].validate(value) for name, value in values.items()}
    if "r1" in given and "r1_every" not in given:
        # an objective recommends R1's pace together with its gamma: a gamma of one's own (or 0, off)
        # takes the plain default pace, every D update, whatever the objective
        resolved["r1_every"] = DEFAULTS["r1_every"]
    if resolved["architecture"] != "mlp":
        misplaced = sorted(k for k in MLP_ONLY if k in given and given[k] != DEFAULTS[k])
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} apply to architecture 'mlp' (--architecture mlp); "
                             "the reference architecture is fixed")
    for network in ("g_lr", "d_lr"):
        if resolved[network] is None:
            resolved[network] = resolved["lr"]
    if resolved["iterations"] is None and resolved["epochs"] is None:
        resolved["iterations"] = DEFAULT_ITERATIONS
    return resolved
