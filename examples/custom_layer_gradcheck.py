"""Write a layer of your own and check its gradients two ways.

The layer is a softplus with a learned sharpness per feature::

    y_ij = softplus(beta_j * x_ij) / beta_j,    softplus(u) = log(1 + exp(u))

(a smooth ReLU whose corner each feature learns). Its backward pass, with
``s = sigmoid(beta_j x_ij)`` and ``g = dL/dy``::

    dL/dx_ij   = g_ij * s
    dL/dbeta_j = sum_i g_ij * (x_ij * s / beta_j - softplus(beta_j x_ij) / beta_j^2)

Two checks:

1. ``mg.gradcheck`` compares both gradients with central finite differences on one input.
2. A hypothesis property test built from :mod:`minigan.testing` repeats the check over
   many input shapes and values.

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


if __name__ == "__main__":
    report = check_with_gradcheck()
    print("mg.gradcheck(LearnedSoftplus(4), x) with x of shape (6, 4):")
    print(report)
    print(f"passed: {report.passed}, max relative error {report.max_rel_error:.2e}")
    count = property_test()
    print(f"hypothesis property test: gradients passed on {count} drawn inputs")
