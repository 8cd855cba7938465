"""A run is a run wherever it was made, and every setting is declared once.

Runs trained from Python are read by ``minigan sample | evaluate | info`` and resumed
from the command line only on the same data; resume says what differs; data paths
are stored absolute; every setting reaches the command line and the TOML file.
"""
from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import minigan as mg
from shared import failed_cleanly, run_minigan, succeeded
from minigan.settings import BY_NAME, SETTINGS, resolve

pytestmark = [pytest.mark.gan, pytest.mark.cli]

ROOT = Path(__file__).resolve().parents[1]


def minigan(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_minigan(*args, cwd=cwd)


ok, fails = succeeded, failed_cleanly


def python_gan(seed=0):
    """A small dense GAN for 28x28 digits, built in Python (not by minigan train)."""
    rng = np.random.default_rng(seed)
    G = mg.models.mlp_generator(16, (28, 28), hidden=(32,), activation="relu", rng=rng)
    D = mg.models.mlp_discriminator((28, 28), hidden=(24,), dropout=0.1, rng=rng)
    return mg.GAN(G, D, latent_dim=16, loss="hinge", seed=seed,
                  g_optimizer=mg.optim.Adam(G.parameters(), lr=1e-3, beta1=0.5),
                  d_optimizer=mg.optim.Adam(D.parameters(), lr=4e-4, beta1=0.5))


@pytest.fixture(scope="module")
def digits():
    images, _ = mg.datasets.load("mnist-5k")
    return images[::25]  # 200 digits, every class


@pytest.fixture(scope="module")
def python_run(tmp_path_factory, digits) -> Path:
    run = tmp_path_factory.mktemp("py") / "run"
    python_gan().fit(digits, iterations=4, batch_size=16, out_dir=run, progress=False)
    return run


# ---------------------------------------------------------------- runs made in Python
@pytest.mark.slow
def test_the_command_line_reads_a_run_trained_from_python(python_run):
    ok(minigan("sample", "--checkpoint", python_run, "--n", 5, "--seed", 1, "--out", "s.npy", cwd=python_run.parent))
    sampled = np.load(python_run.parent / "s.npy")
    np.testing.assert_array_equal(sampled, mg.load_gan(python_run).sample(5, seed=1))
    scores = ok(minigan("evaluate", "--checkpoint", python_run, "--n", 100, cwd=python_run.parent)).stdout
    assert "classifier FID" in scores and "iteration 4" in scores
    info = ok(minigan("info", python_run, cwd=python_run.parent)).stdout
    assert "Python (GAN.fit)" in info and "in-memory data" in info and "hinge" in info
    assert "g_lr             0.001" in info and "d_lr             0.0004" in info


@pytest.mark.slow
def test_resume_from_the_command_line_needs_the_same_data(python_run, digits, tmp_path):
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(python_run, copy)
    fails(minigan("train", "--resume", "--out", copy, "--iterations", 6, "--no-progress", cwd=tmp_path),
          "trained from Python on in-memory data", "--data")
    np.save(tmp_path / "other.npy", digits[::-1])
    fails(minigan("train", "--resume", "--out", copy, "--data", "other.npy", "--iterations", 6, "--no-progress",
                  cwd=tmp_path), "data: the run was trained on (200, 28, 28) uint8")
    np.save(tmp_path / "same.npy", digits)
    ok(minigan("train", "--resume", "--out", copy, "--data", "same.npy", "--iterations", 6, "--no-progress",
               cwd=tmp_path))
    straight = tmp_path / "straight"
    python_gan().fit(digits, iterations=6, batch_size=16, out_dir=straight, progress=False)
    a, b = mg.checkpoint.load_checkpoint(copy)[0], mg.checkpoint.load_checkpoint(straight)[0]
    assert all(np.array_equal(a[k], b[k]) for k in b)  # bit-identical to an uninterrupted run


def test_resume_refuses_another_batch_size_and_names_it(python_run, digits, tmp_path):
    import shutil

    shutil.copytree(python_run, tmp_path / "run")
    gan = python_gan()
    with pytest.raises(ValueError, match="batch_size: the run has 16, now 8"):
        gan.fit(digits, iterations=6, batch_size=8, out_dir=tmp_path / "run", resume=True, progress=False)
    assert gan.iteration == 0


# ---------------------------------------------------------------- runs made by minigan train
@pytest.mark.slow
def test_a_relative_data_path_resumes_from_another_folder(tmp_path, digits):
    (tmp_path / "work").mkdir()
    np.save(tmp_path / "work" / "tiny.npy", digits[:64])
    common = ("--architecture", "mlp", "--g-hidden", "16", "--d-hidden", "8", "--latent-dim", 4, "--batch-size", 8,
              "--no-progress")
    ok(minigan("train", "--data", "tiny.npy", "--iterations", 2, "--out", "run", *common, cwd=tmp_path / "work"))
    recorded = json.loads((tmp_path / "work" / "run" / "config.json").read_text())["settings"]["data"]
    assert recorded == str((tmp_path / "work" / "tiny.npy").resolve())
    ok(minigan("train", "--resume", "--out", "work/run", "--iterations", 4, "--no-progress", cwd=tmp_path))
    assert mg.checkpoint.load_checkpoint(tmp_path / "work" / "run")[1]["iteration"] == 4
    err = fails(minigan("train", "--resume", "--out", "work/run", "--iterations", 5, "--lr", 1e-3, "--no-progress",
                        cwd=tmp_path), "--lr 0.001 (the run has 0.0002)")
    assert "Start a new run" in err


def test_every_setting_reaches_the_command_line_and_the_toml_file(tmp_path):
    from minigan.cli import _read_toml, build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for setting in SETTINGS:
        assert setting.option in help_text, setting.name
    example = {"int": 2, "float": 0.5, "size": [8, 8], "str": "x", "bool": True, "widths": [4]}
    lines = [f"{s.name} = {json.dumps(s.default if s.default is not None else example[s.kind])}" for s in SETTINGS]
    (tmp_path / "all.toml").write_text("\n".join(lines) + "\n")
    read = _read_toml(str(tmp_path / "all.toml"))
    assert set(read) == set(BY_NAME)


def test_mlp_settings_build_what_they_say():
    gan = mg.models.build_gan({"architecture": "mlp", "g_hidden": [12, 20], "d_hidden": [9], "g_activation": "tanh",
                               "d_activation": "relu", "d_dropout": 0.25, "g_batchnorm": False, "latent_dim": 5,
                               "g_lr": 1e-3, "d_lr": 3e-4, "beta2": 0.99, "loss": "wgan", "clip_value": 0.05,
                               "d_steps": 3, "image_shape": [6, 6]})
    kinds = [type(layer).__name__ for layer in gan.generator.layers]
    assert kinds == ["Dense", "Tanh", "Dense", "Tanh", "Dense", "Tanh"]
    assert [layer.out_features for layer in gan.generator.layers if isinstance(layer, mg.Dense)] == [12, 20, 36]
    assert [type(layer).__name__ for layer in gan.discriminator.layers] == ["Dense", "ReLU", "Dropout", "Dense"]
    assert gan.discriminator.layers[2].rate == 0.25
    assert (gan.g_optimizer.lr, gan.d_optimizer.lr, gan.g_optimizer.beta2, gan.d_optimizer.beta2) == (1e-3, 3e-4,
                                                                                                      0.99, 0.99)
    assert gan.objective.clip_value == 0.05 and gan.d_steps == 3
    reference = mg.models.build_gan()
    assert reference.g_optimizer.lr == reference.d_optimizer.lr == BY_NAME["lr"].default


def test_settings_are_checked_and_misplaced_ones_refused():
    with pytest.raises(ValueError, match="g_hidden apply to architecture 'mlp'"):
        resolve({"g_hidden": [64]})
    with pytest.raises(ValueError, match="unknown settings \\['learning_rate'\\]"):
        resolve({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="g_lr must be > 0"):
        resolve({"g_lr": -1.0})
    with pytest.raises(ValueError, match="g_hidden must be comma-separated integers"):
        resolve({"architecture": "mlp", "g_hidden": "64,x"})
    with pytest.raises(ValueError, match="loss must be one of 'bce', 'lsgan', 'hinge', 'wgan', 'rabce'"):
        resolve({"loss": "minimax"})
    assert resolve({"architecture": "mlp", "g_hidden": "64, 32"})["g_hidden"] == [64, 32]
    assert resolve({"lr": 1e-3})["d_lr"] == 1e-3 and resolve({"lr": 1e-3, "d_lr": 5e-4})["d_lr"] == 5e-4
    assert resolve({"epochs": 3})["iterations"] is None and resolve({})["iterations"] > 0


def test_the_defaults_of_gan_and_fit_are_the_declared_ones():
    import inspect

    gan_defaults = inspect.signature(mg.GAN).parameters
    fit_defaults = inspect.signature(mg.GAN.fit).parameters
    for name in ("loss", "d_steps", "label_smoothing", "ema_decay", "clip_value"):
        assert gan_defaults[name].default == BY_NAME[name].default, name
    for name in ("batch_size", "sample_every", "checkpoint_every", "eval_every"):
        assert fit_defaults[name].default == BY_NAME[name].default, name
    gan = mg.GAN(mg.models.reference_generator(rng=0), mg.models.reference_discriminator(rng=0), latent_dim=100)
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert (optimizer.lr, optimizer.beta1, optimizer.beta2) == tuple(BY_NAME[k].default
                                                                         for k in ("lr", "beta1", "beta2"))


# ---------------------------------------------------------------- structure
def test_no_import_cycle_among_the_loop_modules():
    """gan, run, models and checkpoint import each other only one way (imports inside
    functions count too; imports for type checking do not)."""
    names = ("gan", "run", "models", "checkpoint")
    edges = {}
    for name in names:
        tree = ast.parse((ROOT / "minigan" / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module in names:
                    found.add(node.module)
                elif node.module is None:
                    found.update(alias.name for alias in node.names if alias.name in names)
        edges[name] = found

    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt))) for nxt in edges[start])

    assert not [name for name in names if reaches(name, name)], edges
