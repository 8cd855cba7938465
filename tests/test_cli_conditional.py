"""``minigan train --conditional`` and the commands on a conditional run, in subprocesses:
a folder of class sub-folders, class names in info and sample --label, evaluate's label
accuracy, resume, and the clear refusals."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from minigan import datasets
from test_cli import fails, minigan, ok

pytestmark = [pytest.mark.cli, pytest.mark.gan]

TINY = ("--architecture", "mlp", "--g-hidden", "16", "--d-hidden", "16", "--latent-dim", "8", "--no-progress")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A labelled folder: three classes of 8x8 pictures (a filled square, a cross, a ring)."""
    root = tmp_path_factory.mktemp("shapes")
    yy, xx = np.mgrid[0:8, 0:8]
    pictures = {"square": (abs(yy - 3.5) < 3) & (abs(xx - 3.5) < 3), "cross": (yy == xx) | (yy == 7 - xx),
                "ring": abs(np.hypot(yy - 3.5, xx - 3.5) - 2.5) < 0.8}
    rng = np.random.default_rng(0)
    for name, mask in pictures.items():
        for i in range(8):
            noisy = np.clip(mask * 230 + rng.normal(0, 10, (8, 8)), 0, 255).astype(np.uint8)
            datasets.save_png(root / "data" / name / f"{i}.png", noisy)
    return root


@pytest.mark.slow
def test_a_conditional_run_on_a_class_folder(shapes):
    train = ok(minigan("train", "--conditional", "--data", "data", "--iterations", 4, "--batch-size", 6, "--out",
                       "run", "--sample-every", 2, *TINY, cwd=shapes))
    assert "24 images of (8, 8) in 3 classes (0 'cross', 1 'ring', 2 'square'), conditional" in train.stdout
    record = json.loads((shapes / "run" / "config.json").read_text())
    assert record["class_names"] == ["cross", "ring", "square"] and record["settings"]["conditional"] is True
    from PIL import Image

    with Image.open(shapes / "run" / "samples" / "iter_000004.png") as grid:  # 8 per row, one row per class
        width, height = grid.size
    assert width > 3 * (8 * 10 + 2) and height == 3 * (3 * 10 + 2) + 18  # the class names left of the rows
    one = ok(minigan("sample", "--checkpoint", "run", "--label", "ring", "--n", 5, "--seed", 0, "--out", "ring.npy",
                     cwd=shapes))
    assert "wrote 5 samples of class ring to ring.npy" in one.stdout
    assert np.load(shapes / "ring.npy").shape == (5, 8, 8)


@pytest.mark.slow
def test_info_sample_labels_refusals_and_folders(shapes):
    if not (shapes / "run").exists():
        test_a_conditional_run_on_a_class_folder(shapes)
    info = ok(minigan("info", "run", cwd=shapes))
    assert "conditional      yes, 3 classes: 0 'cross', 1 'ring', 2 'square' (G: one-hot, D: projection)" in info.stdout
    every = ok(minigan("sample", "--checkpoint", "run", "--seed", 0, "--out", "every.npy", cwd=shapes))
    assert "no --label was given: sampling every class evenly, 8 images each" in every.stdout
    all_classes = np.load(shapes / "every.npy")
    assert all_classes.shape == (24, 8, 8)
    assert not np.array_equal(all_classes[:8], all_classes[8:16])  # the label changes the images
    by_number = ok(minigan("sample", "--checkpoint", "run", "--label", "1", "--n", 5, "--seed", 0, "--out",
                           "one.npy", cwd=shapes))
    assert "class ring" in by_number.stdout  # names are not numbers here: 1 is the class number
    fails(minigan("sample", "--checkpoint", "run", "--label", "bird", "--out", "x.png", cwd=shapes),
          "'bird' is not a class of this run; its classes are 0 'cross', 1 'ring', 2 'square'")
    fails(minigan("sample", "--checkpoint", "run", "--label", "5", "--out", "x.png", cwd=shapes), "is not a class")
    two = ok(minigan("sample", "--checkpoint", "run", "--label", "cross", "2", "--n", 6, "--out", "two", cwd=shapes))
    assert "classes cross, square (3 each, in that order)" in two.stdout
    assert sorted(p.name for p in (shapes / "two").iterdir()) == [
        "sample_0_label0.png", "sample_1_label0.png", "sample_2_label0.png", "sample_3_label2.png",
        "sample_4_label2.png", "sample_5_label2.png"]
    walk = ok(minigan("sample", "--checkpoint", "run", "--walk", "--steps", 3, "--seed", 4, "--out", "walk.png",
                      cwd=shapes))
    assert "3 paths (classes cross, ring, square (1 each" in walk.stdout
    _check_class_grids(shapes)
    fails(minigan("train", "--conditional", "--data", "data/ring", "--iterations", 2, "--out", "bad", *TINY,
                  cwd=shapes), "has no labels, which a conditional GAN needs")
    fails(minigan("train", "--d-conditioning", "concat", "--data", "data", "--iterations", 2, "--out", "bad2",
                  *TINY, cwd=shapes), "applies to a conditional GAN")
    plain = ok(minigan("train", "--data", "data", "--iterations", 2, "--batch-size", 6, "--out", "plain", *TINY,
                       cwd=shapes))
    assert "conditional" not in plain.stdout
    fails(minigan("sample", "--checkpoint", "plain", "--label", "3", "--out", "x.png", cwd=shapes),
          "this run is not conditional")


def _check_class_grids(shapes):
    """sample --label grids and latent walks (grid and GIF frames) name the class of each row."""
    from PIL import Image

    from minigan import plots
    from minigan.models import load_gan

    names = ["cross", "ring", "square"]
    ok(minigan("sample", "--checkpoint", "run", "--label", "square", "cross", "--n", 5, "--seed", 3, "--out",
               "rows.npy", cwd=shapes))
    ok(minigan("sample", "--checkpoint", "run", "--label", "square", "cross", "--n", 5, "--seed", 3, "--out",
               "rows.png", cwd=shapes))
    cells, columns, row_classes = plots.class_rows(np.load(shapes / "rows.npy"), np.array([2, 2, 2, 0, 0]))
    with Image.open(shapes / "rows.png") as grid:
        assert np.array_equal(np.asarray(grid), plots.grid_picture(cells, columns, row_labels=["square", "cross"]))
    again = ok(minigan("sample", "--checkpoint", "run", "--label", "cross", "square", "cross", "--n", 6, "--seed", 3,
                       "--out", "again.png", cwd=shapes))
    assert "6 samples of classes cross (x2), square (x2), cross (x2), in that order" in again.stdout
    gan = load_gan(shapes / "run", models_only=True)
    walk = gan.latent_walk(3, 3, seed=4, labels=[0, 1, 2]).astype(np.float32)
    with Image.open(shapes / "walk.png") as grid:  # one path per row, named by its class
        assert np.array_equal(np.asarray(grid), plots.grid_picture(walk.reshape(9, 8, 8), 3, row_labels=names))
    with Image.open(shapes / "walk.gif") as gif:
        for step in range(3):
            gif.seek(step)
            cells, columns, row_classes = plots.class_rows(walk[:, step], np.arange(3))
            expected = plots.grid_picture(cells, columns, label=f"step {step + 1} of 3", row_labels=names)
            assert np.array_equal(np.asarray(gif.convert("L")), expected), f"GIF frame {step}"


def _g_digest(run):
    with np.load(run / "checkpoint.npz") as arrays:
        digest = hashlib.sha256()
        for key in sorted(k for k in arrays.files if k.startswith("G/")):
            digest.update(key.encode() + arrays[key].tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_conditional_digits_evaluate_and_resume_bit_identically(tmp_path):
    common = ("--conditional", "--batch-size", 16, "--no-progress", "--sample-every", 0)
    ok(minigan("train", *common, "--iterations", 6, "--out", "straight", cwd=tmp_path))
    ok(minigan("train", *common, "--iterations", 3, "--out", "resumed", cwd=tmp_path))
    ok(minigan("train", "--resume", "--iterations", 6, "--out", "resumed", "--no-progress", cwd=tmp_path))
    assert _g_digest(tmp_path / "straight") == _g_digest(tmp_path / "resumed")
    result = ok(minigan("evaluate", "--checkpoint", "straight", "--n", 200, "--json", "e.json", cwd=tmp_path))
    assert "200 samples spread evenly over the 10 classes" in result.stdout
    assert "label accuracy" in result.stdout and "per class" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]) == 10
    found = json.loads((tmp_path / "e.json").read_text())["conditional"]
    assert len(found["per_class_fid"]) == 10 and 0.0 <= found["label_accuracy"]["mean"] <= 1.0
    info = ok(minigan("info", "straight", cwd=tmp_path))
    assert "yes, 10 classes: 0 .. 9" in info.stdout
