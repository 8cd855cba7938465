"""What a new user runs into: their own images, getting images out, seeing training,
ordinary events without tracebacks, and the small things (run as a user runs them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minigan as mg
from shared import failed_cleanly, run_minigan, succeeded
from minigan import cli, plots

pytestmark = [pytest.mark.cli, pytest.mark.gan]

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("--architecture", "mlp", "--g-hidden", "16", "--d-hidden", "8", "--latent-dim", "4", "--no-progress")


def minigan(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_minigan(*args, cwd=cwd)


ok, fails = succeeded, failed_cleanly


def colour_folder(folder: Path, sizes=((12, 12), (12, 12), (20, 16), (12, 12))) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        picture = np.zeros((h, w, 3), dtype=np.uint8)
        picture[..., i % 3] = rng.integers(100, 255, (h, w))  # a strongly coloured image
        Image.fromarray(picture).save(folder / f"{i}.png")
    return folder


# ---------------------------------------------------------------- own images
@pytest.mark.slow
def test_colour_and_mixed_sizes_from_the_command_line(tmp_path):
    colour_folder(tmp_path / "pics")
    run = ok(minigan("train", "--data", "pics", "--color", "--resize", "8x8", "--iterations", 2, "--batch-size", 2,
                     "--out", "rgb", *SMALL, cwd=tmp_path))
    assert "4 images of (8, 8, 3)" in run.stdout
    assert "parameters" in run.stdout and "a checkpoint takes" in run.stdout
    gan = mg.load_gan(tmp_path / "rgb")
    assert gan.image_shape == (8, 8, 3) and gan.sample(2, seed=0).shape == (2, 8, 8, 3)
    with Image.open(tmp_path / "rgb" / "samples" / "iter_000002.png") as grid:
        assert grid.mode == "RGB"
    grey = ok(minigan("train", "--data", "pics", "--resize", "8x8", "--iterations", 1, "--batch-size", 2,
                      "--out", "grey", *SMALL, cwd=tmp_path))
    assert "in colour; training on their grey luma (pass --color" in grey.stdout
    mixed = minigan("train", "--data", "pics", "--iterations", 1, "--out", "mixed", *SMALL, cwd=tmp_path)
    assert mixed.returncode != 0 and "Traceback" not in mixed.stderr and "--resize" in mixed.stderr


def test_a_model_too_large_for_a_dense_gan_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    images = np.random.default_rng(0).integers(0, 256, (8, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "six.npy", images)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "LARGE_CHECKPOINT_BYTES", 10_000)  # the mlp below needs about 30 kB
    args = ["train", "--data", "six.npy", "--iterations", "1", "--batch-size", "4", *SMALL]
    assert cli.main([*args, "--out", "refused"]) == 1
    err = capsys.readouterr().err
    assert "a dense GAN for 6x6 images is large" in err and "--allow-large" in err and "--resize" in err
    assert not (tmp_path / "refused" / "checkpoint.npz").exists()
    assert cli.main([*args, "--out", "allowed", "--allow-large"]) == 0


# ---------------------------------------------------------------- images out
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("small")
    np.save(where / "digits.npy", mg.datasets.load("mnist-5k")[0][::50])
    ok(minigan("train", "--data", "digits.npy", "--iterations", 4, "--batch-size", 8, "--sample-every", 2,
               "--out", "run", *SMALL, cwd=where))
    return where / "run"


def test_sample_writes_one_png_per_image(small_run, tmp_path):
    result = ok(minigan("sample", "--checkpoint", small_run, "--n", 12, "--seed", 3, "--format", "png",
                        "--out", "pngs", cwd=tmp_path))
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files] == [f"sample_{i:02d}.png" for i in range(12)]
    expected = mg.datasets.from_tanh_range(mg.load_gan(small_run).sample(12, seed=3))
    for f, image in zip(files, expected):
        with Image.open(f) as picture:
            assert np.array_equal(np.asarray(picture), image)
    assert "wrote 12 samples" in result.stdout
    assert "wrote 1 sample to" in ok(minigan("sample", "--checkpoint", small_run, "--n", 1, "--out", "one.png",
                                             cwd=tmp_path)).stdout


def test_a_latent_walk_as_a_grid_and_a_gif(small_run, tmp_path):
    ok(minigan("sample", "--checkpoint", small_run, "--walk", "--n", 3, "--steps", 5, "--seed", 2,
               "--out", "walk.png", cwd=tmp_path))
    gan = mg.load_gan(small_run)
    walk = gan.latent_walk(3, 5, seed=2)
    with Image.open(tmp_path / "walk.png") as picture:
        expected = plots.upscale(plots.image_grid(walk.reshape(15, 28, 28), ncols=5), 3)
        assert np.array_equal(np.asarray(picture), expected)
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 5 + 3  # there and back
    # each path starts and ends at independent noise vectors, and moves smoothly between them
    steps = np.abs(np.diff(walk, axis=1)).mean(axis=(2, 3))
    assert steps.max() < np.abs(walk[:, -1] - walk[:, 0]).mean()


def test_latent_walk_keeps_the_noise_norm():
    gan = mg.GAN(mg.models.mlp_generator(64, (4, 4), hidden=(8,), rng=0),
                 mg.models.mlp_discriminator((4, 4), hidden=(8,), rng=0), latent_dim=64, seed=0)
    captured = []
    original = gan.sample
    gan.sample = lambda n, noise=None, **kw: captured.append(noise) or original(n, noise=noise, **kw)
    gan.latent_walk(4, 9, seed=1)
    norms = np.linalg.norm(captured[0].reshape(4, 9, 64), axis=2)
    ends = norms[:, [0, -1]]
    assert (norms >= ends.min(axis=1, keepdims=True) - 1e-4).all()  # slerp: no dip in the middle
    with pytest.raises(ValueError, match="steps must be >= 2"):
        gan.latent_walk(2, 1)


# ---------------------------------------------------------------- seeing training
def test_grids_carry_their_iteration_and_the_loss_plot_is_redrawn_with_them(tmp_path):
    gan = mg.GAN(mg.models.mlp_generator(4, (8, 8), hidden=(8,), rng=0),
                 mg.models.mlp_discriminator((8, 8), hidden=(8,), rng=0), latent_dim=4, seed=0)
    seen = {}

    def look(gan, iteration, logs):
        if iteration == 3:  # the grid of iteration 2 has been written, the run is not over
            seen["plot"] = (tmp_path / "run" / "losses.png").exists()

    data = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8)).astype(np.float32)
    gan.fit(data, iterations=6, batch_size=8, sample_every=2, out_dir=tmp_path / "run", progress=False,
            callbacks=[look])
    assert seen["plot"]
    with Image.open(tmp_path / "run" / "samples" / "iter_000004.png") as grid:
        band = np.asarray(grid)[:plots.CAPTION_HEIGHT]
    assert (band == 255).mean() > 0.5 and (band < 128).any()


@pytest.mark.slow
def test_the_fid_shows_on_the_progress_bar_and_in_the_plot(tmp_path, capfd):
    gan = mg.GAN(mg.models.mlp_generator(8, (28, 28), hidden=(16,), rng=0),
                 mg.models.mlp_discriminator((28, 28), hidden=(8,), rng=0), latent_dim=8, seed=0)
    images = mg.datasets.load("mnist-5k")[0][::25]
    gan.fit(images, iterations=4, batch_size=8, eval_every=2, out_dir=tmp_path / "run", progress=True)
    assert "fid=" in capfd.readouterr().err
    metrics = plots.read_metrics_csv(tmp_path / "run" / "metrics.csv")
    figure = plots.loss_figure(metrics)
    assert figure.axes[-1].get_ylabel().startswith("classifier FID")


# ---------------------------------------------------------------- no traceback for ordinary events
def test_a_closed_pipe_ends_quietly(small_run):
    for command in (["info", small_run], ["benford", ROOT / "README.md"]):
        process = subprocess.Popen([sys.executable, "-m", "minigan", *map(str, command)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        process.stdout.read(10)
        process.stdout.close()  # the reader goes away, as `| head -c 10` does
        err = process.stderr.read().decode()
        process.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_download_without_network_is_an_error_message(tmp_path):
    env_mirror = "http://127.0.0.1:9"  # the discard port: nothing listens there
    result = subprocess.run([sys.executable, "-m", "minigan", "train", "--data", "mnist", "--iterations", "1",
                             "--out", "x"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), MINIGAN_DATA=str(tmp_path / "cache"),
                                     MINIGAN_DATA_MIRROR=env_mirror))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not download")


def test_a_text_file_given_as_a_model_says_so(tmp_path):
    (tmp_path / "notes.npz").write_text("not a model\n")
    for command in (("sample", "--checkpoint", "notes.npz", "--out", "s.png"),
                    ("detect", "predict", "--model", "notes.npz", str(tmp_path))):
        result = minigan(*command, cwd=tmp_path)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "is a text file" in result.stderr and "pickle" not in result.stderr


# ---------------------------------------------------------------- small things
def test_info_reports_the_speed_over_every_session(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"loss": "bce"}))
    # two sessions: 100 iterations in 10 s, then a resumed one of 50 in 25 s -> 150 / 35 s
    seconds = [0.1 * (i + 1) for i in range(100)] + [0.5 * (i + 1) for i in range(50)]
    rows = ["iteration,d_loss,g_loss,d_real,d_fake,seconds"]
    rows += [f"{i + 1},0.5,0.7,0.6,0.4,{s}" for i, s in enumerate(seconds)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    out = ok(minigan("info", run, cwd=tmp_path)).stdout
    assert f"{150 / 35:.1f} it/s over 2 sessions" in out


@pytest.mark.slow
def test_resuming_a_finished_run_reports_nothing_to_do(small_run, tmp_path):
    import shutil

    shutil.copytree(small_run, tmp_path / "run")
    result = ok(minigan("train", "--resume", "--out", "run", "--no-progress", cwd=tmp_path))
    assert "nothing to do" in result.stdout and "it/s" not in result.stdout


def test_the_package_lists_only_its_own_names():
    names = dir(mg)
    assert not {"Any", "annotations", "importlib"} & set(names)
    assert {"GAN", "Sequential", "load_gan", "gradcheck", "benford", "__version__"} <= set(names)


def test_testing_without_hypothesis_says_what_to_install():
    code = "import sys; sys.modules['hypothesis'] = None\ntry:\n import minigan.testing\nexcept ImportError as e:\n print(e)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert 'pip install "minigan[test]"' in result.stdout


@pytest.mark.slow
def test_evaluate_warns_about_a_run_that_did_not_learn_digits(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "noise.npy", rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    ok(minigan("train", "--data", "noise.npy", "--iterations", 1, "--batch-size", 8, "--out", "run", *SMALL,
               cwd=tmp_path))
    result = ok(minigan("evaluate", "--checkpoint", "run", "--n", 50, cwd=tmp_path))
    assert "warning: this run was trained on" in result.stderr and "noise.npy" in result.stderr
