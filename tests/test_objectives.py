"""The GAN objectives, checked against an independent recomputation of a whole train_step.

Each test builds a tiny float64 GAN with SGD optimizers, runs one ``train_step``, and
recomputes the same iteration from scratch in plain NumPy: the same noise draws, the
networks' forward passes written out, each objective's losses written from its
formula, and every gradient by central differences of those losses. SGD makes the
update ``theta - lr * grad``, so the new weights give the gradients back. A flipped
target, a missing half or a wrong factor in any objective changes the numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

import minigan as mg
from minigan.objectives import OBJECTIVES, make_objective
from minigan.terms import FrozenNetworkTerm

pytestmark = pytest.mark.gan

LATENT, FEATURES, BATCH, LR = 3, 4, 6, 0.1


def softplus_bce(z, t):
    """Binary cross-entropy on logits, elementwise."""
    return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))


def d_loss(name, s_real, s_fake, smoothing=0.0):
    if name == "bce":
        return 0.5 * (softplus_bce(s_real, 1 - smoothing).mean() + softplus_bce(s_fake, 0.0).mean())
    if name == "lsgan":
        return 0.5 * (((s_real - (1 - smoothing)) ** 2).mean() + (s_fake ** 2).mean())
    if name == "hinge":
        return 0.5 * (np.maximum(0, 1 - s_real).mean() + np.maximum(0, 1 + s_fake).mean())
    if name == "wgan":
        return 0.5 * (-s_real.mean() + s_fake.mean())
    if name == "wgan-gp":  # the paper's critic loss, halves not averaged (the penalty is added apart)
        return -s_real.mean() + s_fake.mean()
    if name == "rabce":
        a_real, a_fake = s_real - s_fake.mean(), s_fake - s_real.mean()
        return 0.5 * (softplus_bce(a_real, 1 - smoothing).mean() + softplus_bce(a_fake, 0.0).mean())
    raise AssertionError(name)


def g_loss(name, s_fake, s_real):
    if name == "bce":
        return softplus_bce(s_fake, 1.0).mean()
    if name == "lsgan":
        return ((s_fake - 1) ** 2).mean()
    if name in ("hinge", "wgan", "wgan-gp"):
        return -s_fake.mean()
    if name == "rabce":
        a_fake, a_real = s_fake - s_real.mean(), s_real - s_fake.mean()
        return 0.5 * (softplus_bce(a_fake, 1.0).mean() + softplus_bce(a_real, 0.0).mean())
    raise AssertionError(name)


# ---------------------------------------------------------------- the networks, written out
def leaky(v, alpha=0.2):
    return np.where(v > 0, v, alpha * v)


def generator_forward(p, z):
    return np.tanh(leaky(z @ p["0.W"] + p["0.b"]) @ p["2.W"] + p["2.b"])


def discriminator_forward(p, x, batchnorm):
    h = x @ p["0.W"] + p["0.b"]
    if batchnorm:  # training mode: this pass's own batch statistics (biased variance), eps 1e-3
        h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-3) * p["1.gamma"] + p["1.beta"]
        return leaky(h) @ p["3.W"] + p["3.b"]
    return leaky(h) @ p["2.W"] + p["2.b"]


def discriminator_input_gradient(p, x):
    """d(sum of scores)/dx of the one-pass D, written out: (N, features)."""
    h = x @ p["0.W"] + p["0.b"]
    slope = np.where(h > 0, 1.0, 0.2)
    return (slope * p["2.W"][:, 0]) @ p["0.W"].T


def numeric_gradient(f, params):
    """Central differences of ``f()`` with respect to every entry of every array in ``params``."""
    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for k in range(value.size):
            original = value.flat[k]
            value.flat[k] = original + 1e-6
            plus = f()
            value.flat[k] = original - 1e-6
            minus = f()
            value.flat[k] = original
            grad.flat[k] = (plus - minus) / 2e-6
        grads[name] = grad
    return grads


def build(batchnorm: bool, loss: str, **options):
    rng = np.random.default_rng(7)
    G = mg.Sequential([mg.Dense(LATENT, 5, dtype=np.float64, rng=rng), mg.LeakyReLU(0.2),
                       mg.Dense(5, FEATURES, dtype=np.float64, rng=rng), mg.Tanh()])
    hidden = [mg.Dense(FEATURES, 5, dtype=np.float64, rng=rng)]
    if batchnorm:
        hidden.append(mg.BatchNorm(5, dtype=np.float64))
    D = mg.Sequential([*hidden, mg.LeakyReLU(0.2), mg.Dense(5, 1, dtype=np.float64, rng=rng)])
    for p in D.parameters():  # sizeable weights so that no score sits where every loss is flat
        p.value[...] *= 3.0
    return mg.GAN(G, D, latent_dim=LATENT, loss=loss, seed=11, ema_decay=None, image_shape=(FEATURES,),
                  g_optimizer=mg.optim.SGD(G.parameters(), lr=LR), d_optimizer=mg.optim.SGD(D.parameters(), lr=LR),
                  **options)


def expected_step(gan, real, name, *, batchnorm, smoothing=0.0, clip=None, term=None):
    """Everything one train_step should do, recomputed independently."""
    rng = np.random.default_rng(11)  # the GAN's stream: D-step noise, [the interpolation factors], G-step noise
    z_d = rng.standard_normal((BATCH, LATENT))
    eps = rng.random((BATCH, 1)) if name == "wgan-gp" else None
    z_g = rng.standard_normal((BATCH, LATENT))
    g_params = {k: v.copy() for k, v in gan.generator.params.items()}
    d_params = {k: v.copy() for k, v in gan.discriminator.params.items()}

    fake_d = generator_forward(g_params, z_d)

    def discriminator_objective():
        value = d_loss(name, discriminator_forward(d_params, real, batchnorm),
                       discriminator_forward(d_params, fake_d, batchnorm), smoothing)
        if eps is not None:  # WGAN-GP: 10 * mean (||grad_x D(x_hat)|| - 1)^2 on the interpolates
            norms = np.linalg.norm(discriminator_input_gradient(d_params, fake_d + eps * (real - fake_d)), axis=1)
            value = value + 10.0 * np.mean((norms - 1.0) ** 2)
        return value

    s_real, s_fake = discriminator_forward(d_params, real, batchnorm), discriminator_forward(d_params, fake_d, batchnorm)
    logged_d = d_loss(name, s_real, s_fake, smoothing)  # the objective's part; terms log their own
    d_grads = numeric_gradient(discriminator_objective, d_params)
    new_d = {k: d_params[k] - LR * d_grads[k] for k in d_params}
    if clip is not None:
        new_d = {k: np.clip(v, -clip, clip) for k, v in new_d.items()}

    def generator_objective():
        s_fake_g = discriminator_forward(new_d, generator_forward(g_params, z_g), batchnorm)
        s_real_g = discriminator_forward(new_d, real, batchnorm)
        value = g_loss(name, s_fake_g, s_real_g)
        if term is not None:  # a frozen linear network wanting its output at 0 (mse), weighted
            network, weight = term
            value = value + weight * ((generator_forward(g_params, z_g) @ network["0.W"] + network["0.b"]) ** 2).mean()
        return value

    logged_g = g_loss(name, discriminator_forward(new_d, generator_forward(g_params, z_g), batchnorm),
                      discriminator_forward(new_d, real, batchnorm))
    g_grads = numeric_gradient(generator_objective, g_params)
    new_g = {k: g_params[k] - LR * g_grads[k] for k in g_params}
    return {"D": new_d, "G": new_g, "d_loss": logged_d, "g_loss": logged_g, "s_real": s_real, "s_fake": s_fake}


def real_batch():
    return np.random.default_rng(3).uniform(-0.9, 0.9, (BATCH, FEATURES))


def assert_step_matches(gan, expected, name):
    for net, key in ((gan.discriminator, "D"), (gan.generator, "G")):
        for param, value in expected[key].items():
            np.testing.assert_allclose(net.params[param], value, rtol=1e-7, atol=1e-8,
                                       err_msg=f"{name}: {key} {param}")


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
@pytest.mark.parametrize("batchnorm", [False, True], ids=["one-pass D", "two-pass D with BatchNorm"])
def test_train_step_matches_an_independent_recomputation(name, batchnorm):
    options = {"clip_value": 0.6} if name == "wgan" else {}
    if name == "wgan-gp" and batchnorm:
        with pytest.raises(ValueError, match="BatchNorm"):  # a penalty needs rows that are independent
            build(batchnorm, name).train_step(real_batch())
        return
    gan = build(batchnorm, name, **options)
    assert gan._stack_d_batches is not batchnorm
    real = real_batch()
    expected = expected_step(gan, real, name, batchnorm=batchnorm, clip=options.get("clip_value"))
    logs = gan.train_step(real)
    assert_step_matches(gan, expected, name)
    assert logs["d_loss"] == pytest.approx(expected["d_loss"], rel=1e-9)
    assert logs["g_loss"] == pytest.approx(expected["g_loss"], rel=1e-7)  # through the updated D
    if name == "bce":  # logged summaries: mean probabilities of the D step
        sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        assert logs["d_real"] == pytest.approx(sigmoid(expected["s_real"]).mean(), rel=1e-9)
        assert logs["d_fake"] == pytest.approx(sigmoid(expected["s_fake"]).mean(), rel=1e-9)
    elif name == "rabce":
        sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        a_real = expected["s_real"] - expected["s_fake"].mean()
        assert logs["d_real"] == pytest.approx(sigmoid(a_real).mean(), rel=1e-9)
    else:
        assert logs["d_real"] == pytest.approx(expected["s_real"].mean(), rel=1e-9)
        assert logs["d_fake"] == pytest.approx(expected["s_fake"].mean(), rel=1e-9)


@pytest.mark.parametrize("name", ["bce", "lsgan", "rabce"])
def test_label_smoothing_moves_the_real_target(name):
    gan = build(False, name, label_smoothing=0.2)
    real = real_batch()
    expected = expected_step(gan, real, name, batchnorm=False, smoothing=0.2)
    gan.train_step(real)
    assert_step_matches(gan, expected, name)


def test_a_generator_term_adds_its_gradient():
    """A frozen network's loss on the fakes, weighted, joins G's gradient (and never D's)."""
    gan = build(False, "hinge")
    frozen = mg.Sequential([mg.Dense(FEATURES, 2, dtype=np.float64, rng=5)])
    gan.generator_terms.append(FrozenNetworkTerm(frozen, target=0.0, loss="mse", weight=0.7, name="frozen"))
    frozen_before = {k: v.copy() for k, v in frozen.params.items()}
    real = real_batch()
    expected = expected_step(gan, real, "hinge", batchnorm=False, term=(frozen_before, 0.7))
    logs = gan.train_step(real)
    assert_step_matches(gan, expected, "hinge + frozen term")
    assert all(np.array_equal(frozen.params[k], v) for k, v in frozen_before.items())
    assert all(not g.any() for g in frozen.grads.values())
    assert logs["frozen"] > 0


# ---------------------------------------------------------------- registry and options
def test_every_objective_is_reachable_by_name_and_round_trips_its_config():
    from minigan.objectives import objective_config, objective_from_config

    for name, cls in OBJECTIVES.items():
        objective = make_objective(name)
        assert isinstance(objective, cls) and objective.name == name
        assert objective_from_config(objective_config(objective)).get_config() == objective.get_config()


def test_options_an_objective_does_not_take_are_refused():
    with pytest.raises(ValueError, match="label_smoothing=0.1 has no meaning for loss 'hinge'.*bce, lsgan, rabce"):
        make_objective("hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="clip_value.*wgan"):
        make_objective("bce", clip_value=0.05)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_objective("minimax")
    assert make_objective("hinge", label_smoothing=0.0).name == "hinge"  # the neutral value is fine


def test_rabce_generator_loss_needs_the_real_scores():
    with pytest.raises(ValueError, match="real batch"):
        make_objective("rabce").generator_loss(np.zeros((2, 1)), None, np.zeros((2, 1)))
