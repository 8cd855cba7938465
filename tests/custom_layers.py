"""A user-written layer shared by the tests: the example in the ``mg.Layer`` docstring."""
import numpy as np

import minigan as mg


class Scale(mg.Layer):
    """y = x * s, one learned scale per feature."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.add_param("s", np.linspace(0.5, 2.0, features))

    def forward(self, x):
        self.x = x
        return x * self.params["s"]

    def backward(self, grad_y):
        self.grads["s"] += (grad_y * self.x).sum(axis=0)
        return grad_y * self.params["s"]
