"""A conditional GAN end to end in Python: every objective against an independent
recomputation of a conditional train_step, the builders, sampling by label, runs that
record their classes, bit-identical resume, and the conditional quality numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minigan as mg
from minigan.conditional import LabelConcat, Projection, even_labels
from minigan.conditional.metrics import conditional_samples, evaluate_conditional, label_accuracy, per_class_fid
from minigan.models import build_gan, load_gan, mlp_discriminator, mlp_generator, reference_discriminator
from minigan.models import reference_generator
from minigan.objectives import OBJECTIVES
from test_objectives import d_loss, g_loss, numeric_gradient

pytestmark = pytest.mark.gan

LATENT, FEATURES, BATCH, CLASSES, LR = 3, 4, 6, 3, 0.1
REAL_LABELS = np.array([2, 0, 2, 1, 0, 2])


# ---------------------------------------------------------------- one conditional step, recomputed
def leaky(v, alpha=0.2):
    return np.where(v > 0, v, alpha * v)


def generator_forward(p, z, c):
    h = leaky(np.concatenate([z, p["0.E"][c]], axis=1) @ p["1.W"] + p["1.b"])
    return np.tanh(h @ p["3.W"] + p["3.b"])


def discriminator_forward(p, x, c):
    h = leaky(np.concatenate([x, p["0.E"][c]], axis=1) @ p["1.W"] + p["1.b"])
    return h @ p["3.W"] + p["3.b"] + np.sum(h * p["3.E"][c], axis=1, keepdims=True)


def discriminator_input_gradient(p, x, c):
    """d(sum of scores)/dx written out: the embedding columns are not an input."""
    z = np.concatenate([x, p["0.E"][c]], axis=1) @ p["1.W"] + p["1.b"]
    slope = np.where(z > 0, 1.0, 0.2)
    return ((slope * (p["3.W"][:, 0] + p["3.E"][c])) @ p["1.W"].T)[:, :FEATURES]


def build(loss, **options):
    rng = np.random.default_rng(7)
    G = mg.Sequential([LabelConcat(LATENT, CLASSES, embedding_dim=2, dtype=np.float64, rng=rng),
                       mg.Dense(LATENT + 2, 5, dtype=np.float64, rng=rng), mg.LeakyReLU(0.2),
                       mg.Dense(5, FEATURES, dtype=np.float64, rng=rng), mg.Tanh()])
    D = mg.Sequential([LabelConcat(FEATURES, CLASSES, embedding_dim=2, dtype=np.float64, rng=rng),
                       mg.Dense(FEATURES + 2, 5, dtype=np.float64, rng=rng), mg.LeakyReLU(0.2),
                       Projection(5, CLASSES, dtype=np.float64, rng=rng)])
    for p in D.parameters():  # sizeable weights so that no score sits where every loss is flat
        p.value[...] *= 3.0
    return mg.GAN(G, D, latent_dim=LATENT, loss=loss, seed=11, ema_decay=None, image_shape=(FEATURES,),
                  g_optimizer=mg.optim.SGD(G.parameters(), lr=LR), d_optimizer=mg.optim.SGD(D.parameters(), lr=LR),
                  **options)


def expected_step(gan, real, c, name, clip=None):
    rng = np.random.default_rng(11)  # the GAN's stream: D-step noise, [the interpolation factors], G-step noise
    z_d = rng.standard_normal((BATCH, LATENT))
    eps = rng.random((BATCH, 1)) if name == "wgan-gp" else None
    z_g = rng.standard_normal((BATCH, LATENT))
    g_params = {k: v.copy() for k, v in gan.generator.params.items()}
    d_params = {k: v.copy() for k, v in gan.discriminator.params.items()}
    fake_d = generator_forward(g_params, z_d, c)  # the fakes are made for the real batch's labels

    def discriminator_objective():
        value = d_loss(name, discriminator_forward(d_params, real, c), discriminator_forward(d_params, fake_d, c))
        if eps is not None:
            norms = np.linalg.norm(discriminator_input_gradient(d_params, fake_d + eps * (real - fake_d), c), axis=1)
            value = value + 10.0 * np.mean((norms - 1.0) ** 2)
        return value

    d_grads = numeric_gradient(discriminator_objective, d_params)
    new_d = {k: d_params[k] - LR * d_grads[k] for k in d_params}
    if clip is not None:
        new_d = {k: np.clip(v, -clip, clip) for k, v in new_d.items()}

    def generator_objective():
        return g_loss(name, discriminator_forward(new_d, generator_forward(g_params, z_g, c), c),
                      discriminator_forward(new_d, real, c))

    g_grads = numeric_gradient(generator_objective, g_params)
    return {"D": new_d, "G": {k: g_params[k] - LR * g_grads[k] for k in g_params},
            "d_loss": d_loss(name, discriminator_forward(d_params, real, c), discriminator_forward(d_params, fake_d, c))}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_trains_conditionally_as_recomputed_independently(name):
    options = {"clip_value": 0.6} if name == "wgan" else {}
    gan = build(name, **options)
    real = np.random.default_rng(3).uniform(-0.9, 0.9, (BATCH, FEATURES))
    expected = expected_step(gan, real, REAL_LABELS, name, clip=options.get("clip_value"))
    before = {key: {k: v.copy() for k, v in net.params.items()}
              for key, net in (("D", gan.discriminator), ("G", gan.generator))}
    logs = gan.train_step(real, REAL_LABELS)
    for net, key in ((gan.discriminator, "D"), (gan.generator, "G")):
        for param, value in expected[key].items():
            # the updates (lr * gradient) agree to central differences' accuracy, relative to the tensor's largest:
            # the embeddings of a huge-gradient objective (lsgan) move by hundreds
            update, wanted = net.params[param] - before[key][param], value - before[key][param]
            scale = np.abs(wanted).max()
            assert np.abs(update - wanted).max() <= 1e-8 + 1e-7 * scale, f"{name}: {key} {param}"
    assert logs["d_loss"] == pytest.approx(expected["d_loss"], rel=1e-9)
    if name == "wgan-gp":
        assert np.isfinite(logs["gp"]) and logs["gp"] > 0


def test_the_labels_change_the_step():
    real = np.random.default_rng(3).uniform(-0.9, 0.9, (BATCH, FEATURES))
    a, b = build("bce"), build("bce")
    a.train_step(real, REAL_LABELS)
    b.train_step(real, (REAL_LABELS + 1) % CLASSES)
    assert not np.array_equal(a.discriminator.params["3.E"], b.discriminator.params["3.E"])


# ---------------------------------------------------------------- builders and the API
def test_builders_make_conditional_networks_for_both_architectures():
    G = reference_generator(num_classes=10, rng=0)  # the default: the one-hot code joined to z
    assert isinstance(G.layers[0], LabelConcat) and G.layers[0].one_hot and G.layers[1].in_features == 110
    G = reference_generator(num_classes=10, conditioning="embedding", embedding_dim=6, rng=0)
    assert G.layers[0].params["E"].shape == (10, 6) and G.layers[1].in_features == 106
    G = reference_generator(num_classes=10, conditioning="batchnorm", rng=0)
    assert [type(l).__name__ for l in G.layers].count("ConditionalBatchNorm") == 3 and G.layers[0].in_features == 100
    assert G.uses_condition and not any(isinstance(l, mg.BatchNorm) for l in G.layers)
    D = reference_discriminator(num_classes=10, rng=0)
    assert isinstance(D.layers[-1], Projection) and D.layers[0].in_features == 784
    D = reference_discriminator(num_classes=10, conditioning="concat", rng=0)
    assert isinstance(D.layers[0], LabelConcat) and D.layers[0].one_hot and D.layers[1].in_features == 794
    with pytest.raises(ValueError, match="has none"):
        mlp_generator(4, (4, 4), hidden=(8,), batchnorm=False, num_classes=3, conditioning="batchnorm")
    for architecture in ("reference", "mlp"):
        gan = build_gan({"conditional": True, "architecture": architecture, "num_classes": 4,
                         "class_names": ["a", "b", "c", "d"]})
        assert gan.conditional and gan.num_classes == 4 and gan.class_names == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="needs num_classes"):
        build_gan({"conditional": True})
    for key, value in (("d_conditioning", "concat"), ("g_conditioning", "batchnorm")):
        with pytest.raises(ValueError, match=f"{key}='{value}' applies to a conditional GAN"):
            build_gan({key: value})
    gan = build_gan({"conditional": True, "num_classes": 3, "g_conditioning": "embedding", "d_conditioning": "concat"})
    assert "E" in gan.generator.layers[0].params and gan.discriminator.layers[0].one_hot
    with pytest.raises(ValueError, match="conditioning must be one of"):
        mlp_discriminator((4, 4), hidden=(8,), num_classes=3, conditioning="film")
    with pytest.raises(ValueError, match="generator takes 3 classes but the discriminator 4"):
        mg.GAN(mlp_generator(4, (4, 4), hidden=(8,), num_classes=3), mlp_discriminator((4, 4), hidden=(8,),
               num_classes=4), latent_dim=4)
    with pytest.raises(ValueError, match="name each of the 4 classes"):
        build_gan({"conditional": True, "num_classes": 4, "class_names": ["a"]})


def test_the_default_unconditional_build_is_unchanged():
    """The conditional keywords at their defaults build exactly the unconditional networks."""
    plain = [p.value for p in reference_generator(rng=5).parameters()]
    again = [p.value for p in reference_generator(rng=5, num_classes=None).parameters()]
    assert len(plain) == len(again) and all(np.array_equal(a, b) for a, b in zip(plain, again))


def tiny_conditional(**settings):
    return build_gan({"conditional": True, "architecture": "mlp", "g_hidden": [16], "d_hidden": [16],
                      "latent_dim": 8, "num_classes": 3, "image_shape": (4, 4), **settings})


def labelled_data(n=36):
    labels = np.arange(n) % 3
    rng = np.random.default_rng(0)
    images = np.clip((labels[:, None, None] - 1) * 0.6 + rng.normal(0, 0.1, (n, 4, 4)), -1, 1)
    return images.astype(np.float32), labels


@pytest.mark.parametrize("d_conditioning", ["projection", "concat"])
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_trains_the_built_conditional_networks(name, d_conditioning):
    """The networks ``minigan train --conditional --loss NAME`` builds: finite steps, and D's
    scores depend on the label (so the label reaches D's loss and, for wgan-gp, its penalty)."""
    images, labels = labelled_data()
    gan = tiny_conditional(loss=name, d_conditioning=d_conditioning, seed=2)
    result = gan.fit(images, labels=labels, iterations=3, batch_size=6, progress=False)
    for key in ("d_loss", "g_loss"):
        assert np.all(np.isfinite(result.history[key])), key
    if name == "wgan-gp":
        assert np.all(np.isfinite(result.history["gp"])) and np.max(result.history["gp"]) > 0
    flat = images[:6].reshape(6, -1)
    scores = [gan.discriminator.forward(flat, condition=np.full(6, k)) for k in range(3)]
    assert not np.allclose(scores[0], scores[1]) and not np.allclose(scores[1], scores[2])
    assert gan.weights_finite()


def test_sample_by_label():
    gan = tiny_conditional()
    images, labels = labelled_data()
    gan.fit(images, labels=labels, iterations=3, batch_size=6, progress=False)
    noise = gan.noise(4, np.random.default_rng(0))
    one = gan.sample(4, noise=noise, labels=1)
    np.testing.assert_array_equal(one, gan.sample(4, noise=noise, labels=np.array([1, 1, 1, 1])))
    assert not np.array_equal(one, gan.sample(4, noise=noise, labels=2))
    np.testing.assert_array_equal(gan.sample(4, noise=noise, labels=[0, 1, 2, 0])[1], one[1])
    assert gan.latent_walk(3, 4, seed=0, labels=[0, 1, 2]).shape == (3, 4, 4, 4)
    for bad, kind, word in ((3, ValueError, r"0 \.\. 2"), ([0, 1], ValueError, "one entry per image"),
                            (np.array([0.0, 1, 2, 0]), TypeError, "integers"), (None, ValueError, "conditional")):
        with pytest.raises(kind, match=word):
            gan.sample(4, labels=bad)
    assert list(even_labels(7, 3)) == [0, 0, 0, 1, 1, 2, 2]


def test_fit_refuses_bad_labels():
    gan = tiny_conditional()
    images, labels = labelled_data()
    for bad, kind, word in (
        (labels + 1, ValueError, r"0 \.\. 2 \(3 classes\), got 3"),
        (labels[:-1], ValueError, "one entry per image"),
        (labels.astype(float), TypeError, "integers"),
        (np.where(labels == 1, 0, labels), ValueError, r"1 of the 3 classes have no images \(class 1\)"),
        (-labels, ValueError, ">= 0"),
    ):
        with pytest.raises(kind, match=word):
            gan.fit(images, labels=bad, iterations=1, batch_size=6, progress=False)


def test_a_conditional_run_records_its_classes_and_its_class_grid(tmp_path):
    images, labels = labelled_data()
    names = ["low", "mid", "high"]
    gan = tiny_conditional(class_names=names)
    gan.fit(images, labels=labels, iterations=2, batch_size=6, out_dir=tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["num_classes"] == 3 and record["class_names"] == names and record["conditional"]
    loaded = load_gan(tmp_path / "run", models_only=True)
    assert loaded.class_names == names and loaded.num_classes == 3
    np.testing.assert_array_equal(loaded.sample(3, seed=1, labels=2), gan.sample(3, seed=1, labels=2))
    # the grid: one row per class, the same noise in each column
    with np.load(tmp_path / "run" / "checkpoint.npz") as arrays:
        fixed_labels, fixed_noise = arrays["fixed_condition"], arrays["fixed_noise"]
    assert list(fixed_labels) == [0] * 8 + [1] * 8 + [2] * 8
    np.testing.assert_array_equal(fixed_noise[:8], fixed_noise[8:16])
    from PIL import Image

    from minigan.plots import CAPTION_HEIGHT, to_uint8

    with Image.open(tmp_path / "run" / "samples" / "iter_000002.png") as grid:
        pixels = np.asarray(grid.convert("L"))
    # 8 columns and 3 rows of 4x4 images (2-pixel separators) scaled 3x, under the caption, right of the names
    grid_width = 3 * (8 * 6 + 2)
    band = pixels.shape[1] - grid_width
    assert band > 0 and pixels.shape[0] == CAPTION_HEIGHT + 3 * (3 * 6 + 2)
    drawn = gan.sample(24, noise=fixed_noise, labels=fixed_labels)  # what the last grid shows
    for row in range(3):
        top = CAPTION_HEIGHT + 3 * (2 + row * 6)
        assert (pixels[top:top + 12, :band] < 128).any()  # the class name, beside its row
        for column in range(8):
            left = band + 3 * (2 + column * 6)
            cell = pixels[top:top + 12:3, left:left + 12:3]
            np.testing.assert_array_equal(cell, to_uint8(drawn[row * 8 + column]))
    # each row named by its own class (names as wide as each other's would not show a swap: these differ)
    from minigan.plots import grid_picture

    np.testing.assert_array_equal(pixels, grid_picture(drawn, 8, label="iteration 2, one row per class",
                                                       row_labels=names))
    swapped = grid_picture(drawn, 8, label="iteration 2, one row per class", row_labels=names[::-1])
    assert not np.array_equal(pixels, swapped)


@pytest.mark.slow
def test_a_conditional_run_resumes_bit_identically(tmp_path):
    images, labels = labelled_data()
    names = ["low", "mid", "high"]
    straight = tiny_conditional(class_names=names)
    straight.fit(images, labels=labels, iterations=6, batch_size=6, out_dir=tmp_path / "a", progress=False,
                 sample_every=2)
    first = tiny_conditional(class_names=names)
    first.fit(images, labels=labels, iterations=3, batch_size=6, out_dir=tmp_path / "b", progress=False,
              sample_every=2)
    resumed = tiny_conditional(class_names=names)
    resumed.fit(images, labels=labels, iterations=6, batch_size=6, out_dir=tmp_path / "b", resume=True,
                progress=False, sample_every=2)
    for prefix in ("G", "D", "G_ema"):
        a = np.load(tmp_path / "a" / "checkpoint.npz")
        b = np.load(tmp_path / "b" / "checkpoint.npz")
        for key in a.files:
            if key.startswith(prefix + "/"):
                assert np.array_equal(a[key], b[key]), key
    last = "samples/iter_000006.png"  # the class grid of the last iteration, byte for byte
    assert (tmp_path / "a" / last).read_bytes() == (tmp_path / "b" / last).read_bytes()


def test_conditional_metrics_on_real_digits():
    digits, classes = mg.metrics.load_reference_digits()
    pick = np.concatenate([np.flatnonzero(classes == k)[:40] for k in range(10)])
    images, labels = digits[pick], classes[pick].astype(np.int64)
    reference = np.concatenate([np.flatnonzero(classes == k)[40:140] for k in range(10)])  # other real digits
    real = {"real_images": digits[reference], "real_labels": classes[reference].astype(np.int64)}
    perfect = label_accuracy(images, labels)
    assert perfect["mean"] > 0.95 and len(perfect["per_class"]) == 10
    assert np.sum(perfect["confusion"]) == 400 and np.trace(perfect["confusion"]) == round(perfect["overall"] * 400)
    shuffled = label_accuracy(images, (labels + 1) % 10)
    assert shuffled["mean"] < 0.05 and shuffled["worst"] <= shuffled["mean"]
    right = per_class_fid(images, labels, **real)
    wrong = per_class_fid(images, (labels + 3) % 10, **real)
    assert len(right) == 10 and max(right) < min(wrong)  # a class compared with its own digits is closer
    found = evaluate_conditional(images, labels, **real)
    assert found["label_accuracy"]["mean"] == perfect["mean"]
    assert found["mean_class_fid"] == pytest.approx(np.mean(right))
    with pytest.raises(ValueError, match="0 .. 9"):
        label_accuracy(images, labels + 10)
    with pytest.raises(ValueError, match="conditional GAN"):
        conditional_samples(mg.GAN(mlp_generator(4, (28, 28), hidden=(8,)), mlp_discriminator(hidden=(8,)),
                                   latent_dim=4), 10)


@pytest.mark.slow
@pytest.mark.docs
def test_the_readme_conditional_example_runs(tmp_path, monkeypatch):
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## A conditional GAN"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert "iterations=2000" in block
    monkeypatch.chdir(tmp_path)
    block = block.replace("iterations=2000", "iterations=3").replace("conditional_samples(gan, 1000", "conditional_samples(gan, 100")
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "cgan-api" / "checkpoint.npz").exists()
