"""Optimizers: update parameter arrays in place from their gradients.

Both take ``model.parameters()`` (objects with ``.name``, ``.value``, ``.grad``) and
run one compiled kernel sweep per tensor in ``step()``. They never rebind a
parameter array, so layers keep seeing the same memory.
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

import numpy as np

from . import kernels as K
from ._validation import check_real, describe


class Optimizer:
    """Base class: holds the parameter list and per-parameter state arrays."""

    def __init__(self, params: Iterable[Any]) -> None:
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        params = list(params)
        if not params:
            raise ValueError("params must hold at least one parameter, got an empty list; pass model.parameters()")
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not all(hasattr(p, a) for a in ("name", "value", "grad")):
                raise TypeError(f"params[{i}] must have .name, .value and .grad (use model.parameters()), got {describe(p)}")
            if not isinstance(p.value, np.ndarray) or p.value.dtype.kind != "f":
                raise TypeError(f"params[{i}] ({p.name}) must hold a float array, got {describe(p.value)}")
            if p.grad.shape != p.value.shape or p.grad.dtype != p.value.dtype:
                raise ValueError(f"params[{i}] ({p.name}): grad {p.grad.shape} {p.grad.dtype} does not match value")
            if not p.value.flags.c_contiguous:
                raise ValueError(f"params[{i}] ({p.name}) must be C-contiguous")
            if id(p.value) in seen:
                raise ValueError(f"params[{i}] ({p.name}) appears twice")
            seen.add(id(p.value))
        self.params = params
        self.step_count = 0

    def get_config(self) -> dict[str, Any]:
        """``{"type": class name, hyperparameter: value, ...}`` for a run's record
        (:func:`optimizer_from_config` inverts it)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in ("self", "params")]
        return {"type": type(self).__name__, **{n: getattr(self, n) for n in names}}

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.grad.fill(0)

    def _new_state(self) -> list[np.ndarray]:
        return [np.zeros_like(p.value) for p in self.params]

    def _state_arrays(self) -> dict[str, list[np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _key(self, slot: str, index: int) -> str:
        # The position keeps keys unique when one optimizer spans two models (both have a "0.W").
        return f"{slot}/{index}/{self.params[index].name}"

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the step count and every state array, keyed ``"{slot}/{position}/{param name}"``."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for slot, arrays in self._state_arrays().items():
            for i, a in enumerate(arrays):
                state[self._key(slot, i)] = a.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned (validated: keys and shapes must fit)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict of name -> array, got {describe(state)}")
        expected = {"step"} | {self._key(slot, i) for slot in self._state_arrays() for i in range(len(self.params))}
        if set(state) != expected:
            missing = sorted(expected - set(state))[:5]
            unexpected = sorted(set(state) - expected)[:5]
            raise ValueError(f"optimizer state does not fit: missing {missing}, unexpected {unexpected}")
        for slot, arrays in self._state_arrays().items():
            for i, a in enumerate(arrays):
                value = np.asarray(state[self._key(slot, i)])
                if value.shape != a.shape:
                    raise ValueError(f"state['{self._key(slot, i)}'] must have shape {a.shape}, got {value.shape}")
        step = np.asarray(state["step"])
        if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
            raise ValueError(f"state['step'] must be a non-negative integer, got {describe(step)}")
        for slot, arrays in self._state_arrays().items():
            for i, a in enumerate(arrays):
                a[...] = state[self._key(slot, i)]
        self.step_count = int(np.asarray(state["step"]))


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + g`` and
    ``p -= lr * buf`` (or ``p -= lr * (g + momentum * buf)`` with Nesterov); plain
    ``p -= lr * g`` without. Same as PyTorch's SGD (and Keras' for a constant lr).
    """

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params)
        self.lr = check_real(lr, "lr", minimum=0.0)
        self.momentum = check_real(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        self.nesterov = bool(nesterov)
        self.buffers = self._new_state()

    def _state_arrays(self) -> dict[str, list[np.ndarray]]:
        return {"momentum": self.buffers}

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        check_real(self.lr, "lr", minimum=0.0)
        self.step_count += 1
        for p, buf in zip(self.params, self.buffers):
            K.sgd_update(p.value.reshape(-1), p.grad.reshape(-1), buf.reshape(-1),
                         self.lr, self.momentum, self.nesterov, self.weight_decay)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015, Algorithm 1).

    ``g = grad + weight_decay * p`` (L2, as PyTorch's ``Adam``; not AdamW),
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``. ``eps`` defaults to Keras' 1e-7 but, as in the paper and
    PyTorch, is added to ``sqrt(v_hat)`` (Keras adds it before bias correction).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr = check_real(lr, "lr", minimum=0.0)
        self.beta1 = check_real(beta1, "beta1", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.beta2 = check_real(beta2, "beta2", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
        self.weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
        self.m = self._new_state()
        self.v = self._new_state()

    def _state_arrays(self) -> dict[str, list[np.ndarray]]:
        return {"m": self.m, "v": self.v}

    def step(self) -> None:
        """Apply one Adam update to every parameter, in place."""
        check_real(self.lr, "lr", minimum=0.0)
        self.step_count += 1
        for p, m, v in zip(self.params, self.m, self.v):
            K.adam_update(p.value.reshape(-1), p.grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                          self.lr, self.beta1, self.beta2, self.eps, self.weight_decay, self.step_count)


OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam}


def optimizer_from_config(config: Any, params: Iterable[Any]) -> Optimizer:
    """Rebuild an optimizer over ``params`` from :meth:`Optimizer.get_config` (fresh state)."""
    if not isinstance(config, dict) or config.get("type") not in OPTIMIZERS:
        raise ValueError(f"an optimizer config must name one of {sorted(OPTIMIZERS)} as 'type', got {describe(config)}")
    options = {k: v for k, v in config.items() if k != "type"}
    try:
        return OPTIMIZERS[config["type"]](params, **options)
    except TypeError as exc:
        raise ValueError(f"cannot rebuild {config['type']} from {options}: {exc}") from None
