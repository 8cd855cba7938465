"""The training loop's extension points: extra discriminator terms, extra generator terms,
and a condition (labels) that travels with the real batch to conditional networks."""
from __future__ import annotations

import numpy as np
import pytest

import minigan as mg
from minigan.terms import DiscriminatorTerm, FrozenNetworkTerm, GeneratorTerm

pytestmark = pytest.mark.gan

LATENT, SIDE = 4, 4


def tiny_gan(D=None, **options):
    rng = np.random.default_rng(1)
    G = mg.models.mlp_generator(LATENT, (SIDE, SIDE), hidden=(8,), rng=rng)
    D = D or mg.models.mlp_discriminator((SIDE, SIDE), hidden=(6,), rng=rng)
    options.setdefault("d_optimizer", mg.optim.SGD(D.parameters(), lr=0.05))
    return mg.GAN(G, D, latent_dim=LATENT, seed=2, ema_decay=None, **options)


def data(n=32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIDE, SIDE)).astype(np.float32)


class ConstantPush(DiscriminatorTerm):
    """Adds 1 to the gradient of D's last bias, and records when it was called."""

    name = "push"

    def __init__(self, every=1):
        super().__init__(every)
        self.calls = []

    def add_gradients(self, discriminator, real, fake, condition, rng):
        self.calls.append((real.shape, fake.shape, float(discriminator.layers[-1].grads["b"][0])))
        discriminator.layers[-1].grads["b"] += 1.0
        return {"push": 1.0}


def test_a_discriminator_term_runs_on_every_kth_update_before_the_step():
    term = ConstantPush(every=3)
    gan = tiny_gan(discriminator_terms=[term], d_steps=2)
    batches = data(16)
    logged = [gan.train_step(batches[4 * i:4 * i + 4]) for i in range(4)]  # D updates 1-8: due on 3 and 6
    assert len(term.calls) == 2
    assert term.calls[0][:2] == ((4, SIDE * SIDE), (4, SIDE * SIDE))
    assert term.calls[0][2] != 0.0  # the objective's gradient was already there
    assert ["push" in logs for logs in logged] == [False, True, True, False]
    assert gan.log_names == ("d_loss", "g_loss", "d_real", "d_fake", "push")


def test_a_discriminator_term_changes_only_through_the_gradients():
    """With the term on every update, D's last bias moves by lr * 1 more than without (same batches, G frozen by lr 0)."""
    def frozen_g(**kw):
        gan = tiny_gan(**kw)
        gan.g_optimizer.lr = 0.0
        return gan

    with_term, without = frozen_g(discriminator_terms=[ConstantPush()]), frozen_g()
    batch = data(8)
    with_term.train_step(batch)
    without.train_step(batch)
    difference = with_term.discriminator.layers[-1].params["b"] - without.discriminator.layers[-1].params["b"]
    np.testing.assert_allclose(difference, -0.05, rtol=1e-6)


def test_terms_are_logged_in_the_metrics(tmp_path):
    term = ConstantPush(every=2)
    gan = tiny_gan(discriminator_terms=[term])
    result = gan.fit(data(), iterations=4, batch_size=8, out_dir=tmp_path / "run", progress=False)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["iteration", "d_loss", "g_loss", "d_real", "d_fake", "push", "seconds"]
    assert np.array_equal(result.history["push"], [np.nan, 1.0, np.nan, 1.0], equal_nan=True)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[5] for row in rows] == ["", "1", "", "1"]


def test_terms_must_be_terms():
    with pytest.raises(TypeError, match=r"discriminator_terms\[0\] must be a minigan.terms.DiscriminatorTerm"):
        tiny_gan(discriminator_terms=[lambda *a: None])
    with pytest.raises(TypeError, match=r"generator_terms\[0\] must be a minigan.terms.GeneratorTerm"):
        tiny_gan(generator_terms=[ConstantPush()])
    with pytest.raises(TypeError, match="network must be a minigan Sequential"):
        FrozenNetworkTerm("detector.npz")


class HalfImages(GeneratorTerm):
    """weight * mean(images^2) / 2, whose image gradient is weight * images / size."""

    name = "half"

    def add_image_gradient(self, images, condition, grad_images):
        grad_images += self.weight * images / images.size
        return {"half": float(self.weight * 0.5 * np.mean(images.astype(np.float64) ** 2))}


def test_a_generator_term_never_touches_the_discriminator():
    gan = tiny_gan(generator_terms=[HalfImages(weight=3.0)])
    plain = tiny_gan()
    batch = data(8)
    gan.train_step(batch)
    plain.train_step(batch)
    for a, b in zip(gan.discriminator.parameters(), plain.discriminator.parameters()):
        assert np.array_equal(a.value, b.value)  # the D step is the same
    assert any(not np.array_equal(a.value, b.value) for a, b in zip(gan.generator.parameters(),
                                                                     plain.generator.parameters()))


# ---------------------------------------------------------------- conditions
class ClassOffset(mg.Layer):
    """``y = x + E[c]``: a learned offset per class, and a log of what it was given."""

    uses_condition = True
    rows_independent = True  # declared: D can then take [real; fakes] in one pass

    def __init__(self, features, classes):
        super().__init__()
        self.add_param("E", np.zeros((classes, features), dtype=np.float32))
        self.seen = []

    def forward(self, x, condition):
        self.seen.append((x.copy(), np.array(condition)))
        self.condition = condition
        return x + self.params["E"][condition]

    def backward(self, grad_y):
        np.add.at(self.grads["E"], self.condition, grad_y)
        return grad_y


def labelled_data(n=24):
    labels = np.arange(n) % 3
    images = np.repeat((labels / 3.0 - 0.4)[:, None], SIDE * SIDE, axis=1).reshape(n, SIDE, SIDE)
    return images.astype(np.float32), labels


def conditional_gan():
    rng = np.random.default_rng(1)
    G = mg.Sequential([mg.Dense(LATENT, 8, rng=rng), mg.LeakyReLU(0.2), ClassOffset(8, 3),
                       mg.Dense(8, SIDE * SIDE, rng=rng), mg.Tanh()])
    offset = ClassOffset(SIDE * SIDE, 3)
    D = mg.Sequential([offset, mg.Dense(SIDE * SIDE, 6, rng=rng), mg.LeakyReLU(0.2), mg.Dense(6, 1, rng=rng)])
    return mg.GAN(G, D, latent_dim=LATENT, seed=3, ema_decay=None), offset


def test_the_condition_travels_with_the_real_batch(tmp_path):
    gan, offset = conditional_gan()
    assert gan.conditional and gan.discriminator.uses_condition
    images, labels = labelled_data()
    gan.fit(images, labels=labels, iterations=3, batch_size=6, progress=False)
    d_step_passes = [entry for entry in offset.seen if entry[0].shape[0] == 12]  # [real; fakes] stacked
    assert len(d_step_passes) == 3
    for x, condition in d_step_passes:
        real_rows, real_labels, fake_labels = x[:6], condition[:6], condition[6:]
        np.testing.assert_allclose(real_rows[:, 0], real_labels / 3.0 - 0.4, atol=1e-6)  # each image its own label
        assert np.array_equal(fake_labels, real_labels)  # the fakes are made for the batch's labels
    g_passes = [entry for entry in gan.generator.layers[2].seen]
    assert all(len(c) == 6 for _, c in g_passes)
    assert gan.discriminator.layers[0].grads["E"].any()  # the condition's own parameters learn


def test_conditions_are_required_by_conditional_networks_and_refused_by_others():
    gan, _ = conditional_gan()
    images, labels = labelled_data()
    with pytest.raises(ValueError, match="conditional: pass labels="):
        gan.train_step(images[:6])
    with pytest.raises(ValueError, match="conditional: pass labels="):
        gan.fit(images, iterations=1, batch_size=6, progress=False)
    with pytest.raises(ValueError, match="one entry per row"):
        gan.train_step(images[:6], labels[:5])
    with pytest.raises(ValueError, match="conditional"):
        gan.sample(4, seed=0)
    assert gan.sample(4, seed=0, labels=np.array([0, 1, 2, 0])).shape == (4, SIDE, SIDE)
    plain = tiny_gan()
    with pytest.raises(ValueError, match="take no labels"):
        plain.train_step(images[:6], labels[:6])
    with pytest.raises(ValueError, match="labels were given but neither network takes a condition"):
        plain.fit(images, labels=labels, iterations=1, batch_size=6, progress=False)
    with pytest.raises(TypeError, match="labels must be integers"):
        gan.fit(images, labels=labels.astype(float), iterations=1, batch_size=6, progress=False)


def test_a_conditional_run_resumes_bit_identically(tmp_path):
    images, labels = labelled_data()
    straight, _ = conditional_gan()
    straight.fit(images, labels=labels, iterations=6, batch_size=6, out_dir=tmp_path / "a", progress=False)
    first, _ = conditional_gan()
    first.fit(images, labels=labels, iterations=3, batch_size=6, out_dir=tmp_path / "b", progress=False)
    resumed, _ = conditional_gan()
    resumed.fit(images, labels=labels, iterations=6, batch_size=6, out_dir=tmp_path / "b", resume=True,
                progress=False)
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        assert np.array_equal(a.value, b.value)
    with pytest.raises(ValueError, match="data: the run was trained on"):
        conditional_gan()[0].fit(images, labels=(labels + 1) % 3, iterations=8, batch_size=6,
                                 out_dir=tmp_path / "b", resume=True, progress=False)
