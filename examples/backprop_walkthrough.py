"""One Dense -> LeakyReLU -> BatchNorm step by hand, term by term.

Runs a tiny batch through minigan's layers, then recomputes every gradient term
of the backward pass with plain NumPy from the equations (README: "The backward
pass, term by term"), prints each one next to minigan's, and finally checks all
of them against central finite differences with ``mg.gradcheck``.

    python examples/backprop_walkthrough.py
"""
import numpy as np

import minigan as mg

np.set_printoptions(precision=5, suppress=True)
rng = np.random.default_rng(0)
N, IN, OUT = 4, 3, 2

dense = mg.Dense(IN, OUT, dtype=np.float64, rng=rng)
leaky = mg.LeakyReLU(0.2)
norm = mg.BatchNorm(OUT, momentum=0.8, eps=1e-3, dtype=np.float64)
model = mg.Sequential([dense, leaky, norm])

x = rng.standard_normal((N, IN))
grad_out = rng.standard_normal((N, OUT))  # dL/dy arriving from the layers above

# ---- minigan ---------------------------------------------------------------
model.zero_grad()
y = model.forward(x)
grad_x = model.backward(grad_out)


def show(name, by_hand, by_minigan):
    agree = np.allclose(by_hand, by_minigan, rtol=1e-12, atol=1e-12)
    print(f"\n{name}  (agree: {agree})\n  by hand : {np.ravel(by_hand)}\n  minigan : {np.ravel(by_minigan)}")
    assert agree, name


# ---- forward, by hand ------------------------------------------------------
W, b = dense.params["W"], dense.params["b"]
z = x @ W + b                                    # Dense
a = np.where(z > 0, z, 0.2 * z)                  # LeakyReLU
mu, var = a.mean(axis=0), a.var(axis=0)          # biased batch variance
inv_std = 1 / np.sqrt(var + norm.eps)
a_hat = (a - mu) * inv_std
show("BatchNorm output y = gamma * a_hat + beta", norm.params["gamma"] * a_hat + norm.params["beta"], y)
show("running_mean = 0.8 * 0 + 0.2 * mu", 0.2 * mu, norm.running_mean)

# ---- backward, by hand -----------------------------------------------------
G = grad_out
s1, s2 = G.sum(axis=0), (G * a_hat).sum(axis=0)
show("BatchNorm dL/dbeta = sum_i G", s1, norm.grads["beta"])
show("BatchNorm dL/dgamma = sum_i G * a_hat", s2, norm.grads["gamma"])
grad_a = norm.params["gamma"] * inv_std * (G - s1 / N - a_hat * s2 / N)
print("\nBatchNorm dL/da = gamma / sqrt(var + eps) * (G - s1/N - a_hat * s2/N)\n  by hand :", grad_a.ravel())

grad_z = grad_a * np.where(a > 0, 1.0, 0.2)      # LeakyReLU derivative, read off its output a
print("\nLeakyReLU dL/dz = dL/da * (1 if a > 0 else alpha)\n  by hand :", grad_z.ravel())

show("Dense dL/db = sum_i dL/dz", grad_z.sum(axis=0), dense.grads["b"])
show("Dense dL/dW = x^T dL/dz", x.T @ grad_z, dense.grads["W"])
show("Dense dL/dx = dL/dz W^T", grad_z @ W.T, grad_x)

# ---- and all of it against finite differences --------------------------------
report = mg.gradcheck(model, x)
print("\nmg.gradcheck (central differences, float64):")
print(report)
print("\nevery term agrees; largest relative error", f"{report.max_rel_error:.2e}")
