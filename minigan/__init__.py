"""minigan: a from-scratch GAN toolkit.

Dense layers with hand-written forward and backward passes compiled by Numba,
an explicit adversarial training loop, and a Benford's-law detector of
GAN-generated images.

``import minigan as mg`` is cheap: the names below are loaded on first use
(PEP 562), so importing the package compiles and imports nothing heavy.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Layer": "layers",
    "Dense": "layers",
    "Activation": "layers",
    "LeakyReLU": "layers",
    "ReLU": "layers",
    "Tanh": "layers",
    "Sigmoid": "layers",
    "BatchNorm": "layers",
    "Dropout": "layers",
    "Sequential": "model",
    "Parameter": "model",
    "gradcheck": "gradcheck",
    "gradcheck_second_order": "gradcheck",
    "GradcheckReport": "gradcheck",
    "GAN": "gan",
    "load_gan": "models",
    "register_layer": "layers",
    "Objective": "objectives",
    "TrainingDiverged": "errors",
}

_SUBMODULES = {
    "layers", "model", "losses", "optim", "init", "kernels", "gradcheck", "testing", "gan", "models",
    "datasets", "checkpoint", "plots", "metrics", "benford", "serialization", "cli", "run", "objectives",
    "terms", "settings", "errors", "penalties", "training", "conditional", "duel",
}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        # Loading a submodule binds its name on the package; where an export has that
        # name too (mg.gradcheck, the function), the export wins.
        if _EXPORTS[name] in _EXPORTS:
            globals()[_EXPORTS[name]] = getattr(module, _EXPORTS[name])
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minigan' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names only: not the helpers this module itself imports.
    return sorted([*__all__, "__version__"])
