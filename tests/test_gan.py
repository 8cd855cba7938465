"""The adversarial loop: train_step against an independent re-computation, losses, seeds,
GAN.fit's run directory, resume bit-identity, and NaN handling.

Small mlp models on 8x8 synthetic images keep this file fast; the reference
architecture is tested in test_models.py.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import minigan as mg
from minigan.checkpoint import load_checkpoint
from minigan.gan import EMA_EVERY, TrainingDiverged
from minigan.losses import MSE, BCEWithLogits
from minigan.models import mlp_discriminator, mlp_generator
from minigan.optim import Adam

pytestmark = pytest.mark.gan

LATENT, SHAPE = 8, (8, 8)
COLUMNS = ["iteration", "d_loss", "g_loss", "d_real", "d_fake", "seconds"]


def make_models(dtype=np.float32, dropout=0.0):
    G = mlp_generator(latent_dim=LATENT, image_shape=SHAPE, hidden=(16,), dtype=dtype, rng=np.random.default_rng(1))
    D = mlp_discriminator(image_shape=SHAPE, hidden=(16,), dropout=dropout, dtype=dtype,
                          rng=np.random.default_rng(2))
    return G, D


def make_gan(seed=0, *, lr=2e-4, dropout=0.0, **kw) -> mg.GAN:
    G, D = make_models(dropout=dropout)
    return mg.GAN(G, D, latent_dim=LATENT, seed=seed,
                  g_optimizer=Adam(G.parameters(), lr=lr, beta1=0.5, beta2=0.999),
                  d_optimizer=Adam(D.parameters(), lr=lr, beta1=0.5, beta2=0.999), **kw)


def make_data(n=64, seed=0) -> np.ndarray:
    """Distinct synthetic 'images' in [-1, 1]: blurry bars, float32 (n, 8, 8)."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(-1, 1, SHAPE[0])[None, :, None]
    phase = rng.uniform(-1, 1, (n, 1, 1))
    images = np.tanh(3 * (rows - phase)) * np.ones((1, 1, SHAPE[1]))
    return (images + 0.05 * rng.standard_normal((n, *SHAPE))).clip(-1, 1).astype(np.float32)


def full_state(gan: mg.GAN) -> dict[str, np.ndarray]:
    arrays, _ = gan.state()
    return arrays


def assert_states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), f"{key} differs"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ============================================================ train_step
def replica_step(gan: mg.GAN, real: np.ndarray, loss: str, smoothing: float) -> dict:
    """One iteration recomputed with public APIs only, on copies of gan's models and noise stream."""
    G, D = make_models()
    G.load_state_dict(gan.generator.state_dict())
    D.load_state_dict(gan.discriminator.state_dict())
    rng = np.random.default_rng()
    rng.bit_generator.state = gan.rng.bit_generator.state
    d_opt = Adam(D.parameters(), lr=2e-4, beta1=0.5, beta2=0.999)
    g_opt = Adam(G.parameters(), lr=2e-4, beta1=0.5, beta2=0.999)
    d_opt.load_state_dict(gan.d_optimizer.state_dict())
    g_opt.load_state_dict(gan.g_optimizer.state_dict())
    loss_fn = {"bce": BCEWithLogits, "lsgan": MSE}[loss]()
    flat = real.reshape(len(real), -1)
    B = len(real)

    fake = G.forward(rng.standard_normal((B, LATENT), dtype=np.float32))
    D.zero_grad()
    s_real = D.forward(flat)
    l_real = loss_fn.forward(s_real, 1.0 - smoothing)
    D.backward(0.5 * loss_fn.backward())
    s_fake = D.forward(fake)
    l_fake = loss_fn.forward(s_fake, 0.0)
    D.backward(0.5 * loss_fn.backward())
    d_grads = {p.name: p.grad.copy() for p in D.parameters()}
    d_opt.step()

    G.zero_grad()
    scores = D.forward(G.forward(rng.standard_normal((B, LATENT), dtype=np.float32)))
    g_loss = loss_fn.forward(scores, 1.0)
    G.backward(D.backward(loss_fn.backward(), param_grads=False))
    g_grads = {p.name: p.grad.copy() for p in G.parameters()}
    g_opt.step()

    def summary(s):
        return float(np.mean(1 / (1 + np.exp(-s.astype(np.float64))))) if loss == "bce" else float(np.mean(s))

    return {
        "d_loss": 0.5 * (l_real + l_fake), "g_loss": g_loss, "d_real": summary(s_real), "d_fake": summary(s_fake),
        "d_grads": d_grads, "g_grads": g_grads, "D": D.state_dict(), "G": G.state_dict(),
    }


def instrument(gan: mg.GAN) -> list:
    """Record, at each optimizer step, the gradients it sees and the parameters it leaves."""
    events = []
    for tag, opt, net in (("d", gan.d_optimizer, gan.discriminator), ("g", gan.g_optimizer, gan.generator)):
        original = opt.step

        def step(original=original, tag=tag, net=net):
            grads = {p.name: p.grad.copy() for p in net.parameters()}
            original()
            events.append((tag, grads, net.state_dict(), {p.name: p.grad.copy() for p in net.parameters()}))

        opt.step = step
    return events


@pytest.mark.parametrize("stacked", [True, False], ids=["one-D-pass", "two-D-passes"])
@pytest.mark.parametrize("loss, smoothing", [("bce", 0.0), ("bce", 0.1), ("lsgan", 0.2)])
def test_train_step_matches_an_independent_recomputation(loss, smoothing, stacked):
    gan = make_gan(loss=loss, label_smoothing=smoothing)
    assert gan._stack_d_batches  # a D without batch statistics takes real and fake rows in one pass ...
    gan._stack_d_batches = stacked  # ... which must compute what two passes do
    data = make_data(32)
    gan.train_step(data[:16])  # move away from the initial state (Adam moments, BN statistics)
    expected = replica_step(gan, data[16:], loss, smoothing)
    events = instrument(gan)
    logs = gan.train_step(data[16:])

    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(type(v) is float for v in logs.values())
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert logs[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
    assert [e[0] for e in events] == ["d", "g"]
    (_, d_grads, d_after_step, d_grads_after), (_, g_grads, _, _) = events
    for name, grad in expected["d_grads"].items():
        np.testing.assert_allclose(d_grads[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
    for name, grad in expected["g_grads"].items():
        np.testing.assert_allclose(g_grads[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
    # The G step leaves D alone: its weights and its gradients are as the D update left them.
    assert_states_equal(gan.discriminator.state_dict(), d_after_step)
    for p in gan.discriminator.parameters():
        assert np.array_equal(p.grad, d_grads_after[p.name]), p.name
    for name, value in expected["D"].items():
        np.testing.assert_allclose(gan.discriminator.state_dict()[name], value, rtol=1e-5, atol=1e-7)
    for name, value in expected["G"].items():
        np.testing.assert_allclose(gan.generator.state_dict()[name], value, rtol=1e-5, atol=1e-7)


def test_real_and_fake_batches_stay_apart_when_d_has_batch_statistics():
    from shared import Scale

    plain = mg.Sequential([mg.Dense(64, 8, rng=0), mg.LeakyReLU(), mg.Dropout(0.2, rng=0), mg.Dense(8, 1, rng=1)])
    assert plain.rows_independent
    with_bn = mg.Sequential([mg.Dense(64, 8, rng=0), mg.BatchNorm(8), mg.LeakyReLU(), mg.Dense(8, 1, rng=1)])
    custom = mg.Sequential([mg.Dense(64, 8, rng=0), Scale(8).astype(np.float32), mg.Dense(8, 1, rng=1)])
    for D in (with_bn, custom):
        assert not D.rows_independent
        gan = mg.GAN(make_gan().generator, D, latent_dim=LATENT, seed=0)
        assert not gan._stack_d_batches
        seen = []
        original = D.forward_unchecked
        D.forward_unchecked = lambda x, condition=None, original=original: seen.append(x.shape[0]) or original(x)
        gan.train_step(make_data(6))
        assert seen == [6, 6, 6]  # real, fake, then the G step: never one stacked batch of 12


def test_generator_ema_follows_the_documented_average():
    gan = make_gan(seed=3)
    data = make_data(32)
    average = {k: v.astype(np.float64) for k, v in gan.generator.params.items()}
    assert all(np.array_equal(gan.generator_ema.params[k], v) for k, v in gan.generator.params.items())
    for t in range(1, 9):
        gan.train_step(data[4 * t - 4: 4 * t])
        if t % EMA_EVERY == 0:  # TensorFlow's warm-up, then the decay itself; per iteration
            decay = min(0.999, (1 + t) / (10 + t)) ** EMA_EVERY
            for k, live in gan.generator.params.items():
                average[k] = decay * average[k] + (1 - decay) * live
        elif t < EMA_EVERY:
            assert all(np.array_equal(gan.generator_ema.params[k], v) for k, v in average.items())
    for k, value in average.items():
        np.testing.assert_allclose(gan.generator_ema.params[k], value, rtol=1e-5, atol=1e-7, err_msg=k)
        assert not np.array_equal(gan.generator_ema.params[k], gan.generator.params[k]), k
    for k, value in gan.generator.buffers.items():  # BatchNorm statistics are the live ones
        assert np.array_equal(gan.generator_ema.buffers[k], value), k
    assert not gan.generator_ema.training
    # sample() uses the average unless told otherwise
    noise = np.random.default_rng(0).standard_normal((5, LATENT)).astype(np.float32)
    gan.generator_ema.eval()
    expected = gan.generator_ema.forward(noise).reshape(5, *SHAPE)
    assert np.array_equal(gan.sample(5, noise=noise), expected)
    live = gan.sample(5, noise=noise, ema=False)
    gan.generator.eval()
    assert np.array_equal(live, gan.generator.forward(noise).reshape(5, *SHAPE))
    assert not np.array_equal(live, expected)
    with pytest.raises(TypeError, match="ema must be True or False"):
        gan.sample(2, ema="yes")


def test_ema_can_be_turned_off_and_checkpoints_without_it_load():
    plain = make_gan(seed=3, ema_decay=None)
    assert plain.generator_ema is None and make_gan(ema_decay=0).generator_ema is None
    for _ in range(EMA_EVERY):
        plain.train_step(make_data(8))
    assert not any(k.startswith("G_ema/") for k in full_state(plain))
    assert np.array_equal(plain.sample(3, seed=1), plain.sample(3, seed=1, ema=False))
    # a checkpoint without an average starts the average from its generator
    averaged = make_gan(seed=5)
    averaged.load_state(*plain.state())
    for k, value in plain.generator.params.items():
        assert np.array_equal(averaged.generator_ema.params[k], value)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ema_decay"):
            make_gan(ema_decay=bad)


def test_label_smoothing_changes_only_the_real_target():
    data = make_data(16)
    plain, smoothed = make_gan(), make_gan(label_smoothing=0.2)
    a, b = plain.train_step(data), smoothed.train_step(data)
    # Same noise and weights: the fake half and d_real are identical, the real half's loss is not.
    assert a["d_real"] == b["d_real"] and a["d_fake"] == b["d_fake"]
    assert a["d_loss"] != b["d_loss"]
    # BCE with target t on logit s is softplus(s) - t s: moving t from 1 to 0.8 adds 0.2 * mean(s) / 2.
    D = make_models()[1]
    s_real = D.forward(data.reshape(16, -1)).astype(np.float64)
    assert b["d_loss"] - a["d_loss"] == pytest.approx(0.5 * 0.2 * s_real.mean(), rel=1e-4, abs=1e-7)


def test_generator_changes_and_d_is_updated_d_steps_times():
    gan = make_gan(d_steps=3)
    events = instrument(gan)
    g_before = gan.generator.state_dict()
    gan.train_step(make_data(16))
    assert [e[0] for e in events] == ["d", "d", "d", "g"]
    g_after = gan.generator.state_dict()
    for p in gan.generator.parameters():
        assert not np.array_equal(g_before[p.name], g_after[p.name]), p.name


@pytest.mark.parametrize("loss", ["bce", "lsgan", "hinge", "wgan"])
def test_every_loss_trains(loss):
    gan = make_gan(loss=loss)
    data = make_data(64)
    for i in range(3):
        logs = gan.train_step(data[16 * i:16 * (i + 1)])
        assert all(np.isfinite(v) for v in logs.values()), logs
    if loss == "bce":
        assert 0.0 <= logs["d_real"] <= 1.0 and 0.0 <= logs["d_fake"] <= 1.0
    assert gan.iteration == 3


def test_wgan_clips_every_critic_weight():
    gan = make_gan(loss="wgan", clip_value=0.02)
    assert max(np.abs(p.value).max() for p in gan.discriminator.parameters()) > 0.02  # glorot init is wider
    events = instrument(gan)
    gan.train_step(make_data(16))
    for p in gan.discriminator.parameters():
        assert np.abs(p.value).max() <= 0.02, p.name
    assert any(np.any(np.abs(p.value) == np.float32(0.02)) for p in gan.discriminator.parameters())
    assert [e[0] for e in events] == ["d", "g"]


@pytest.mark.parametrize(
    "batch, error, word",
    [
        (np.zeros((16, 7, 7), np.float32), ValueError, "shape"),
        (np.zeros((16, 8, 8), np.float64), TypeError, "float32"),
        (np.zeros((16, 8, 8), np.int64), TypeError, "dtype"),
        (np.full((16, 8, 8), 2.0, np.float32), ValueError, r"\[-1, 1\]"),
        (np.full((16, 8, 8), np.nan, np.float32), ValueError, "finite|NaN"),
        (np.zeros((1, 8, 8), np.float32), ValueError, "at least 2"),
        (np.zeros(64, np.float32), ValueError, "shape"),
        ("images", TypeError, "real_batch"),
    ],
)
def test_train_step_rejects_bad_batches(batch, error, word):
    gan = make_gan()
    before = full_state(gan)
    with pytest.raises(error, match=word) as info:
        gan.train_step(batch)
    assert "real_batch" in str(info.value)
    assert_states_equal(full_state(gan), before)
    assert gan.iteration == 0


def test_train_step_accepts_flat_batches():
    a, b = make_gan(), make_gan()
    data = make_data(16)
    assert a.train_step(data) == b.train_step(data.reshape(16, 64))


# ============================================================ seeds and sampling
def test_same_seed_gives_bit_identical_weights_and_different_seed_does_not():
    data = make_data(64)
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        gan = make_gan(seed=seed)
        for i in range(6):
            gan.train_step(data[(i % 4) * 16:(i % 4 + 1) * 16])
        runs[name] = full_state(gan)
    assert_states_equal(runs["a"], runs["b"])
    assert any(not np.array_equal(runs["a"][k], runs["c"][k]) for k in runs["a"] if k.startswith("G/"))
    assert any(not np.array_equal(runs["a"][k], runs["c"][k]) for k in runs["a"] if k.startswith("D/"))


def test_sample_is_seeded_and_leaves_the_training_stream_alone():
    gan = make_gan(seed=3)
    gan.train_step(make_data(16))
    state = gan.rng.bit_generator.state
    running = {k: v.copy() for k, v in gan.generator.buffers.items()}
    x, y, z = gan.sample(10, seed=1), gan.sample(10, seed=1), gan.sample(10, seed=2)
    assert x.shape == (10, *SHAPE) and x.dtype == np.float32
    assert np.all(np.abs(x) <= 1)
    assert np.array_equal(x, y) and not np.array_equal(x, z)
    assert gan.rng.bit_generator.state == state
    assert gan.generator.training  # restored after sampling in eval mode
    assert_states_equal(dict(gan.generator.buffers), running)
    # Eval mode: each image depends only on its own noise, not on the rest of the batch.
    # (close, not bitwise: BLAS may sum in another order for another batch size)
    np.testing.assert_allclose(gan.sample(3, seed=1), x[:3], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n"):
        gan.sample(0)


# ============================================================ fit: run directory
def test_fit_writes_a_complete_run_directory(tmp_path):
    from PIL import Image

    gan = make_gan(seed=11)
    run = tmp_path / "run"
    result = gan.fit(make_data(64), iterations=12, batch_size=16, out_dir=run, sample_every=5, checkpoint_every=5,
                     progress=False)
    assert result.iteration == 12 and result.interrupted is None
    assert len(result.history["d_loss"]) == 12
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv", "samples", "losses.png",
                                                "progress.gif", "checkpoint.npz"}
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 11 and config["batch_size"] == 16 and config["iterations"] == 12
    assert config["loss"] == "bce" and config["g_optimizer"]["lr"] == pytest.approx(2e-4)
    assert {"minigan", "numpy", "numba", "python"} <= set(config["versions"])
    assert config["versions"]["numpy"] == np.__version__

    with open(run / "metrics.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == COLUMNS
    rows = read_rows(run / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 13))
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose([float(r[key]) for r in rows], result.history[key], rtol=1e-5)
    assert all(0 <= float(r["d_real"]) <= 1 for r in rows)
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)

    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["iter_000005.png", "iter_000010.png", "iter_000012.png"]
    for name in grids:
        with Image.open(run / "samples" / name) as picture:
            assert picture.format == "PNG"
    with Image.open(run / "losses.png") as picture:
        assert picture.format == "PNG"
    with Image.open(run / "progress.gif") as picture:
        assert picture.format == "GIF" and picture.n_frames == len(grids)
    arrays, meta = load_checkpoint(run)
    assert meta["iteration"] == 12
    assert_states_equal({k: v for k, v in arrays.items() if k in full_state(gan)}, full_state(gan))


def test_fit_without_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = make_gan().fit(make_data(32), iterations=3, batch_size=8, progress=False)
    assert result.iteration == 3 and result.out_dir is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="out_dir"):
        make_gan().fit(make_data(32), iterations=3, batch_size=8, progress=False, resume=True)


def test_fit_refuses_to_overwrite_an_existing_run(tmp_path):
    run = tmp_path / "run"
    make_gan().fit(make_data(32), iterations=4, batch_size=8, out_dir=run, progress=False)
    before = {p.name: sha256(p) for p in run.iterdir() if p.is_file()}
    with pytest.raises(FileExistsError, match="resume"):
        make_gan().fit(make_data(32), iterations=8, batch_size=8, out_dir=run, progress=False)
    assert {p.name: sha256(p) for p in run.iterdir() if p.is_file()} == before


def test_fit_epochs_visit_every_image_once_per_epoch():
    gan = make_gan()
    data = make_data(64)
    seen = []
    original = gan.train_step

    def spy(batch, condition=None):
        seen.append(np.array(batch))
        return original(batch, condition)

    gan.train_step = spy
    result = gan.fit(data, epochs=2, batch_size=16, progress=False)
    assert result.iteration == 8 and len(seen) == 8
    flat = data.reshape(64, -1)
    for epoch in (seen[:4], seen[4:]):
        rows = np.concatenate(epoch)
        assert rows.shape == (64, 64)
        order = np.lexsort(rows.T[::-1])
        np.testing.assert_array_equal(rows[order], flat[np.lexsort(flat.T[::-1])])
    assert not np.array_equal(np.concatenate(seen[:4]), np.concatenate(seen[4:]))  # reshuffled
    # An epoch drops the last partial batch: 70 images at batch 16 -> 4 iterations.
    assert make_gan().fit(make_data(70), epochs=1, batch_size=16, progress=False).iteration == 4


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"iterations": 4, "epochs": 1}, "not both"),
        ({}, "iterations"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 4, "batch_size": 1}, "batch_size"),
        ({"iterations": 4, "batch_size": 65}, "batch_size"),
        ({"iterations": 4, "callbacks": [42]}, "callbacks"),
    ],
)
def test_fit_rejects_bad_settings(kwargs, word):
    kwargs = {"batch_size": 16, **kwargs}
    with pytest.raises((ValueError, TypeError), match=word):
        make_gan().fit(make_data(64), progress=False, **kwargs)


def test_fit_data_checks_and_uint8_scaling():
    gan = make_gan()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        gan.fit(make_data(32) * 3, iterations=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="shape"):
        gan.fit(np.zeros((32, 7, 7), np.float32), iterations=1, batch_size=8, progress=False)
    with pytest.raises(TypeError, match="data"):
        gan.fit([[0.0]], iterations=1, batch_size=8, progress=False)
    pixels = ((make_data(32) + 1) * 127.5).round().astype(np.uint8)
    seen = []
    original = gan.train_step
    gan.train_step = lambda batch, condition=None: (seen.append(batch), original(batch))[1]
    gan.fit(pixels, iterations=2, batch_size=8, progress=False)
    assert seen[0].dtype == np.float32 and seen[0].min() >= -1 and seen[0].max() <= 1
    assert seen[0].min() < -0.5 and seen[0].max() > 0.5


def test_fit_calls_callbacks_every_iteration():
    calls = []
    gan = make_gan()
    result = gan.fit(make_data(32), iterations=5, batch_size=8, progress=False,
                     callbacks=[lambda g, it, logs: calls.append((g, it, dict(logs), g.iteration))])
    assert [c[1] for c in calls] == [1, 2, 3, 4, 5]
    assert all(c[0] is gan and c[3] == c[1] for c in calls)
    assert all({"d_loss", "g_loss", "d_real", "d_fake"} <= set(c[2]) for c in calls)
    assert [c[2]["d_loss"] for c in calls] == result.history["d_loss"]


# ============================================================ resume
RESUME_SETUPS = {
    "plain": {},
    # Dropout masks come from a layer's own stream; d_steps and hinge change the draw pattern.
    "dropout-dsteps-hinge": {"dropout": 0.3, "d_steps": 2, "loss": "hinge"},
    "smoothing-lsgan": {"label_smoothing": 0.1, "loss": "lsgan"},
}


@pytest.mark.parametrize("setup", sorted(RESUME_SETUPS))
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, setup):
    kw = RESUME_SETUPS[setup]
    data = make_data(64)
    n = 6  # 1.5 epochs at batch 16: the stop falls in the middle of an epoch
    a, b = tmp_path / "a", tmp_path / "b"
    make_gan(seed=4, **kw).fit(data, iterations=n, batch_size=16, out_dir=a, checkpoint_every=0, progress=False)
    resumed = make_gan(seed=4, **kw)  # a NEW object, built the same way
    resumed.fit(data, iterations=2 * n, batch_size=16, out_dir=a, resume=True, progress=False)
    straight = make_gan(seed=4, **kw)
    straight.fit(data, iterations=2 * n, batch_size=16, out_dir=b, progress=False)

    assert resumed.iteration == straight.iteration == 2 * n
    state_r, state_s = full_state(resumed), full_state(straight)
    assert any(k.endswith("running_mean") for k in state_r)  # BN buffers are compared too
    assert any(k.startswith("G_ema/") for k in state_r)  # and the generator's moving average
    assert_states_equal(state_r, state_s)
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    assert np.array_equal(resumed.sample(5, seed=0), straight.sample(5, seed=0))
    rows_a, rows_b = read_rows(a / "metrics.csv"), read_rows(b / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_a] == list(range(1, 2 * n + 1))
    for ra, rb in zip(rows_a, rows_b):
        assert [ra[k] for k in COLUMNS[1:5]] == [rb[k] for k in COLUMNS[1:5]]
    assert load_checkpoint(a)[1]["iteration"] == 2 * n
    # The last grid is the same fixed noise through the same weights.
    assert sha256(a / "samples" / "iter_000012.png") == sha256(b / "samples" / "iter_000012.png")


def test_resume_after_a_crash_continues_from_the_checkpoint(tmp_path):
    data = make_data(64)
    run = tmp_path / "run"

    def crash(gan, it, logs):
        if it == 7:
            raise KeyboardInterrupt("simulated hard stop between checkpoints")

    with pytest.raises(KeyboardInterrupt):
        make_gan(seed=2).fit(data, iterations=20, batch_size=16, out_dir=run, checkpoint_every=5, progress=False,
                             callbacks=[crash])
    assert load_checkpoint(run)[1]["iteration"] == 5
    resumed = make_gan(seed=2)
    resumed.fit(data, iterations=10, batch_size=16, out_dir=run, checkpoint_every=5, resume=True, progress=False)
    straight = make_gan(seed=2)
    straight.fit(data, iterations=10, batch_size=16, out_dir=tmp_path / "b", checkpoint_every=5, progress=False)
    assert_states_equal(full_state(resumed), full_state(straight))
    # Rows 6 and 7 logged before the crash are replaced, not duplicated.
    assert [int(r["iteration"]) for r in read_rows(run / "metrics.csv")] == list(range(1, 11))


def test_resume_refuses_a_run_of_another_model(tmp_path):
    run = tmp_path / "run"
    make_gan().fit(make_data(32), iterations=2, batch_size=8, out_dir=run, progress=False)
    G = mlp_generator(latent_dim=LATENT, image_shape=SHAPE, hidden=(24,), rng=0)
    D = mlp_discriminator(image_shape=SHAPE, hidden=(16,), rng=0)
    other = mg.GAN(G, D, latent_dim=LATENT, seed=0)
    before = full_state(other)
    with pytest.raises(ValueError, match="differs from the recorded run in\n  generator"):
        other.fit(make_data(32), iterations=4, batch_size=8, out_dir=run, resume=True, progress=False)
    assert_states_equal(full_state(other), before)  # nothing half-loaded
    with pytest.raises(ValueError, match="objective: the run has .*bce.*, now .*hinge"):
        make_gan(loss="hinge").fit(make_data(32), iterations=4, batch_size=8, out_dir=run, resume=True,
                                   progress=False)


# ============================================================ NaN / inf
def poison_at(iteration: int, net: str = "generator"):
    def callback(gan, it, logs):
        if it == iteration:
            getattr(gan, net).layers[0].params["W"][0, 0] = np.nan
    return callback


def hash_recorder(run: Path, at: int, hashes: list):
    def callback(gan, it, logs):
        if it == at:
            hashes.append(sha256(run / "checkpoint.npz"))
    return callback


@pytest.mark.parametrize("net", ["generator", "discriminator"])
def test_nan_weights_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, net):
    """Poisoned between checkpoints: the next iteration's losses are NaN."""
    run = tmp_path / "run"
    hashes: list = []
    gan = make_gan()
    with pytest.raises(TrainingDiverged, match="NaN") as info:
        gan.fit(make_data(64), iterations=50, batch_size=16, out_dir=run, checkpoint_every=5, progress=False,
                callbacks=[hash_recorder(run, 6, hashes), poison_at(7, net)])
    assert "checkpoint" in str(info.value) and str(run / "checkpoint.npz") in str(info.value)
    assert "iteration 8" in str(info.value)
    assert sha256(run / "checkpoint.npz") == hashes[0]
    arrays, meta = load_checkpoint(run)
    assert meta["iteration"] == 5 and all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")
    # The good checkpoint resumes.
    fresh = make_gan()
    fresh.fit(make_data(64), iterations=8, batch_size=16, out_dir=run, resume=True, checkpoint_every=5,
              progress=False)
    assert fresh.iteration == 8 and fresh.weights_finite()


def test_nan_weights_found_at_a_checkpoint_are_not_saved(tmp_path):
    """Poisoned right before a checkpoint is due: the save refuses."""
    run = tmp_path / "run"
    hashes: list = []
    with pytest.raises(TrainingDiverged, match="NaN") as info:
        make_gan().fit(make_data(64), iterations=50, batch_size=16, out_dir=run, checkpoint_every=5,
                       progress=False, callbacks=[hash_recorder(run, 6, hashes), poison_at(10)])
    assert str(run / "checkpoint.npz") in str(info.value)
    assert sha256(run / "checkpoint.npz") == hashes[0]
    assert load_checkpoint(run)[1]["iteration"] == 5


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("lr", [1e17, 1e30])
def test_a_huge_learning_rate_diverges_with_a_clear_message(tmp_path, lr):
    """The learning rate jumps after iteration 3: iteration 4 blows up; the checkpoint of iteration 2 stays."""
    run = tmp_path / "run"
    hashes: list = []

    def blow_up(gan, it, logs):
        if it == 3:
            gan.g_optimizer.lr = gan.d_optimizer.lr = lr

    with pytest.raises(TrainingDiverged, match="NaN or inf") as info:
        make_gan().fit(make_data(64), iterations=200, batch_size=16, out_dir=run, checkpoint_every=2,
                       progress=False, callbacks=[blow_up, hash_recorder(run, 3, hashes)])
    assert "learning rate" in str(info.value)
    assert "iteration 4" in str(info.value)
    assert sha256(run / "checkpoint.npz") == hashes[0]
    arrays, meta = load_checkpoint(run)
    assert meta["iteration"] == 2
    assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")


def test_nan_without_out_dir_still_raises_training_diverged():
    with pytest.raises(TrainingDiverged, match="NaN"):
        make_gan().fit(make_data(64), iterations=20, batch_size=16, progress=False, callbacks=[poison_at(3)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_probability_of_extreme_logits_does_not_overflow(dtype):
    from minigan import kernels as K

    logits = np.array([-1e4, -1e4, 1e4, 0.0], dtype=dtype)
    assert K.sigmoid_mean(logits) == 0.375  # (0 + 0 + 1 + 0.5) / 4: saturates exactly, no inf or NaN
    values = np.random.default_rng(3).normal(0, 4, 50).astype(dtype)
    assert K.sigmoid_mean(values) == pytest.approx(np.mean(1 / (1 + np.exp(-values.astype(np.float64)))), rel=1e-12)
