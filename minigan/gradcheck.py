"""Gradient checking by central finite differences, in float64.

For a layer ``f`` and input ``x``, the scalar ``L = sum(r * f(x))`` with a fixed random
``r`` has ``dL/dy = r``; backward(r) gives the analytic ``dL/dx`` and ``dL/dtheta``.
Each entry is compared with ``(L(v + eps) - L(v - eps)) / (2 eps)``, whose error is
O(eps^2) -- about 1e-12 relative in float64 for smooth functions.

:func:`gradcheck_second_order` does the same for a layer's second-order pass
(``tangent_forward`` / ``tangent_backward``, used by the gradient penalties): each
tangent is the derivative of the first-order pass along a direction, compared with
the central difference of that pass along the same direction, and the gradient of a
penalty on the input gradient is compared entry by entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._validation import check_float_array, check_real, describe
from .layers import Layer
from .losses import Loss


@dataclass
class TensorError:
    """Errors for one tensor.

    ``max_rel_error`` is ``max |a - n| / max(|a|, |n|, atol / rtol)`` over entries (entries
    whose gradient is below ``atol / rtol`` are measured against that floor), and
    ``norm_rel_error`` is ``||a - n|| / max(||a||, ||n||)`` over the whole tensor.
    """

    name: str
    max_abs_error: float
    max_rel_error: float
    norm_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    passed: bool


@dataclass
class GradcheckReport:
    """Per-tensor results of :func:`gradcheck`; ``passed`` is True when all tensors pass."""

    tensors: list[TensorError] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def __getitem__(self, name: str) -> TensorError:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def __str__(self) -> str:
        width = max([16, *(len(t.name) + 2 for t in self.tensors)])
        lines = [f"{'tensor':<{width}}{'max abs err':>14}{'max rel err':>14}  ok"]
        for t in self.tensors:
            lines.append(f"{t.name:<{width}}{t.max_abs_error:>14.3e}{t.max_rel_error:>14.3e}  "
                         f"{'yes' if t.passed else 'NO'}")
        return "\n".join(lines)


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> TensorError:
    diff = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    # Below atol / rtol a gradient entry is ~0 and its error is judged in absolute
    # terms (finite differences carry ~1e-10 of round-off whatever the entry's size).
    floor = atol / rtol if rtol > 0 else np.finfo(np.float64).tiny
    rel = diff / np.maximum(scale, max(floor, np.finfo(np.float64).tiny))
    bad = diff - (atol + rtol * scale)
    worst = np.unravel_index(int(np.argmax(bad)), analytic.shape) if analytic.size else ()
    return TensorError(
        name=name,
        max_abs_error=float(diff.max(initial=0.0)),
        max_rel_error=float(rel.max(initial=0.0)),
        norm_rel_error=float(np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-300)),
        worst_index=tuple(int(i) for i in worst),
        analytic=float(analytic[worst]) if analytic.size else 0.0,
        numeric=float(numeric[worst]) if analytic.size else 0.0,
        passed=bool((bad <= 0).all()),
    )



def _raise_if_failed(report: GradcheckReport, what: str) -> None:
    """An AssertionError naming the worst tensor entry of a failed check, with the whole report."""
    if report.passed:
        return
    worst = max((t for t in report.tensors if not t.passed), key=lambda t: t.max_rel_error)
    raise AssertionError(
        f"{what} failed for {worst.name}{list(worst.worst_index)}: analytic {worst.analytic:.10g}, "
        f"numeric {worst.numeric:.10g} (max abs error {worst.max_abs_error:.3e}, "
        f"max rel error {worst.max_rel_error:.3e})\n{report}"
    )


def _numeric_gradient(func: Callable[[], float], array: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of ``func()`` with respect to every entry of ``array`` (perturbed in place)."""
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)
    out = grad.reshape(-1)
    for k in range(flat.size):  # a checking tool, not a training step: a Python loop is fine here
        original = flat[k]
        flat[k] = original + eps
        plus = func()
        flat[k] = original - eps
        minus = func()
        flat[k] = original
        out[k] = (plus - minus) / (2 * eps)
    return grad


def _generators(layer: Layer) -> list[np.random.Generator]:
    """Every numpy Generator a layer (or its sub-layers) draws from, e.g. Dropout's masks."""
    found = []
    stack = [layer]
    while stack:
        obj = stack.pop()
        for value in vars(obj).values():
            if isinstance(value, np.random.Generator):
                found.append(value)
            elif isinstance(value, Layer):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, Layer))
    return found


def gradcheck(
    target: Any,
    x: np.ndarray,
    *,
    labels: Any = None,
    condition: Any = None,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckReport:
    """Check analytic gradients against central finite differences in float64.

    Parameters
    ----------
    target : Layer, Loss or callable
        * a :class:`~minigan.layers.Layer` (built-in, ``Sequential`` or your own subclass):
          checks dL/dx and dL/d(every parameter) for ``L = sum(r * layer(x))``. A float32
          layer is checked on a float64 copy (the layer itself is not changed).
        * a :class:`~minigan.losses.Loss`: checks dL/dpred; pass the target as ``labels``.
        * a callable ``f(x) -> (value, grad)``: checks ``grad`` against ``f``'s values.
    x : ndarray
        The input (for a loss, the prediction). Converted to float64.
    labels : array-like or float, optional
        The target of a loss.
    condition : ndarray (N,), optional
        For a layer (or Sequential) that ``uses_condition``: the condition given to
        every forward pass, e.g. integer class labels. It is held fixed: only ``x``
        and the parameters are perturbed.
    eps : float
        Finite-difference step.
    rtol, atol : float
        An entry passes when ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.
    seed : int
        Seed of the random projection ``r``.
    raise_on_failure : bool
        Raise AssertionError naming the worst entry when a tensor fails (default).

    Returns
    -------
    GradcheckReport
        ``report.tensors`` holds, per tensor (``"x"``, then parameter names), the max
        absolute and relative errors.
    """
    eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
    rtol = check_real(rtol, "rtol", minimum=0.0)
    atol = check_real(atol, "atol", minimum=0.0)
    x = check_float_array(np.asarray(x, dtype=np.float64) if isinstance(x, np.ndarray) else x, "x").astype(np.float64)
    report = GradcheckReport()

    if condition is not None and not (isinstance(target, Layer) and target.uses_condition):
        raise ValueError(f"condition is for a layer that uses one (uses_condition), got {describe(target)}")
    if isinstance(target, Layer):
        if target.uses_condition:
            _check_condition_for(target, x, condition)
        report = _check_layer(target, x, eps, rtol, atol, seed, condition)
    elif isinstance(target, Loss) or hasattr(target, "backward") and hasattr(target, "forward"):
        if labels is None:
            raise ValueError("labels must be given to check a loss: gradcheck(loss, pred, labels=target)")
        loss = target
        if isinstance(labels, np.ndarray) and labels.dtype.kind == "f":
            labels = labels.astype(np.float64)
        loss.forward(x, labels)
        analytic = np.array(loss.backward(), dtype=np.float64)
        numeric = _numeric_gradient(lambda: float(loss.forward(x, labels)), x, eps)
        report.tensors.append(_compare("pred", analytic, numeric, rtol, atol))
    elif callable(target):
        value, analytic = target(x)
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != x.shape:
            raise ValueError(f"the gradient returned by the function must have shape {x.shape}, got {analytic.shape}")
        numeric = _numeric_gradient(lambda: float(target(x)[0]), x, eps)
        report.tensors.append(_compare("x", analytic, numeric, rtol, atol))
    else:
        raise TypeError(f"target must be a Layer, a Loss or a callable f(x) -> (value, grad), got {describe(target)}")

    if raise_on_failure:
        _raise_if_failed(report, "gradient check")
    return report


def _check_condition_for(layer: Layer, x: np.ndarray, condition: Any) -> None:
    if condition is None:
        raise ValueError(f"{layer!r} uses a condition: pass condition= (e.g. integer labels, one per row of x)")
    if not isinstance(condition, np.ndarray) or condition.ndim < 1 or condition.shape[0] != x.shape[0]:
        raise ValueError(f"condition must be an array with one entry per row of x ({x.shape[0]}), "
                         f"got {describe(condition)}")
    layer.validate_condition(condition, "condition")


def _check_layer(layer: Layer, x: np.ndarray, eps: float, rtol: float, atol: float, seed: int,
                 condition: Any = None) -> GradcheckReport:
    layer = layer.astype(np.float64)  # a private float64 copy: the caller's layer is untouched
    generators = _generators(layer)
    rng_states = [g.bit_generator.state for g in generators]
    buffers = {k: v.copy() for k, v in layer.buffers.items()}

    def run_forward() -> np.ndarray:
        # Same random draws (e.g. dropout masks) and same running statistics at every evaluation.
        for g, s in zip(generators, rng_states):
            g.bit_generator.state = s
        for k, v in buffers.items():
            layer.buffers[k][...] = v
        return layer.forward(x, condition) if layer.uses_condition else layer.forward(x)

    y = run_forward()
    projection = np.random.default_rng(seed).standard_normal(y.shape)
    layer.zero_grad()
    grad_x = np.asarray(layer.backward(projection), dtype=np.float64)
    analytic = {name: g.copy() for name, g in layer.grads.items()}

    def loss() -> float:
        return float(np.sum(projection * run_forward()))

    report = GradcheckReport()
    report.tensors.append(_compare("x", grad_x, _numeric_gradient(loss, x, eps), rtol, atol))
    for name, value in layer.params.items():
        report.tensors.append(_compare(name, analytic[name], _numeric_gradient(loss, value, eps), rtol, atol))
    return report


def gradcheck_second_order(
    layer: Layer,
    x: np.ndarray,
    *,
    condition: Any = None,
    directions: int = 2,
    penalty: bool = True,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckReport:
    """Check a layer's second-order pass by central finite differences in float64.

    The second-order pass (see :class:`minigan.Layer`) is the derivative of the
    first-order one along a perturbation ``v`` of the input. With a fixed random
    projection ``r`` (N, out) as ``grad_y`` and random directions ``v`` (N, in) and
    ``r_dot`` (N, out), the layer's own first-order pass is differentiated numerically:

    * ``tangent_forward``: ``tangent_forward(v)`` against ``(f(x + eps v) - f(x - eps v)) / (2 eps)``;
    * ``tangent_backward:x`` and ``tangent_backward:<param>``: ``tangent_backward(r, r_dot)``
      (its return value and what it adds into ``grads``) against the central difference
      of ``backward`` at ``(x +- eps v, r +- eps r_dot)``; ``tangent_backward(0):...``: the
      same with ``grad_y_dot=None`` (zero) and ``r`` fixed. ``grads`` are filled with
      random values first, so a method that overwrites instead of adding fails;
    * ``penalty:<param>`` (with ``penalty=True``): the gradient of
      ``P = mean_i ||g_i||^2``, ``g = d sum(r * f(x)) / dx``, that
      :func:`minigan.penalties.gradient_penalty` computes through the layer, entry by
      entry against central differences of ``P`` computed with ``forward`` and
      ``backward`` alone.

    Parameters
    ----------
    layer : Layer
        Built-in, ``Sequential`` or your own subclass; checked on a float64 copy (the
        layer itself is not changed).
    x : ndarray (N, in_features)
        Keep it away from kinks (e.g. of a ReLU) by more than ``eps``.
    condition : ndarray (N,), optional
        For a layer that ``uses_condition``.
    directions : int
        How many random directions ``(v, r_dot)`` to check.
    penalty : bool
        Also check the penalty's parameter gradient entry by entry (two passes per entry).
    eps, rtol, atol, seed, raise_on_failure
        As in :func:`gradcheck`.

    Returns
    -------
    GradcheckReport
        Per-tensor errors, named as above (``#k`` numbers the direction).

    Raises
    ------
    AssertionError
        A tensor failed (when ``raise_on_failure``), or ``tangent_backward`` changed a parameter.
    NotImplementedError
        The layer has no second-order pass (the message says what to write).
    """
    from .layers import has_second_order, missing_second_order
    from .model import Sequential
    from .penalties import gradient_penalty_unchecked
    from . import kernels as K

    eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
    rtol = check_real(rtol, "rtol", minimum=0.0)
    atol = check_real(atol, "atol", minimum=0.0)
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a minigan Layer, got {describe(layer)}")
    if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
        raise ValueError(f"directions must be an integer >= 1, got {describe(directions)}")
    if not has_second_order(layer):
        raise NotImplementedError(missing_second_order(layer))
    x = check_float_array(x, "x", ndim=2).astype(np.float64)
    layer = layer.astype(np.float64)
    generators = _generators(layer)
    rng_states = [g.bit_generator.state for g in generators]
    buffers = {k: v.copy() for k, v in layer.buffers.items()}
    takes_condition = layer.uses_condition or isinstance(layer, Sequential)

    def reset() -> None:
        for g, state in zip(generators, rng_states):
            g.bit_generator.state = state
        for k, v in buffers.items():
            layer.buffers[k][...] = v

    def forward(inputs: np.ndarray) -> np.ndarray:
        reset()
        out = layer.forward(inputs, condition) if takes_condition else layer.forward(inputs)
        return np.asarray(out, dtype=np.float64)

    def backward(inputs: np.ndarray, grad_y: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        forward(inputs)
        layer.zero_grad()
        grad_x = np.asarray(layer.backward(grad_y), dtype=np.float64)
        return grad_x, {name: g.copy() for name, g in layer.grads.items()}

    y = forward(x)
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(y.shape)
    report = GradcheckReport()
    params_before = {name: value.copy() for name, value in layer.params.items()}
    for k in range(directions):
        v = rng.standard_normal(x.shape)
        r_dot = rng.standard_normal(y.shape)
        # the analytic tangents, after a forward and a backward of (x, r)
        backward(x, r)
        y_dot = np.asarray(layer.tangent_forward(v), dtype=np.float64)
        plus, minus = forward(x + eps * v), forward(x - eps * v)
        report.tensors.append(_compare(f"tangent_forward#{k}", y_dot, (plus - minus) / (2 * eps), rtol, atol))
        for label, grad_y_dot in (("tangent_backward", r_dot), ("tangent_backward(0)", None)):
            backward(x, r)
            layer.tangent_forward(v)
            before = {name: rng.standard_normal(g.shape) for name, g in layer.grads.items()}
            for name, g in layer.grads.items():
                g[...] = before[name]
            x_dot = layer.tangent_backward(r, grad_y_dot, K.GRAD_ADD)
            analytic = {name: layer.grads[name] - before[name] for name in before}
            analytic_x = np.zeros_like(x) if x_dot is None else np.asarray(x_dot, dtype=np.float64)
            step = np.zeros_like(r) if grad_y_dot is None else grad_y_dot
            gx_plus, gp_plus = backward(x + eps * v, r + eps * step)
            gx_minus, gp_minus = backward(x - eps * v, r - eps * step)
            report.tensors.append(_compare(f"{label}:x#{k}", analytic_x, (gx_plus - gx_minus) / (2 * eps), rtol, atol))
            for name in before:
                numeric = (gp_plus[name] - gp_minus[name]) / (2 * eps)
                report.tensors.append(_compare(f"{label}:{name}#{k}", analytic[name], numeric, rtol, atol))
    for name, value in layer.params.items():
        if not np.array_equal(value, params_before[name]):
            raise AssertionError(f"the second-order pass changed the parameter {name!r}: it must only fill grads")

    if penalty and layer.params:
        model = layer if isinstance(layer, Sequential) else Sequential([layer])

        def penalty_value() -> float:
            grad_x, _ = backward(x, r)
            return float(np.mean(np.sum(grad_x * grad_x, axis=1)))

        reset()
        layer.zero_grad()
        gradient_penalty_unchecked(model, x, 1.0, 0.0, condition, grad_output=r)
        analytic = {name: g.copy() for name, g in layer.grads.items()}
        for name, value in layer.params.items():
            numeric = _numeric_gradient(penalty_value, value, eps)
            report.tensors.append(_compare(f"penalty:{name}", analytic[name], numeric, rtol, atol))

    if raise_on_failure:
        _raise_if_failed(report, "second-order check")
    return report
