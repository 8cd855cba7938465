"""Helpers shared by several test files: a user-written layer and synthetic images."""
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


def textured(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 images (n, size, size): a smooth pattern plus noise, so plenty of non-zero DCT coefficients."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    img = 128 + 50 * np.sin(xx / 3.0 + phase) * np.cos(yy / 4.0) + rng.normal(0, 8, (n, size, size))
    return np.clip(img, 0, 255).astype(np.uint8)
