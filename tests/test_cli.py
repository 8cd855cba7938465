"""The ``minigan`` command for GANs (train / sample / evaluate / info), run as a user runs it:
``python -m minigan`` in a subprocess, checking exit codes, files and messages (never a traceback)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.cli, pytest.mark.gan]

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("train", "sample", "evaluate", "info", "benford", "detect")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("MINIGAN_DEBUG", None)
    return env


def minigan(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minigan", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def fails(result: subprocess.CompletedProcess, pattern: str) -> str:
    """A clean failure: non-zero exit, an 'error:' line naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert "error" in result.stderr.lower(), result.stderr
    assert pattern.lower() in result.stderr.lower(), result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained_run(workdir) -> Path:
    """The reference GAN on the bundled digits, 20 iterations at batch 16."""
    ok(minigan("train", "--iterations", 20, "--batch-size", 16, "--out", "run", "--sample-every", 10,
               "--no-progress", cwd=workdir))
    return workdir / "run"


# ------------------------------------------------------------------ help
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, tmp_path):
    result = ok(minigan(command, "--help", cwd=tmp_path))
    assert result.stdout.startswith("usage: minigan " + command)
    assert "--help" in result.stdout


def test_top_level_help_lists_the_commands(tmp_path):
    result = ok(minigan("--help", cwd=tmp_path))
    for command in SUBCOMMANDS:
        assert command in result.stdout
    assert ok(minigan("--version", cwd=tmp_path)).stdout.startswith("minigan ")
    train_help = ok(minigan("train", "--help", cwd=tmp_path)).stdout
    for option in ("--data", "--iterations", "--epochs", "--batch-size", "--loss", "--latent-dim", "--lr", "--seed",
                   "--out", "--resume", "--config"):
        assert option in train_help


# ------------------------------------------------------------------ train, info, sample, evaluate
def test_train_writes_a_run_directory(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "metrics.csv", "samples", "losses.png", "progress.gif", "checkpoint.npz"} <= names
    config = json.loads((trained_run / "config.json").read_text())
    assert config["settings"]["architecture"] == "reference" and config["settings"]["data"] == "mnist-5k"
    assert config["iterations"] == 20 and config["batch_size"] == 16 and config["seed"] == 0
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 21
    assert sorted(p.name for p in (trained_run / "samples").iterdir()) == ["iter_000010.png", "iter_000020.png"]


def test_info_describes_the_run(trained_run, workdir):
    out = ok(minigan("info", "run", cwd=workdir)).stdout
    assert "iteration 20 of 20" in out
    assert "mnist-5k" in out and "reference" in out and "d_loss" in out


@pytest.mark.slow
def test_sample_npy_and_png(trained_run, workdir):
    from PIL import Image

    ok(minigan("sample", "--checkpoint", "run", "--n", 7, "--seed", 1, "--out", "s1.npy", cwd=workdir))
    ok(minigan("sample", "--checkpoint", "run/checkpoint.npz", "--n", 7, "--seed", 1, "--out", "s1b.npy",
               cwd=workdir))
    ok(minigan("sample", "--checkpoint", "run", "--n", 7, "--seed", 2, "--out", "s2.npy", cwd=workdir))
    a, b, c = (np.load(workdir / name, allow_pickle=False) for name in ("s1.npy", "s1b.npy", "s2.npy"))
    assert a.dtype == np.float32 and a.shape == (7, 28, 28)
    assert a.min() >= -1 and a.max() <= 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # The same numbers as the library gives for the same run and seed.
    from minigan.models import load_gan

    np.testing.assert_array_equal(a, load_gan(trained_run).sample(7, seed=1))

    ok(minigan("sample", "--checkpoint", "run", "--n", 9, "--seed", 1, "--out", "grid.png", cwd=workdir))
    with Image.open(workdir / "grid.png") as picture:
        assert picture.format == "PNG" and min(picture.size) > 28


def test_evaluate_writes_json(trained_run, workdir):
    out = ok(minigan("evaluate", "--checkpoint", "run", "--n", 200, "--json", "out.json", cwd=workdir)).stdout
    assert "classifier FID" in out and "classes covered" in out
    numbers = json.loads((workdir / "out.json").read_text())
    assert numbers["n_samples"] == 200
    assert np.isfinite(numbers["classifier_fid"]) and numbers["classifier_fid"] >= 0
    assert 0 <= numbers["classes_covered"] <= 10
    assert 0 <= numbers["mean_confidence"] <= 1
    assert sum(numbers["class_histogram"]) == 200


# ------------------------------------------------------------------ config file and resume
@pytest.mark.slow
def test_train_reads_a_toml_config_and_flags_override_it(tmp_path):
    (tmp_path / "cfg.toml").write_text(
        'iterations = 3\nbatch-size = 8\nseed = 5\nloss = "lsgan"\nlabel_smoothing = 0.1\nout = "tomlrun"\n'
    )
    ok(minigan("train", "--config", "cfg.toml", "--seed", 7, "--no-progress", cwd=tmp_path))
    config = json.loads((tmp_path / "tomlrun" / "config.json").read_text())
    assert (config["iterations"], config["batch_size"], config["loss"]) == (3, 8, "lsgan")
    assert config["objective"]["options"]["label_smoothing"] == pytest.approx(0.1)
    assert config["seed"] == 7  # the flag wins over the file
    assert len((tmp_path / "tomlrun" / "metrics.csv").read_text().splitlines()) == 4


def test_bad_config_files(tmp_path):
    (tmp_path / "unknown.toml").write_text("iterations = 3\nlearning_rate = 0.1\n")
    fails(minigan("train", "--config", "unknown.toml", cwd=tmp_path), "learning_rate")
    (tmp_path / "broken.toml").write_text("iterations = = 3\n")
    fails(minigan("train", "--config", "broken.toml", cwd=tmp_path), "not valid TOML")
    fails(minigan("train", "--config", "absent.toml", cwd=tmp_path), "not found")


@pytest.mark.slow
def test_resume_continues_a_run_like_an_uninterrupted_one(tmp_path):
    from minigan.checkpoint import load_checkpoint

    common = ("--batch-size", 8, "--seed", 3, "--checkpoint-every", 0, "--sample-every", 0, "--no-progress")
    ok(minigan("train", "--iterations", 4, "--out", "a", *common, cwd=tmp_path))
    fails(minigan("train", "--iterations", 4, "--out", "a", *common, cwd=tmp_path), "resume")
    ok(minigan("train", "--resume", "--iterations", 8, "--out", "a", "--no-progress", cwd=tmp_path))
    ok(minigan("train", "--iterations", 8, "--out", "b", *common, cwd=tmp_path))
    (arrays_a, meta_a), (arrays_b, meta_b) = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert meta_a["iteration"] == meta_b["iteration"] == 8
    for key in arrays_b:
        assert np.array_equal(arrays_a[key], arrays_b[key]), key
    assert len((tmp_path / "a" / "metrics.csv").read_text().splitlines()) == 9
    assert "iteration 8 of 8" in ok(minigan("info", "a", cwd=tmp_path)).stdout


def test_resume_without_a_run(tmp_path):
    fails(minigan("train", "--resume", "--out", "nothing", cwd=tmp_path), "no run")


@pytest.mark.slow
def test_train_on_user_images_and_evaluate_refuses_non_digits(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (32, 8, 8), dtype=np.uint8)
    with open(tmp_path / "tiny.npy", "wb") as handle:
        np.save(handle, images)
    ok(minigan("train", "--data", "tiny.npy", "--architecture", "mlp", "--latent-dim", 4, "--iterations", 2,
               "--batch-size", 8, "--out", "tiny", "--no-progress", cwd=tmp_path))
    ok(minigan("sample", "--checkpoint", "tiny", "--n", 3, "--seed", 0, "--out", "t.npy", cwd=tmp_path))
    assert np.load(tmp_path / "t.npy").shape == (3, 8, 8)
    fails(minigan("evaluate", "--checkpoint", "tiny", "--n", 10, cwd=tmp_path), "28x28")


# ------------------------------------------------------------------ bad arguments and bad files
@pytest.mark.parametrize(
    "args, pattern",
    [
        (("train", "--loss", "minimax", "--iterations", 1), "loss"),
        (("train", "--iterations", 0, "--out", "zero"), "iterations"),
        (("train", "--iterations", 2, "--epochs", 1, "--out", "both"), "not both"),
        (("train", "--data", "no/such/folder", "--iterations", 1), "no/such/folder"),
        (("sample", "--checkpoint", "missing", "--out", "s.npy"), "no checkpoint"),
        (("sample", "--checkpoint", "missing", "--out", "s.jpg"), "FILE.png, FILE.npy or a folder"),
        (("evaluate", "--checkpoint", "missing"), "no checkpoint"),
        (("info", "missing"), "not a run directory"),
    ],
)
def test_bad_arguments_fail_cleanly(args, pattern, tmp_path):
    fails(minigan(*args, cwd=tmp_path), pattern)


def test_bad_numbers_are_refused(trained_run, workdir):
    fails(minigan("sample", "--checkpoint", "run", "--n", 0, "--out", "zero.npy", cwd=workdir), "n must be >= 1")
    assert not (workdir / "zero.npy").exists()
    result = minigan("train", "--iterations", "many", cwd=workdir)
    assert result.returncode == 2 and "invalid int value" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["truncated", "random", "other-kind", "npy"])
def test_corrupt_checkpoints_fail_cleanly(kind, trained_run, tmp_path):
    from minigan.serialization import save_npz

    good = (trained_run / "checkpoint.npz").read_bytes()
    path = tmp_path / ("bad.npy" if kind == "npy" else "bad.npz")
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "other-kind":
        save_npz(path, {"x": np.zeros(2)}, {}, kind="benford-detector")
    else:
        with open(path, "wb") as handle:
            np.save(handle, np.zeros((3, 3)))
    for command in (("sample", "--checkpoint", path, "--out", tmp_path / "s.npy"),
                    ("evaluate", "--checkpoint", path, "--n", 10)):
        fails(minigan(*command, cwd=tmp_path), str(path))
    assert not (tmp_path / "s.npy").exists()


# ------------------------------------------------------------------ the example script
@pytest.mark.slow
def test_train_mnist_example_runs(tmp_path):
    from PIL import Image

    from minigan.checkpoint import load_checkpoint

    script = ROOT / "examples" / "train_mnist.py"
    result = ok(subprocess.run([sys.executable, str(script), "--iterations", "5", "--out", "ex"], cwd=tmp_path,
                               env=_env(), capture_output=True, text=True, timeout=300))
    assert "1,489,936" in result.stdout and "533,505" in result.stdout  # the model summaries
    assert load_checkpoint(tmp_path / "ex")[1]["iteration"] == 5
    assert len((tmp_path / "ex" / "metrics.csv").read_text().splitlines()) == 6
    with Image.open(tmp_path / "ex" / "digits.png") as picture:
        assert picture.format == "PNG"
    ok(subprocess.run([sys.executable, str(script), "--iterations", "7", "--out", "ex", "--resume"], cwd=tmp_path,
                      env=_env(), capture_output=True, text=True, timeout=300))
    assert load_checkpoint(tmp_path / "ex")[1]["iteration"] == 7


@pytest.mark.slow  # trains a GAN for 2 iterations in a subprocess
def test_a_skipped_non_image_file_is_a_note_not_a_python_warning(tmp_path):
    from PIL import Image

    data = tmp_path / "pictures"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(data / f"{i}.png")
    (data / "notes.txt").write_text("not an image")
    result = ok(minigan("train", "--data", data, "--iterations", 2, "--batch-size", 2, "--sample-every", 2,
                        "--checkpoint-every", 2, "--no-progress", "--out", "run", cwd=tmp_path))
    assert "note: skipped 1 non-image entry" in result.stderr and "'notes.txt'" in result.stderr
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr
