"""Write a layer of your own and check its gradients two ways.

The layer is a softplus with a learned sharpness per feature::

    y_ij = softplus(beta_j * x_ij) / beta_j,    softplus(u) = log(1 + exp(u))

(a smooth ReLU whose corner each feature learns). Its backward pass, with
``s = sigmoid(beta_j x_ij)`` and ``g = dL/dy``::

    dL/dx_ij   = g_ij * s
    dL/dbeta_j = sum_i g_ij * (x_ij * s / beta_j - softplus(beta_j x_ij) / beta_j^2)

Gradient penalties (``minigan.penalties``) also need the layer's second-order pass: the
derivative of the forward and of the backward along a perturbation ``x_dot`` of the
input (see ``minigan.Layer``, "The second-order pass"). With ``u = beta x``,
``s = sigmoid(u)`` and ``s' = ds/dx = beta s (1 - s)``::

    y_dot              = s * x_dot
    R{dL/dx}_ij        = g_dot_ij * s + g_ij * s' * x_dot_ij
    R{dL/dbeta}_j      = sum_i g_dot_ij * (x s / beta - softplus(u) / beta^2) + g_ij * x s (1 - s) * x_dot_ij

(the last term because d/dx (x s / beta - softplus(u) / beta^2) = x s (1 - s)).

Three checks:

1. ``mg.gradcheck`` compares both gradients with central finite differences on one input.
2. A hypothesis property test built from :mod:`minigan.testing` repeats the check over
   many input shapes and values.
3. ``mg.gradcheck_second_order`` checks the second-order pass the same way, and the
   gradient of a penalty on the input gradient entry by entry.

Run it: ``python examples/custom_layer_gradcheck.py``.
"""
from __future__ import annotations

import numpy as np

import minigan as mg


class LearnedSoftplus(mg.Layer):
    """``y = softplus(beta * x) / beta`` with one learned ``beta > 0`` per feature.

    Shapes: x (N, F) -> y (N, F); params["beta"] (F,).
    """

    def __init__(self, features: int, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        rng = np.random.default_rng(rng)
        self.add_param("beta", rng.uniform(0.5, 2.0, size=features))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, F) -> y (N, F); keeps x for backward."""
        self.x = x
        beta = self.params["beta"]
        return np.logaddexp(0.0, beta * x) / beta  # logaddexp(0, u) = softplus(u), without overflow

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """grad_y (N, F) -> grad_x (N, F); adds dL/dbeta (F,) into grads["beta"]."""
        x, beta = self.x, self.params["beta"]
        u = beta * x
        s = 0.5 * (1.0 + np.tanh(0.5 * u))  # sigmoid(u), stable for large |u|
        dy_dbeta = x * s / beta - np.logaddexp(0.0, u) / beta**2
        self.grads["beta"] += (grad_y * dy_dbeta).sum(axis=0)  # add, never overwrite
        return grad_y * s

    # -- the second-order pass, for gradient penalties --------------------------
    def tangent_forward(self, x_dot: np.ndarray) -> np.ndarray:
        """x_dot (N, F) -> y_dot = s * x_dot (N, F); keeps x_dot for tangent_backward."""
        self.x_dot = x_dot
        return x_dot * 0.5 * (1.0 + np.tanh(0.5 * self.params["beta"] * self.x))

    def tangent_backward(self, grad_y: np.ndarray, grad_y_dot: np.ndarray | None,
                         grad_mode: int = mg.kernels.GRAD_ADD) -> np.ndarray | None:
        """R{dL/dx} (N, F); adds R{dL/dbeta} (F,) into grads["beta"]. grad_y_dot None means zero."""
        x, x_dot, beta = self.x, self.x_dot, self.params["beta"]
        u = beta * x
        s = 0.5 * (1.0 + np.tanh(0.5 * u))
        tangent_beta = grad_y * x * s * (1.0 - s) * x_dot
        grad_x_dot = grad_y * beta * s * (1.0 - s) * x_dot
        if grad_y_dot is not None:
            tangent_beta = tangent_beta + grad_y_dot * (x * s / beta - np.logaddexp(0.0, u) / beta**2)
            grad_x_dot = grad_x_dot + grad_y_dot * s
        if grad_mode == mg.kernels.GRAD_ADD:
            self.grads["beta"] += tangent_beta.sum(axis=0)
        elif grad_mode == mg.kernels.GRAD_WRITE:
            self.grads["beta"][...] = tangent_beta.sum(axis=0)
        return grad_x_dot


def check_with_gradcheck(seed: int = 0) -> mg.GradcheckReport:
    """Check LearnedSoftplus(4) on one random (6, 4) input; raises AssertionError on a bad gradient."""
    rng = np.random.default_rng(seed)
    layer = LearnedSoftplus(4, rng=rng)
    x = rng.normal(0.0, 2.0, size=(6, 4))
    return mg.gradcheck(layer, x)


def property_test(max_examples: int = 25) -> int:
    """Run the gradient check over hypothesis-drawn inputs; return the number of examples run."""
    from hypothesis import given, settings

    from minigan import testing as mgt

    examples = []

    @settings(deadline=None, max_examples=max_examples, database=None)
    @given(mgt.feature_sizes(1, 5).flatmap(lambda f: mgt.inputs_for(f)), mgt.seeds())
    def gradients_are_right(x: np.ndarray, seed: int) -> None:
        report = mg.gradcheck(LearnedSoftplus(x.shape[1], rng=seed), x)
        assert report.max_rel_error < 1e-6, report
        examples.append(x.shape)

    gradients_are_right()
    return len(examples)


def check_second_order(seed: int = 0) -> mg.GradcheckReport:
    """Check LearnedSoftplus(4)'s tangent_forward / tangent_backward and a penalty's gradient
    through it by central differences; raises AssertionError if one is wrong."""
    rng = np.random.default_rng(seed)
    layer = LearnedSoftplus(4, rng=rng)
    x = rng.normal(0.0, 2.0, size=(6, 4))
    return mg.gradcheck_second_order(layer, x, directions=1)


def penalty_through_the_layer(seed: int = 0) -> float:
    """The R1 penalty of a small discriminator that holds the layer (what a GAN adds to D's loss)."""
    rng = np.random.default_rng(seed)
    model = mg.Sequential([mg.Dense(3, 4, dtype=np.float64, rng=rng), LearnedSoftplus(4, rng=rng),
                           mg.Dense(4, 1, dtype=np.float64, rng=rng)])
    return mg.penalties.r1(model, rng.normal(size=(8, 3)), gamma=10.0)


if __name__ == "__main__":
    report = check_with_gradcheck()
    print("mg.gradcheck(LearnedSoftplus(4), x) with x of shape (6, 4):")
    print(report)
    print(f"passed: {report.passed}, max relative error {report.max_rel_error:.2e}")
    count = property_test()
    print(f"hypothesis property test: gradients passed on {count} drawn inputs")
    second = check_second_order()
    print("\nmg.gradcheck_second_order(LearnedSoftplus(4), x): the second-order pass and a penalty's gradient")
    print(second)
    print(f"passed: {second.passed}, max relative error {second.max_rel_error:.2e}")
    value = penalty_through_the_layer()
    print(f"R1 through Dense -> LearnedSoftplus -> Dense: {value:.6f}, its gradient added into the layers' grads")
