"""Ready-made models: the article's reference G and D (Keras-GAN's gan/gan.py), the mlp builders, build_gan."""
from __future__ import annotations

import numpy as np
import pytest

import minigan as mg
from minigan.models import build_gan, mlp_discriminator, mlp_generator, reference_discriminator, reference_generator

pytestmark = pytest.mark.gan


def layer_signature(model: mg.Sequential) -> list[tuple]:
    """(kind, sizes...) for every layer, as one would read them off Keras-GAN's model definition."""
    out = []
    for layer in model.layers:
        if isinstance(layer, mg.Dense):
            out.append(("Dense", layer.in_features, layer.out_features))
        elif isinstance(layer, mg.BatchNorm):
            out.append(("BatchNorm", layer.num_features))
        elif isinstance(layer, mg.LeakyReLU):
            out.append(("LeakyReLU", float(layer.alpha)))
        else:
            out.append((type(layer).__name__,))
    return out


def count_from_signature(signature: list[tuple]) -> int:
    """Trainable scalars counted from layer sizes alone: Dense (in+1)*out, BatchNorm gamma+beta."""
    total = 0
    for entry in signature:
        if entry[0] == "Dense":
            total += (entry[1] + 1) * entry[2]
        elif entry[0] == "BatchNorm":
            total += 2 * entry[1]
    return total


# ---------------------------------------------------------------- reference architecture
def test_reference_generator_layers_match_the_guide():
    G = reference_generator()
    assert layer_signature(G) == [
        ("Dense", 100, 256), ("LeakyReLU", 0.2), ("BatchNorm", 256),
        ("Dense", 256, 512), ("LeakyReLU", 0.2), ("BatchNorm", 512),
        ("Dense", 512, 1024), ("LeakyReLU", 0.2), ("BatchNorm", 1024),
        ("Dense", 1024, 784), ("Tanh",),
    ]
    for layer in G.layers:
        if isinstance(layer, mg.BatchNorm):
            assert layer.momentum == pytest.approx(0.8)
            assert layer.eps == pytest.approx(1e-3)


def test_reference_discriminator_layers_match_the_guide_and_output_logits():
    D = reference_discriminator()
    assert layer_signature(D) == [
        ("Dense", 784, 512), ("LeakyReLU", 0.2),
        ("Dense", 512, 256), ("LeakyReLU", 0.2),
        ("Dense", 256, 1),
    ]
    # Logits: the last layer is the Dense itself (no Sigmoid), so the output is unbounded.
    assert not any(isinstance(layer, (mg.Sigmoid, mg.Tanh)) for layer in D.layers)
    D.layers[-1].params["b"][...] = 5.0
    out = D.forward(np.zeros((3, 784), dtype=np.float32))
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out, 5.0)


def test_reference_parameter_counts():
    G, D = reference_generator(), reference_discriminator()
    # Independently from Keras-GAN's sizes: 100-256-512-1024-784 with BN after the three hidden layers.
    g_expected = (100 + 1) * 256 + (256 + 1) * 512 + (512 + 1) * 1024 + (1024 + 1) * 784 + 2 * (256 + 512 + 1024)
    d_expected = (784 + 1) * 512 + (512 + 1) * 256 + (256 + 1) * 1
    assert g_expected == 1_489_936
    assert d_expected == 533_505
    assert G.num_params() == g_expected == count_from_signature(layer_signature(G))
    assert D.num_params() == d_expected == count_from_signature(layer_signature(D))
    assert sum(p.value.size for p in G.parameters()) == g_expected
    assert sum(p.value.size for p in D.parameters()) == d_expected
    # BatchNorm running statistics are state, not parameters (Keras counts them as non-trainable).
    assert sum(v.size for v in G.buffers.values()) == 2 * (256 + 512 + 1024)


def test_reference_batchnorm_uses_keras_momentum_meaning():
    G = reference_generator(latent_dim=100, rng=0)
    x = np.random.default_rng(0).standard_normal((32, 100)).astype(np.float32)
    G.train()
    G.forward(x)
    bn = G.layers[2]
    # running = 0.8 * running + 0.2 * batch statistic, starting from mean 0 / var 1.
    h = x @ G.layers[0].params["W"] + G.layers[0].params["b"]
    h = np.where(h > 0, h, 0.2 * h)
    np.testing.assert_allclose(bn.running_mean, 0.2 * h.mean(axis=0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * h.var(axis=0), rtol=1e-3, atol=1e-5)


def test_reference_init_is_glorot_uniform_with_zero_biases_and_seeded():
    G1, G2, G3 = reference_generator(rng=7), reference_generator(rng=7), reference_generator(rng=8)
    for name, value in G1.state_dict().items():
        np.testing.assert_array_equal(value, G2.state_dict()[name])
    assert not np.array_equal(G1.layers[0].params["W"], G3.layers[0].params["W"])
    for layer in G1.layers:
        if isinstance(layer, mg.Dense):
            bound = np.sqrt(6.0 / (layer.in_features + layer.out_features))
            W = layer.params["W"]
            assert np.abs(W).max() <= bound
            assert np.abs(W).max() > 0.9 * bound  # spread over the whole interval, not a narrow normal
            assert np.all(layer.params["b"] == 0)
            assert W.dtype == np.float32


def test_reference_models_for_other_image_shapes_and_dtypes():
    G = reference_generator(latent_dim=10, image_shape=(8, 6), dtype=np.float64, rng=0)
    D = reference_discriminator(image_shape=(8, 6), dtype=np.float64, rng=0)
    assert G.layers[0].in_features == 10 and G.layers[-2].out_features == 48
    assert D.layers[0].in_features == 48
    assert G.dtype == np.float64 and D.dtype == np.float64
    images = G.forward(np.zeros((4, 10)))
    assert images.shape == (4, 48) and np.all(np.abs(images) <= 1)


# ---------------------------------------------------------------- mlp builders
def test_mlp_generator_options():
    G = mlp_generator(latent_dim=8, image_shape=(8, 8), hidden=(16, 12), activation="relu", batchnorm=False,
                      output="linear", rng=0)
    assert layer_signature(G) == [("Dense", 8, 16), ("ReLU",), ("Dense", 16, 12), ("ReLU",), ("Dense", 12, 64)]
    G = mlp_generator(latent_dim=8, image_shape=(8, 8), hidden=(16,), momentum=0.5, output="sigmoid", rng=0)
    assert layer_signature(G) == [("Dense", 8, 16), ("LeakyReLU", 0.2), ("BatchNorm", 16), ("Dense", 16, 64),
                                  ("Sigmoid",)]
    assert G.layers[2].momentum == pytest.approx(0.5)


def test_mlp_discriminator_options():
    D = mlp_discriminator(image_shape=(8, 8), hidden=(16,), activation="tanh", dropout=0.3, rng=0)
    assert [type(layer).__name__ for layer in D.layers] == ["Dense", "Tanh", "Dropout", "Dense"]
    assert D.layers[-1].out_features == 1


@pytest.mark.parametrize(
    "build, word",
    [
        (lambda: mlp_generator(latent_dim=8, image_shape=(8, 8), hidden=()), "hidden"),
        (lambda: mlp_generator(latent_dim=8, image_shape=(8, 8), hidden=(16, 0)), "hidden"),
        (lambda: mlp_generator(latent_dim=0, image_shape=(8, 8)), "latent_dim"),
        (lambda: mlp_generator(latent_dim=8, image_shape=(8, 8), activation="swish"), "activation"),
        (lambda: mlp_generator(latent_dim=8, image_shape=(8, 8), output="softmax"), "output"),
        (lambda: mlp_generator(latent_dim=8, image_shape=(0, 8)), "image_shape"),
        (lambda: mlp_discriminator(image_shape=(8, 8), dropout=1.0), "dropout"),
        (lambda: mlp_discriminator(image_shape=(2, 2, 2, 2)), "image_shape"),
    ],
)
def test_builders_reject_bad_arguments(build, word):
    with pytest.raises((ValueError, TypeError), match=word):
        build()


# ---------------------------------------------------------------- build_gan and GAN wiring
def test_build_gan_defaults_are_the_article_gan():
    gan = build_gan()
    assert isinstance(gan, mg.GAN)
    assert layer_signature(gan.generator) == layer_signature(reference_generator())
    assert layer_signature(gan.discriminator) == layer_signature(reference_discriminator())
    assert gan.latent_dim == 100 and gan.image_shape == (28, 28) and gan.loss_name == "bce"
    for opt in (gan.g_optimizer, gan.d_optimizer):
        assert type(opt).__name__ == "Adam"
        assert (opt.lr, opt.beta1, opt.beta2) == pytest.approx((2e-4, 0.5, 0.999))


def test_build_gan_is_seeded_and_builds_mlp():
    settings = {"architecture": "mlp", "latent_dim": 8, "image_shape": [8, 8], "g_hidden": [16], "d_hidden": [12],
                "seed": 3}
    a, b, c = build_gan(settings), build_gan(settings), build_gan({**settings, "seed": 4})
    assert layer_signature(a.generator) == [("Dense", 8, 16), ("LeakyReLU", 0.2), ("BatchNorm", 16),
                                            ("Dense", 16, 64), ("Tanh",)]
    assert layer_signature(a.discriminator) == [("Dense", 64, 12), ("LeakyReLU", 0.2), ("Dense", 12, 1)]
    for net in ("generator", "discriminator"):
        sa, sb, sc = (getattr(g, net).state_dict() for g in (a, b, c))
        assert all(np.array_equal(sa[k], sb[k]) for k in sa)
        assert not all(np.array_equal(sa[k], sc[k]) for k in sa)
    with pytest.raises(ValueError, match="architecture"):
        build_gan({"architecture": "conv"})


def small_pair(latent_dim=8, shape=(8, 8), d_shape=None, **kw):
    G = mlp_generator(latent_dim=latent_dim, image_shape=shape, hidden=(16,), rng=0, **kw)
    D = mlp_discriminator(image_shape=d_shape or shape, hidden=(16,), rng=1, **kw)
    return G, D


def test_gan_rejects_models_that_do_not_fit_together():
    G, D = small_pair()
    with pytest.raises(ValueError, match="latent_dim"):
        mg.GAN(G, D, latent_dim=9)
    G2, D2 = small_pair(d_shape=(7, 7))
    with pytest.raises(ValueError, match="discriminator"):
        mg.GAN(G2, D2, latent_dim=8)
    two_out = mg.Sequential([mg.Dense(64, 2, rng=0)])
    with pytest.raises(ValueError, match="one score"):
        mg.GAN(G, two_out, latent_dim=8)
    with pytest.raises(TypeError, match="generator"):
        mg.GAN(lambda z: z, D, latent_dim=8)
    G64, _ = small_pair(dtype=np.float64)
    with pytest.raises(TypeError, match="dtype"):
        mg.GAN(G64, D, latent_dim=8)
    with pytest.raises(ValueError, match="loss"):
        mg.GAN(G, D, latent_dim=8, loss="minimax")
    with pytest.raises(ValueError, match="label_smoothing"):
        mg.GAN(G, D, latent_dim=8, label_smoothing=0.5)
    with pytest.raises(ValueError, match="image_shape"):
        mg.GAN(G, D, latent_dim=8, image_shape=(4, 4))
    gan = mg.GAN(G, D, latent_dim=8)
    assert gan.image_shape == (8, 8)
