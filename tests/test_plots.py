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


def _metrics(n, seed=1, scores=(0.5, 0.9)):
    rng = np.random.default_rng(seed)
    return {
        "iteration": np.arange(1, n + 1, dtype=float),
        "d_loss": rng.normal(0.6, 0.1, n),
        "g_loss": rng.normal(1.0, 0.2, n),
        "d_real": rng.uniform(*scores, n),
        "d_fake": rng.uniform(scores[0] - 0.4, scores[0], n),
        "seconds": np.linspace(0, 10, n),
    }


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_the_loss_plot_draws_the_logged_numbers(tmp_path):
    metrics = _metrics(300)
    figure = plots.loss_figure(metrics, smoothing=7)
    loss_axes, score_axes = figure.axes
    for ax, name, label in ((loss_axes, "d_loss", "discriminator"), (loss_axes, "g_loss", "generator"),
                            (score_axes, "d_real", "on real images"), (score_axes, "d_fake", "on fakes")):
        line = _line(ax, label)
        np.testing.assert_array_equal(line.get_xdata(), metrics["iteration"])
        np.testing.assert_allclose(line.get_ydata(), plots.moving_average(metrics[name], 7))
        raw = [l for l in ax.get_lines() if l.get_label().startswith("_") and l.get_alpha() == 0.25]
        assert any(np.array_equal(l.get_ydata(), metrics[name]) for l in raw), name
    assert score_axes.get_ylim() == (-0.02, 1.02) and score_axes.get_ylabel() == "mean D probability"
    path = plots.plot_losses(metrics, tmp_path / "losses.png", smoothing=7)
    with Image.open(path) as picture:  # the file is this figure, rendered
        assert picture.format == "PNG" and picture.size == (800, 600)


def test_raw_scores_get_an_axis_that_fits_them():
    metrics = _metrics(200, scores=(-6.0, 3.0))  # a Wasserstein critic's scores
    figure = plots.loss_figure(metrics, score_kind="score")
    low, high = figure.axes[1].get_ylim()
    assert low <= metrics["d_fake"].min() and high >= metrics["d_real"].max()
    assert figure.axes[1].get_ylabel() == "mean D score"
    with pytest.raises(ValueError, match="score_kind"):
        plots.loss_figure(metrics, score_kind="logit")


def test_extra_terms_and_the_fid_get_panels_of_their_own():
    metrics = _metrics(120)
    metrics["grad_norm"] = np.where(np.arange(120) % 4 == 0, np.linspace(1, 2, 120), np.nan)  # logged every 4th
    metrics["classifier_fid"] = np.where(np.arange(1, 121) % 40 == 0, [30.0] * 120, np.nan)
    metrics["classifier_fid"][79] = 12.5
    figure = plots.loss_figure(metrics)
    assert len(figure.axes) == 4
    term_line = _line(figure.axes[2], "grad_norm")
    np.testing.assert_array_equal(term_line.get_xdata(), metrics["iteration"][::4])
    fid_line = _line(figure.axes[3], "classifier FID")
    np.testing.assert_array_equal(fid_line.get_xdata(), [40.0, 80.0, 120.0])
    np.testing.assert_array_equal(fid_line.get_ydata(), [30.0, 12.5, 30.0])
    assert len(plots.loss_figure(_metrics(120)).axes) == 2  # neither: two panels


def test_long_runs_are_drawn_as_bands_of_their_buckets():
    n = 5 * plots.MAX_POINTS
    metrics = _metrics(n)
    figure = plots.loss_figure(metrics, smoothing=10)
    line = _line(figure.axes[0], "discriminator")
    assert line.get_xdata().size == plots.MAX_POINTS
    np.testing.assert_array_equal(line.get_xdata(), metrics["iteration"][4::5])
    np.testing.assert_allclose(line.get_ydata(), plots.moving_average(metrics["d_loss"], 10)[4::5])
    band = figure.axes[0].collections[0].get_paths()[0].vertices
    buckets = metrics["d_loss"].reshape(-1, 5)
    assert np.isclose(band[:, 1].max(), buckets.max()) and np.isclose(band[:, 1].min(), buckets.min())


def test_sample_grids_can_carry_a_caption(tmp_path):
    images = np.random.default_rng(3).uniform(-1, 1, (4, 8, 8))
    plain = plots.upscale(plots.image_grid(images), 2)
    path = plots.save_sample_grid(images, tmp_path / "g.png", scale=2, label="iteration 500")
    with Image.open(path) as picture:
        pixels = np.asarray(picture)
    band, grid = pixels[:plots.CAPTION_HEIGHT], pixels[plots.CAPTION_HEIGHT:]
    assert np.array_equal(grid, plain)
    assert (band == 255).mean() > 0.5 and (band < 128).any()  # white, with dark text in it
    other = np.asarray(plots.add_caption(plain, "7"))[:plots.CAPTION_HEIGHT]
    assert not np.array_equal(other, band)  # the text is drawn, not a fixed stripe


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


# ---------------------------------------------------------------- grids with one block of rows per class
def test_class_rows_start_a_row_at_each_class_and_wrap_long_runs():
    images = np.arange(1, 21, dtype=np.uint8)[:, None, None] * np.ones((1, 3, 3), dtype=np.uint8)
    labels = np.array([3] * 10 + [8] * 2 + [3] * 8)
    cells, columns, row_classes = plots.class_rows(images, labels, max_columns=4)
    assert columns == 4
    assert row_classes.tolist() == [3, 3, 3, 8, 3, 3]
    cell_values = cells[:, 0, 0].tolist()  # 128 marks a blank cell (the separator grey)
    assert cell_values == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 128, 128, 11, 12, 128, 128,
                           13, 14, 15, 16, 17, 18, 19, 20]
    # by default as wide as the longest run up to max(8, sqrt(n)): 64 of one class make 8 x 8
    cells, columns, row_classes = plots.class_rows(np.zeros((64, 2, 2)), np.full(64, 7))
    assert cells.shape == (64, 2, 2) and columns == 8 and row_classes.tolist() == [7] * 8
    with pytest.raises(ValueError, match="labels must be one integer per image"):
        plots.class_rows(images, labels[:-1])


def _band_of_row(picture, grid_width, top, height):
    return picture[top:top + height, :picture.shape[1] - grid_width]


def test_every_row_of_a_class_grid_carries_its_own_class_name():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (11, 5, 5))
    labels = np.array([0, 0, 0, 2, 2, 1, 1, 1, 1, 1, 0])
    names = ["zero", "two-ish", "one"]  # names of differing widths, not in label order
    cells, columns, row_classes = plots.class_rows(images, labels, max_columns=3)
    row_names = [names[k] for k in row_classes]
    assert row_names == ["zero", "one", "two-ish", "two-ish", "zero"]
    picture = plots.grid_picture(cells, columns, scale=2, padding=1, row_labels=row_names)
    grid = plots.upscale(plots.image_grid(cells, columns, padding=1), 2)
    assert np.array_equal(picture[:, -grid.shape[1]:], grid)
    for r, name in enumerate(row_names):
        top, height = 2 * (1 + r * 6), 2 * 5
        band = _band_of_row(picture, grid.shape[1], top, height)
        alone = plots.add_row_labels(np.zeros((height, 1), np.uint8), [name], [(0, height)])[:, :-1]
        assert alone.min() < 255  # the name was drawn
        assert np.array_equal(band[:, band.shape[1] - alone.shape[1]:], alone), f"row {r} is not labelled {name!r}"
        assert (band[:, :band.shape[1] - alone.shape[1]] == 255).all()
    with pytest.raises(ValueError, match="row_labels must name every row of the grid: 5 rows"):
        plots.grid_picture(cells, columns, row_labels=row_names[:4])


def test_a_saved_class_grid_is_the_picture(tmp_path):
    images = np.random.default_rng(1).uniform(-1, 1, (6, 4, 4))
    cells, columns, row_classes = plots.class_rows(images, np.array([5, 5, 5, 5, 9, 9]))
    path = plots.save_sample_grid(cells, tmp_path / "g.png", ncols=columns, label="iteration 3",
                                  row_labels=[str(k) for k in row_classes])
    with Image.open(path) as saved:
        assert np.array_equal(np.asarray(saved), plots.grid_picture(
            cells, columns, label="iteration 3", row_labels=["5", "9"]))
