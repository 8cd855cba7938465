"""Gradient penalties in the GAN: R1 (lazy too) and WGAN-GP as discriminator terms, recomputed
independently; settings, records, resume and the command line with penalties on."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigan as mg
from minigan import penalties
from minigan.losses import BCEWithLogits, Wasserstein
from minigan.models import build_gan, gan_from_record, mlp_discriminator, mlp_generator
from minigan.objectives import WGANGPObjective
from minigan.optim import Adam
from minigan.settings import resolve
from minigan.terms import R1Penalty, WGANGradientPenalty, term_from_config

pytestmark = [pytest.mark.penalties, pytest.mark.gan]

ROOT = Path(__file__).resolve().parents[1]
LATENT, SHAPE = 6, (4, 4)


def models(dtype=np.float64, dropout=0.0):
    G = mlp_generator(latent_dim=LATENT, image_shape=SHAPE, hidden=(8,), dtype=dtype, rng=np.random.default_rng(1))
    D = mlp_discriminator(image_shape=SHAPE, hidden=(8, 6), dropout=dropout, dtype=dtype,
                          rng=np.random.default_rng(2))
    return G, D


def make_gan(dtype=np.float64, dropout=0.0, seed=0, **kw):
    G, D = models(dtype, dropout)
    return mg.GAN(G, D, latent_dim=LATENT, seed=seed, ema_decay=None,
                  g_optimizer=Adam(G.parameters(), lr=1e-3, beta1=0.5),
                  d_optimizer=Adam(D.parameters(), lr=1e-3, beta1=0.5), **kw)


def data(n=32, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(0.0, 1.0, (n, *SHAPE))).astype(dtype)


def capture_d_gradients(gan):
    """The gradients D's optimizer sees at each of its steps."""
    seen = []
    original = gan.d_optimizer.step

    def step():
        seen.append({p.name: p.grad.copy() for p in gan.discriminator.parameters()})
        original()

    gan.d_optimizer.step = step
    return seen


def replica_d_gradients(gan, real, objective, penalty):
    """The first D step of ``gan`` recomputed with public calls on copies: the objective's
    gradient through D's plain backward, then the penalty's added by minigan.penalties."""
    G, D = models()
    G.load_state_dict(gan.generator.state_dict())
    D.load_state_dict(gan.discriminator.state_dict())
    rng = np.random.default_rng()
    rng.bit_generator.state = gan.rng.bit_generator.state
    B = len(real)
    fake = G.forward(rng.standard_normal((B, LATENT)))
    D.zero_grad()
    if objective == "bce":
        loss, real_target, scale = BCEWithLogits(), 1.0, 0.5
    else:  # wgan-gp: the paper's critic loss, halves not averaged
        loss, real_target, scale = Wasserstein(), 1.0, 1.0
    loss.forward(D.forward(real), real_target)
    D.backward(scale * loss.backward())
    loss.forward(D.forward(fake), 0.0)
    D.backward(scale * loss.backward())
    penalty(D, real, fake, rng)
    return {p.name: p.grad.copy() for p in D.parameters()}


def assert_grads_close(a, b, rtol=1e-10):
    assert a.keys() == b.keys()
    for name in a:
        scale = max(np.abs(b[name]).max(), 1e-12)
        assert np.abs(a[name] - b[name]).max() <= rtol * scale, name


def test_r1_term_adds_the_penalty_gradient_to_the_objectives():
    gan = make_gan(discriminator_terms=[R1Penalty(3.0)])
    real = data(8).reshape(8, -1)
    expected = replica_d_gradients(gan, real, "bce", lambda D, r, f, rng: penalties.r1(D, r, 3.0))
    seen = capture_d_gradients(gan)
    logs = gan.train_step(real)
    assert_grads_close(seen[0], expected)
    assert {"r1", "r1_grad_norm"} <= set(logs)
    assert logs["r1"] > 0 and logs["r1_grad_norm"] > 0
    assert gan.log_names == ("d_loss", "g_loss", "d_real", "d_fake", "r1", "r1_grad_norm")


def test_lazy_r1_runs_every_kth_d_update_with_k_times_the_weight():
    every, d_steps = 3, 2
    lazy = make_gan(discriminator_terms=[R1Penalty(2.0, every=every)], d_steps=d_steps)
    calls = []
    term = lazy.discriminator_terms[0]
    original = term.add_gradients

    def spy(D, real, fake, condition, rng):
        before = {p.name: p.grad.copy() for p in D.parameters()}
        out = original(D, real, fake, condition, rng)
        calls.append(({p.name: p.grad - before[p.name] for p in D.parameters()}, D.state_dict(), real.copy()))
        return out

    term.add_gradients = spy
    logged = [lazy.train_step(data(8, seed=i).reshape(8, -1)) for i in range(3)]  # D updates 1..6
    assert len(calls) == 2  # updates 3 and 6
    assert ["r1" in row for row in logged] == [False, True, True]
    for added, state, real in calls:
        _, D = models()
        D.load_state_dict(state)
        D.zero_grad()
        value = penalties.r1(D, real, 2.0 * every)
        assert_grads_close(added, {p.name: p.grad for p in D.parameters()})
    assert logged[2]["r1"] == pytest.approx(value / every, rel=1e-12)


def test_wgan_gp_objective_critic_loss_and_penalty_on_interpolates():
    gan = make_gan(loss="wgan-gp")
    assert isinstance(gan.objective, WGANGPObjective)
    assert [type(t) for t in gan.discriminator_terms] == [WGANGradientPenalty]
    assert gan.discriminator_terms[0].weight == 10.0
    real = data(8).reshape(8, -1)
    expected = replica_d_gradients(gan, real, "wgan-gp",
                                   lambda D, r, f, rng: penalties.wgan_gp(D, r, f, weight=10.0, rng=rng))
    seen = capture_d_gradients(gan)
    logs = gan.train_step(real)
    assert_grads_close(seen[0], expected)
    assert {"gp", "gp_grad_norm"} <= set(logs)
    # the critic loss is mean D(fake) - mean D(real): not halved
    scores_real, scores_fake = np.array([[1.0], [3.0]]), np.array([[0.5], [-1.5]])
    grad_real, grad_fake = np.empty((2, 1)), np.empty((2, 1))
    assert gan.objective.discriminator_loss(scores_real, scores_fake, grad_real, grad_fake) == pytest.approx(-2.5)
    np.testing.assert_allclose(grad_real, -0.5)
    np.testing.assert_allclose(grad_fake, 0.5)
    grad = np.empty((2, 1))
    assert gan.objective.generator_loss(scores_fake, None, grad) == pytest.approx(0.5)
    np.testing.assert_allclose(grad, -0.5)


def test_wgan_gp_recommended_settings_apply_where_nothing_was_set():
    s = resolve({"loss": "wgan-gp"})
    assert (s["d_steps"], s["g_lr"], s["d_lr"], s["beta1"], s["beta2"]) == (5, 1e-4, 1e-4, 0.0, 0.9)
    s = resolve({"loss": "wgan-gp", "lr": 3e-4, "d_steps": 2})
    assert (s["d_steps"], s["g_lr"], s["d_lr"]) == (2, 3e-4, 3e-4)
    gan = build_gan({"loss": "wgan-gp", "architecture": "mlp", "g_hidden": [8], "d_hidden": [8],
                     "image_shape": SHAPE, "latent_dim": LATENT})
    assert gan.d_steps == 5 and gan.d_optimizer.beta1 == 0.0 and gan.d_optimizer.beta2 == 0.9
    assert gan.d_optimizer.lr == 1e-4 == gan.g_optimizer.lr
    with pytest.raises(ValueError, match="clip_value.*wgan"):
        make_gan(loss="wgan-gp", clip_value=0.01)


def test_objective_terms_are_recorded_with_the_objective_and_rebuild_once():
    gan = make_gan(loss="wgan-gp", discriminator_terms=[R1Penalty(1.0, every=4)])
    described = gan.describe()
    assert described["objective"] == {"name": "wgan-gp", "options": {"gp_weight": 10.0}}
    assert described["discriminator_terms"] == [{"class": "R1Penalty", "config": {"gamma": 1.0, "every": 4}}]
    record = {**described, "generator": gan.generator.get_config(), "discriminator": gan.discriminator.get_config()}
    rebuilt = gan_from_record(json.loads(json.dumps(record)))
    assert [type(t) for t in rebuilt.discriminator_terms] == [WGANGradientPenalty, R1Penalty]
    assert rebuilt.describe() == described
    assert isinstance(term_from_config({"class": "WGANGradientPenalty", "config": {"weight": 5.0, "every": 1}}),
                      WGANGradientPenalty)


def test_build_gan_wires_r1_settings():
    base = {"architecture": "mlp", "g_hidden": [8], "d_hidden": [8], "image_shape": SHAPE, "latent_dim": LATENT}
    (term,) = build_gan(base).discriminator_terms  # bce recommends lazy R1
    assert isinstance(term, R1Penalty) and (term.gamma, term.every) == (1.0, 16)
    assert build_gan({**base, "r1": 0.0}).discriminator_terms == []
    assert build_gan({**base, "loss": "lsgan"}).discriminator_terms == []
    (term,) = build_gan({**base, "r1": 10.0, "r1_every": 16}).discriminator_terms
    assert isinstance(term, R1Penalty) and (term.gamma, term.every) == (10.0, 16)
    (term,) = build_gan({**base, "r1": 10.0}).discriminator_terms  # a gamma of one's own: every D update
    assert (term.gamma, term.every) == (10.0, 1)
    (term,) = build_gan({**base, "loss": "lsgan", "r1": 10.0}).discriminator_terms
    assert (term.gamma, term.every) == (10.0, 1)
    (term,) = build_gan({**base, "r1_every": 4}).discriminator_terms  # bce's gamma at one's own pace
    assert (term.gamma, term.every) == (1.0, 4)
    with pytest.raises(ValueError, match="r1_every=16 has no effect without r1"):
        build_gan({**base, "loss": "lsgan", "r1_every": 16})
    with pytest.raises(ValueError, match="r1_every=16 has no effect without r1"):
        build_gan({**base, "r1": 0.0, "r1_every": 16})
    with pytest.raises(ValueError, match="r1 must be >= 0"):
        build_gan({**base, "r1": -1.0})


def test_a_discriminator_with_batchnorm_in_training_mode_is_refused_when_the_term_is_attached():
    G, _ = models()
    D = mg.Sequential([mg.Dense(16, 8, dtype=np.float64, rng=0), mg.LeakyReLU(0.2),
                       mg.BatchNorm(8, dtype=np.float64), mg.Dense(8, 1, dtype=np.float64, rng=1)])
    with pytest.raises(ValueError, match=r"discriminator.*layers\[2\] \(BatchNorm\(8.*training mode"):
        mg.GAN(G, D, latent_dim=LATENT, discriminator_terms=[R1Penalty(1.0)])
    with pytest.raises(ValueError, match=r"layers\[2\]"):
        mg.GAN(G, D, latent_dim=LATENT, loss="wgan-gp")
    mg.GAN(G, D, latent_dim=LATENT)  # without a penalty the same networks are fine


RESUME_SETUPS = {
    "lazy-r1-dropout": {"discriminator_terms": [R1Penalty(5.0, every=3)], "dropout": 0.3, "d_steps": 2},
    "wgan-gp": {"loss": "wgan-gp", "d_steps": 2},
}


@pytest.mark.parametrize("setup", sorted(RESUME_SETUPS))
def test_resume_with_penalties_is_bit_identical_to_an_uninterrupted_run(tmp_path, setup):
    def fresh():
        kw = dict(RESUME_SETUPS[setup])
        if "discriminator_terms" in kw:
            kw["discriminator_terms"] = [R1Penalty(5.0, every=3)]
        return make_gan(np.float32, seed=3, **kw)

    images = data(32, dtype=np.float32)
    a, b = tmp_path / "a", tmp_path / "b"
    fresh().fit(images, iterations=5, batch_size=8, out_dir=a, checkpoint_every=0, progress=False)
    resumed = fresh()
    resumed.fit(images, iterations=10, batch_size=8, out_dir=a, resume=True, progress=False)
    straight = fresh()
    straight.fit(images, iterations=10, batch_size=8, out_dir=b, progress=False)
    state_r, state_s = resumed.state()[0], straight.state()[0]
    assert state_r.keys() == state_s.keys()
    for key in state_r:
        assert np.array_equal(state_r[key], state_s[key]), key
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    rows_a = list(csv.DictReader(open(a / "metrics.csv")))
    rows_b = list(csv.DictReader(open(b / "metrics.csv")))
    name = "r1" if "lazy" in setup else "gp"
    assert [r[f"{name}_grad_norm"] for r in rows_a] == [r[f"{name}_grad_norm"] for r in rows_b]
    assert any(r[f"{name}_grad_norm"] for r in rows_a)
    figure = mg.plots.loss_figure(mg.plots.read_metrics_csv(a / "metrics.csv"))
    # losses, D outputs, the input-gradient norm, and the penalty's own value with the extra terms
    assert [ax.get_ylabel() for ax in figure.axes][2:] == ["mean ||grad_x D||", "extra terms"]
    assert name in [line.get_label() for line in figure.axes[3].lines]
    drawn = figure.axes[2].lines[0]
    logged = [float(r[f"{name}_grad_norm"]) for r in rows_a if r[f"{name}_grad_norm"]]
    np.testing.assert_allclose(drawn.get_ydata(), logged, rtol=1e-5)


def test_loss_figure_has_two_panels_without_a_penalty():
    n = 20
    metrics = {k: np.linspace(0.1, 0.9, n) for k in ("iteration", "d_loss", "g_loss", "d_real", "d_fake")}
    assert len(mg.plots.loss_figure(metrics).axes) == 2
    metrics["gp_grad_norm"] = np.full(n, np.nan)  # a column that was never logged
    assert len(mg.plots.loss_figure(metrics).axes) == 2
    metrics["gp_grad_norm"][::4] = 2.0
    figure = mg.plots.loss_figure(metrics)
    assert len(figure.axes) == 3
    np.testing.assert_array_equal(figure.axes[2].lines[0].get_xdata(), metrics["iteration"][::4])


# --------------------------------------------------------------------------- the command line
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "minigan", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}, timeout=600)


@pytest.mark.cli
def test_cli_refuses_r1_every_without_r1(tmp_path):
    bad = _cli("train", "--r1", "0", "--r1-every", "4", "--iterations", "2", "--out", "bad", cwd=tmp_path)
    assert bad.returncode == 1 and "r1_every=4 has no effect without r1" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad" / "checkpoint.npz").exists()


@pytest.mark.slow
@pytest.mark.cli
def test_cli_r1_options_and_toml_keys(tmp_path):
    images = (np.random.default_rng(0).random((40, 8, 8)) * 255).astype(np.uint8)
    np.save(tmp_path / "digits.npy", images)
    (tmp_path / "run.toml").write_text('r1 = 2.0\nr1_every = 2\narchitecture = "mlp"\ng_hidden = [8]\n'
                                       'd_hidden = [8]\nlatent_dim = 4\n')
    out = _cli("train", "--config", "run.toml", "--data", "digits.npy", "--iterations", "4", "--batch-size", "8",
               "--out", "run", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["settings"]["r1"] == 2.0 and record["settings"]["r1_every"] == 2
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [bool(r["r1_grad_norm"]) for r in rows] == [False, True, False, True]
    resumed = _cli("train", "--out", "run", "--resume", "--iterations", "6", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert len(list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))) == 6
    info = _cli("info", "run", cwd=tmp_path)
    assert info.returncode == 0 and "R1Penalty(every=2, gamma=2.0)" in info.stdout
    changed = _cli("train", "--out", "run", "--resume", "--r1", "3", "--iterations", "8", cwd=tmp_path)
    assert changed.returncode == 1 and "--r1 3" in changed.stderr and "Traceback" not in changed.stderr


@pytest.mark.cli
def test_cli_help_lists_the_penalties(tmp_path):
    out = _cli("train", "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "--r1 R1" in out.stdout and "--r1-every R1_EVERY" in out.stdout and "wgan-gp" in out.stdout


@pytest.mark.slow
@pytest.mark.cli
def test_cli_wgan_gp_trains_and_logs_the_penalty(tmp_path):
    out = _cli("train", "--loss", "wgan-gp", "--iterations", "6", "--out", "run", "--no-progress", "--sample-every",
               "3", cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["d_steps"] == 5 and record["d_optimizer"]["beta1"] == 0.0 and record["d_optimizer"]["lr"] == 1e-4
    assert record["objective"] == {"name": "wgan-gp", "options": {"gp_weight": 10.0}}
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert all(float(r["gp_grad_norm"]) > 0 and float(r["gp"]) >= 0 for r in rows)
    assert (tmp_path / "run" / "losses.png").exists()
    info = _cli("info", "run", cwd=tmp_path)
    assert info.returncode == 0 and "wgan-gp" in info.stdout and "loss terms" not in info.stdout
