"""Sample grids, loss plots, metrics CSV and the progress GIF."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from minigan import plots

pytestmark = pytest.mark.gan


def test_grid_shape_layout_and_separator():
    images = np.zeros((5, 4, 6), dtype=np.uint8)
    for index in range(5):
        images[index] = 10 * (index + 1)
    grid = plots.image_grid(images, ncols=3, padding=2, pad_value=200)
    # 2 rows x 3 columns of 4x6 tiles with 2-px separators around and between.
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2)
    assert grid.dtype == np.uint8
    # Tile (row 1, col 1) is image 4; the last cell of row 1 is empty (separator colour).
    assert (grid[8:12, 10:16] == 50).all()
    assert (grid[8:12, 18:24] == 200).all()
    assert (grid[:2, :] == 200).all() and (grid[:, :2] == 200).all()


def test_grid_default_columns_and_float_mapping():
    images = np.linspace(-1.0, 1.0, 9 * 2 * 2).reshape(9, 2, 2)
    grid = plots.image_grid(images, padding=0)
    assert grid.shape == (3 * 2, 3 * 2)
    assert grid[0, 0] == 0 and grid[-1, -1] == 255


def test_grid_rgb():
    images = np.zeros((4, 3, 3, 3), dtype=np.uint8)
    grid = plots.image_grid(images, ncols=4, padding=1)
    assert grid.shape == (1 * 4 + 1, 4 * 4 + 1, 3)


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((4, 784)), ValueError),
        (np.zeros((0, 28, 28)), ValueError),
        (np.zeros((2, 28, 28), dtype=np.int64), TypeError),
        (np.full((2, 3, 3), np.nan), ValueError),
        ([[0.0]], TypeError),
    ],
)
def test_grid_rejects_bad_input(bad, error):
    with pytest.raises(error, match="images"):
        plots.image_grid(bad)


def test_save_sample_grid_writes_readable_png(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(16, 28, 28))
    path = plots.save_sample_grid(images, tmp_path / "sub" / "grid.png", scale=3)
    grid = plots.image_grid(images)
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == (grid.shape[1] * 3, grid.shape[0] * 3)
        pixels = np.asarray(picture)
    # Nearest-neighbour upscaling: every 3x3 block repeats one grid pixel exactly.
    assert np.array_equal(pixels[::3, ::3], grid)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["grid.png"]  # no temp file left


def test_plot_losses_writes_png(tmp_path):
    n = 300
    rng = np.random.default_rng(1)
    metrics = {
        "iteration": np.arange(1, n + 1, dtype=float),
        "d_loss": rng.normal(0.6, 0.1, n),
        "g_loss": rng.normal(1.0, 0.2, n),
        "d_real": rng.uniform(0.5, 0.9, n),
        "d_fake": rng.uniform(0.1, 0.5, n),
        "time": np.linspace(0, 10, n),
    }
    path = plots.plot_losses(metrics, tmp_path / "losses.png", title="test run")
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size[0] > 300 and picture.size[1] > 300


def test_plot_losses_rejects_missing_or_ragged_columns(tmp_path):
    good = {name: np.zeros(5) for name in plots.REQUIRED_METRIC_COLUMNS}
    with pytest.raises(ValueError, match="g_loss"):
        plots.plot_losses({k: v for k, v in good.items() if k != "g_loss"}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="equal lengths"):
        plots.plot_losses({**good, "d_fake": np.zeros(4)}, tmp_path / "x.png")
    with pytest.raises(TypeError, match="dict"):
        plots.plot_losses([1, 2, 3], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_moving_average_matches_definition_and_skips_nan():
    values = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 6.0])
    smoothed = plots.moving_average(values, 3)
    expected = [1.0, 1.5, 2.0, 2.5, 4.0, 5.5]
    assert np.allclose(smoothed, expected)


def test_metrics_csv_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    metrics = {
        "iteration": np.arange(0, 1000, 50, dtype=float),
        "d_loss": rng.normal(size=20),
        "g_loss": rng.normal(size=20) * 1e-9,
        "classifier_fid": np.where(np.arange(20) % 5 == 0, rng.uniform(1, 100, 20), np.nan),
    }
    path = plots.write_metrics_csv(metrics, tmp_path / "metrics.csv")
    back = plots.read_metrics_csv(path)
    assert list(back) == list(metrics)
    for name in metrics:
        assert back[name].dtype == np.float64
        assert np.array_equal(back[name], metrics[name], equal_nan=True)


def test_read_metrics_csv_accepts_hand_written_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("iteration,d_loss,g_loss\n1,0.5,2\n2, 0.25 ,1e-3\n\n")
    back = plots.read_metrics_csv(path)
    assert np.array_equal(back["iteration"], [1.0, 2.0])
    assert np.allclose(back["g_loss"], [2.0, 1e-3])


@pytest.mark.parametrize(
    "text, match",
    [("", "no header"), ("a,b\n1,2,3\n", "line 2"), ("a,b\n1,x\n", "non-numeric"), ("a,a\n1,2\n", "duplicate")],
)
def test_read_metrics_csv_rejects_bad_files(tmp_path, text, match):
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        plots.read_metrics_csv(path)


def test_read_metrics_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics"):
        plots.read_metrics_csv(tmp_path / "nope.csv")


def test_progress_gif_frame_count(tmp_path):
    frames = [np.full((10, 12), level, dtype=np.uint8) for level in (0, 80, 160, 240)]
    path = plots.save_progress_gif(frames, tmp_path / "progress.gif", duration_ms=100, scale=2)
    with Image.open(path) as picture:
        assert picture.format == "GIF"
        assert picture.n_frames == 4
        assert picture.size == (24, 20)
        levels = []
        for index in range(picture.n_frames):
            picture.seek(index)
            levels.append(int(np.asarray(picture.convert("L"))[0, 0]))
    assert levels == [0, 80, 160, 240]


def test_progress_gif_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plots.save_progress_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="one shape"):
        plots.save_progress_gif([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(TypeError, match="uint8"):
        plots.save_progress_gif([np.zeros((4, 4))], tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()


def test_progress_gif_from_run_folder(tmp_path):
    rng = np.random.default_rng(3)
    # Written out of order and with a stray file, to check sorting by iteration and filtering.
    for iteration in (1000, 500, 10000, 1500):
        plots.save_sample_grid(rng.uniform(-1, 1, (4, 28, 28)), tmp_path / "samples" / f"iter_{iteration:06d}.png")
    (tmp_path / "samples" / "notes.txt").write_text("not a grid")
    ordered = plots.sample_grid_paths(tmp_path)
    assert [p.name for p in ordered] == [
        "iter_000500.png",
        "iter_001000.png",
        "iter_001500.png",
        "iter_010000.png",
    ]
    path = plots.save_progress_gif_from_run(tmp_path)
    assert path == tmp_path / "progress.gif"
    with Image.open(path) as picture:
        assert picture.n_frames == 4
    subset = plots.save_progress_gif_from_run(tmp_path, tmp_path / "short.gif", max_frames=2)
    with Image.open(subset) as picture:
        assert picture.n_frames == 2


def test_progress_gif_from_empty_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="sample grids"):
        plots.save_progress_gif_from_run(tmp_path)
