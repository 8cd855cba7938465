"""Pictures of a training run: sample grids, loss curves and a progress GIF.

Everything here writes its file atomically (a temporary file in the same folder,
then ``os.replace``), so an interrupted run never leaves a half-written picture.
Matplotlib and Pillow are imported inside the functions that need them, which
keeps ``import minigan`` cheap; matplotlib is driven through its object API with
the Agg canvas, so no global pyplot state or display is involved.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from minigan._validation import check_int, describe
from minigan.serialization import atomic_write_bytes, atomic_write_text

REQUIRED_METRIC_COLUMNS = ("iteration", "d_loss", "g_loss", "d_real", "d_fake")
SAMPLE_NAME = re.compile(r"^iter_(\d+)\.png$")


def to_uint8(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Map images in ``[-1, 1]`` (float) to ``0..255`` (uint8); uint8 passes through.

    Parameters
    ----------
    images : ndarray, any shape
        Float images in ``[-1, 1]`` (values outside are clipped, since a
        generator's tanh output can overshoot by rounding) or uint8 images.
    name : str
        Argument name for error messages.

    Returns
    -------
    ndarray of uint8, same shape as ``images``
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {describe(images)}")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise TypeError(f"{name} must be float images in [-1, 1] or uint8 images, got dtype {images.dtype}")
    if images.size and not np.isfinite(images).all():
        raise ValueError(f"{name} must be finite, got NaN or inf pixel values")
    scaled = np.rint((images.astype(np.float64) + 1.0) * 127.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def image_grid(
    images: np.ndarray, ncols: int | None = None, *, padding: int = 2, pad_value: int = 128
) -> np.ndarray:
    """Tile a batch of images into one picture.

    Parameters
    ----------
    images : ndarray of shape (n, h, w) or (n, h, w, 3)
        Grey or RGB images, float in ``[-1, 1]`` or uint8. Flat generator output
        of shape (n, h*w) must be reshaped first, e.g. ``x.reshape(-1, 28, 28)``.
    ncols : int, optional
        Images per row; default ``ceil(sqrt(n))`` (a square-ish grid).
    padding : int
        Width in pixels of the separator between and around the tiles.
    pad_value : int
        Grey level (0..255) of the separator; mid-grey shows against both the
        black background and the white strokes of digits.

    Returns
    -------
    ndarray of uint8, shape (rows*(h+padding)+padding, ncols*(w+padding)+padding[, 3])
        Unused cells of the last row are filled with ``pad_value``.
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a NumPy array, got {describe(images)}")
    is_rgb = images.ndim == 4 and images.shape[-1] == 3
    if images.ndim != 3 and not is_rgb:
        raise ValueError(
            f"images must have shape (n, h, w) or (n, h, w, 3), got {images.shape}; "
            "reshape flat images first, e.g. images.reshape(-1, 28, 28)"
        )
    n, h, w = images.shape[:3]
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"images must hold at least one non-empty image, got shape {images.shape}")
    pixels = to_uint8(images)
    padding = check_int(padding, "padding", minimum=0)
    pad_value = check_int(pad_value, "pad_value", minimum=0, maximum=255)
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    ncols = min(check_int(ncols, "ncols", minimum=1), n)
    nrows = math.ceil(n / ncols)
    channels = (3,) if is_rgb else ()
    height = nrows * (h + padding) + padding
    width = ncols * (w + padding) + padding
    grid = np.full((height, width, *channels), pad_value, dtype=np.uint8)
    for index in range(n):
        row, col = divmod(index, ncols)
        top = padding + row * (h + padding)
        left = padding + col * (w + padding)
        grid[top : top + h, left : left + w] = pixels[index]
    return grid


def upscale(picture: np.ndarray, scale: int) -> np.ndarray:
    """Enlarge ``picture`` (h, w[, 3]) by an integer factor with nearest-neighbour sampling."""
    scale = check_int(scale, "scale", minimum=1)
    if scale == 1:
        return picture
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def encode_png(picture: np.ndarray) -> bytes:
    """PNG bytes of a uint8 picture of shape (h, w) (grey) or (h, w, 3) (RGB)."""
    from PIL import Image

    buffer = io.BytesIO()
    # zlib's default level, without Pillow's ``optimize`` search: a 906 x 906 sample grid
    # takes 24 ms instead of 77 ms for a file 0.5% larger (the training loop writes one
    # every ``sample_every`` iterations).
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG")
    return buffer.getvalue()


def class_rows(
    images: np.ndarray, labels: np.ndarray, *, max_columns: int | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """Lay images out in grid rows by class: each run of equal consecutive labels starts a
    new row and fills as many rows as it needs, short rows padded with blank cells.

    Parameters
    ----------
    images : ndarray of shape (n, h, w) or (n, h, w, 3)
        Float in ``[-1, 1]`` or uint8.
    labels : ndarray of int, shape (n,)
        The class of each image; images of one class should be consecutive (each run of
        equal labels is one block of rows).
    max_columns : int, optional
        Longest row; a longer run wraps onto further rows of its class. Default:
        ``max(8, ceil(sqrt(n)))``, so that 64 images of one class make an 8 x 8 grid.

    Returns
    -------
    cells : ndarray of uint8, shape (rows * columns, h, w[, 3])
        The images in row order, blank cells (the separator grey) at the end of short rows.
    columns : int
        Images per row (``ncols`` of :func:`image_grid`).
    row_classes : ndarray of int64, shape (rows,)
        The label of each row (the ``row_labels`` of :func:`save_sample_grid`, once named).
    """
    labels = np.asarray(labels)
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"images must be a non-empty array of shape (n, h, w) or (n, h, w, 3), got {describe(images)}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be one integer per image, shape ({len(images)},), got {describe(labels)}")
    pixels = to_uint8(images)
    if max_columns is None:
        max_columns = max(8, math.ceil(math.sqrt(len(pixels))))
    max_columns = check_int(max_columns, "max_columns", minimum=1)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    columns = min(max_columns, int((ends - starts).max()))
    blank = np.full((1, *pixels.shape[1:]), 128, dtype=np.uint8)  # the grid's separator grey
    cells, row_classes = [], []
    for start, end in zip(starts, ends):
        for row_start in range(start, end, columns):
            row = pixels[row_start:min(row_start + columns, end)]
            cells.append(np.concatenate([row, np.repeat(blank, columns - len(row), axis=0)]))
            row_classes.append(int(labels[start]))
    return np.concatenate(cells), columns, np.asarray(row_classes, dtype=np.int64)


def grid_picture(
    images: np.ndarray,
    ncols: int | None = None,
    *,
    scale: int = 3,
    padding: int = 2,
    label: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> np.ndarray:
    """The picture :func:`save_sample_grid` writes, as a uint8 array (h, w[, 3]): the
    grid of :func:`image_grid` enlarged by ``scale``, the names of its rows on the left
    (:func:`add_row_labels`) and a caption on top (:func:`add_caption`). See
    :func:`save_sample_grid` for the parameters."""
    picture = upscale(image_grid(images, ncols, padding=padding), scale)
    if row_labels is not None:
        row_labels = [str(t) for t in row_labels]
        n, height = images.shape[:2]
        grid_rows = math.ceil(n / min(ncols or math.ceil(math.sqrt(n)), n))
        if len(row_labels) != grid_rows:
            raise ValueError(f"row_labels must name every row of the grid: {grid_rows} rows of "
                             f"{min(ncols or math.ceil(math.sqrt(n)), n)} images, got {len(row_labels)} labels")
        rows = [(scale * (padding + r * (height + padding)), scale * height) for r in range(grid_rows)]
        picture = add_row_labels(picture, row_labels, rows)
    if label is not None:
        picture = add_caption(picture, str(label))
    return picture


def save_sample_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    ncols: int | None = None,
    scale: int = 3,
    padding: int = 2,
    label: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Write a grid of samples as a PNG file, atomically.

    Parameters
    ----------
    images : ndarray of shape (n, h, w) or (n, h, w, 3)
        Float in ``[-1, 1]`` or uint8 (see :func:`image_grid`).
    path : path-like
        Destination ``.png``; its folder is created if needed.
    ncols : int, optional
        Images per row (default: square-ish).
    scale : int
        Integer nearest-neighbour enlargement, so that 28x28 digits stay sharp
        and readable in a browser or README (3 makes 64 digits about 700 px wide).
    padding : int
        Separator width in pixels before scaling.
    label : str, optional
        A caption (e.g. ``"iteration 500"``) written in a white band above the grid.
    row_labels : sequence of str, optional
        One name per row of the grid (a conditional GAN's classes, see :func:`class_rows`),
        written in a white band left of the grid (:func:`add_row_labels`).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    picture = grid_picture(images, ncols, scale=scale, padding=padding, label=label, row_labels=row_labels)
    path = Path(path)
    atomic_write_bytes(path, encode_png(picture))
    return path


#: Height in pixels of the caption band of :func:`add_caption`.
CAPTION_HEIGHT = 18


def add_caption(picture: np.ndarray, text: str) -> np.ndarray:
    """``picture`` (h, w[, 3]) uint8 with a white band of :data:`CAPTION_HEIGHT` rows on
    top holding ``text`` in black (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    band = Image.new("L", (picture.shape[1], CAPTION_HEIGHT), 255)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    ImageDraw.Draw(band).text((4, 2), text, fill=0, font=font)
    caption = np.asarray(band)
    if picture.ndim == 3:
        caption = np.repeat(caption[:, :, None], picture.shape[2], axis=2)
    return np.concatenate([caption, picture], axis=0)


#: Longest row label :func:`add_row_labels` writes (longer names are cut, with an ellipsis).
ROW_LABEL_CHARACTERS = 16


def add_row_labels(picture: np.ndarray, texts: Sequence[str], rows: Sequence[tuple[int, int]]) -> np.ndarray:
    """``picture`` (h, w[, 3]) uint8 with a white band on its left holding ``texts[r]`` in
    black, centred on the rows ``rows[r] = (top, height)`` (pixels); the band is as wide
    as the longest text (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    if len(texts) != len(rows):
        raise ValueError(f"give one row label per row: {len(texts)} labels for {len(rows)} rows")
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    shown = [t if len(t) <= ROW_LABEL_CHARACTERS else t[:ROW_LABEL_CHARACTERS - 1] + "\u2026" for t in texts]
    width = int(max(font.getlength(t) for t in shown)) + 8 if shown else 0
    band = Image.new("L", (width, picture.shape[0]), 255)
    draw = ImageDraw.Draw(band)
    for text, (top, height) in zip(shown, rows):
        draw.text((width - 4, top + height // 2), text, fill=0, font=font, anchor="rm")
    labels = np.asarray(band)
    if picture.ndim == 3:
        labels = np.repeat(labels[:, :, None], picture.shape[2], axis=2)
    return np.concatenate([labels, picture], axis=1)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average of a 1-D series, same length (the start averages fewer points).

    NaN entries (e.g. a metric logged only every N iterations) are ignored.
    """
    values = np.asarray(values, dtype=np.float64)
    window = check_int(window, "window", minimum=1)
    valid = np.isfinite(values)
    sums = np.cumsum(np.where(valid, values, 0.0))
    counts = np.cumsum(valid.astype(np.float64))
    sums[window:] = sums[window:] - sums[:-window].copy()
    counts[window:] = counts[window:] - counts[:-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)


def _check_metrics(metrics: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of column name -> 1-D array, got {describe(metrics)}")
    missing = [name for name in REQUIRED_METRIC_COLUMNS if name not in metrics]
    if missing:
        raise ValueError(f"metrics is missing column(s) {missing}; it has {sorted(metrics)}")
    columns: dict[str, np.ndarray] = {}
    length = None
    for name in REQUIRED_METRIC_COLUMNS:
        try:
            column = np.asarray(metrics[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"metrics[{name!r}] must be numeric, got {describe(metrics[name])}") from None
        if column.ndim != 1:
            raise ValueError(f"metrics[{name!r}] must be 1-D, got shape {column.shape}")
        if length is not None and column.shape[0] != length:
            raise ValueError(
                f"metrics columns must have equal lengths; 'iteration' has {length}, {name!r} has {column.shape[0]}"
            )
        length = column.shape[0]
        columns[name] = column
    if length == 0:
        raise ValueError("metrics has no rows to plot")
    return columns


#: Columns of metrics.csv that are not curves of their own (or are drawn elsewhere).
_NOT_TERMS = (*REQUIRED_METRIC_COLUMNS, "seconds", "time", "classifier_fid", "classes_covered", "mean_confidence")


def gradient_norm_columns(metrics: Mapping[str, np.ndarray]) -> list[str]:
    """The columns of ``metrics`` that log a mean input-gradient norm (``*_grad_norm``,
    written by the gradient-penalty terms) and hold at least one finite value."""
    found = []
    for name in metrics:
        if str(name).endswith("_grad_norm"):
            values = np.asarray(metrics[name], dtype=np.float64)
            if values.ndim == 1 and np.isfinite(values).any():
                found.append(str(name))
    return found


def loss_figure(
    metrics: Mapping[str, np.ndarray],
    *,
    smoothing: int | None = None,
    title: str | None = None,
    score_kind: str = "probability",
):
    """The figure of :func:`plot_losses`, as a matplotlib ``Figure`` (to inspect or save).

    Panels, top to bottom: ``d_loss`` and ``g_loss`` (thin, faint) with their moving
    averages (solid); D's mean output on real images and on fakes -- mean
    probabilities with the 0.5 line of a confused discriminator for
    ``score_kind="probability"``, mean raw scores on an axis that fits them (and the
    0 line) for ``"score"`` (hinge, Wasserstein); the mean norm of D's input gradient
    when a gradient penalty logged it (:func:`gradient_norm_columns`, each point where
    it was logged, e.g. every K-th D update for a lazy penalty); the other extra loss
    terms a run logs (any other numeric column), if any; the classifier FID at the
    iterations it was measured, if any.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if score_kind not in ("probability", "score"):
        raise ValueError(f"score_kind must be 'probability' or 'score', got {score_kind!r}")
    columns = _check_metrics(metrics)
    steps = columns["iteration"]
    window = max(1, steps.shape[0] // 50) if smoothing is None else check_int(smoothing, "smoothing", minimum=1)
    norms = [name for name in gradient_norm_columns(metrics) if _finite_values(metrics[name], steps.size)]
    terms = [name for name in metrics
             if name not in _NOT_TERMS and name not in norms and _finite_values(metrics[name], steps.size)]
    fid = _finite_values(metrics.get("classifier_fid"), steps.size)
    panels = 2 + bool(norms) + bool(terms) + bool(fid)

    # A fixed layout: matplotlib's constrained layout draws the figure twice, and this plot is
    # redrawn with every sample grid of a run.
    figure = Figure(figsize=(8, 3 * panels), dpi=100)
    FigureCanvasAgg(figure)
    axes = list(np.atleast_1d(figure.subplots(panels, 1, sharex=True)))
    height = 3.0 * panels  # inches
    figure.subplots_adjust(left=0.1, right=0.97, top=1 - (0.45 if title else 0.15) / height, bottom=0.5 / height,
                           hspace=0.08)
    loss_axes, score_axes = axes[0], axes[1]
    for name, label, color in (("d_loss", "discriminator", "tab:blue"), ("g_loss", "generator", "tab:orange")):
        _smoothed_curve(loss_axes, steps, columns[name], window, color, label)
    loss_axes.set_ylabel("loss")
    for name, label, color in (("d_real", "on real images", "tab:green"), ("d_fake", "on fakes", "tab:red")):
        _smoothed_curve(score_axes, steps, columns[name], window, color, label)
    if score_kind == "probability":
        score_axes.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
        score_axes.set_ylim(-0.02, 1.02)
        score_axes.set_ylabel("mean D probability")
    else:
        score_axes.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
        score_axes.set_ylabel("mean D score")
    extra_axes = iter(axes[2:])
    for columns_here, ylabel in ((norms, "mean ||grad_x D||"), (terms, "extra terms")):
        if not columns_here:
            continue
        ax = next(extra_axes)
        for index, name in enumerate(columns_here):
            values = np.asarray(metrics[name], dtype=np.float64)
            kept = np.isfinite(values)
            _smoothed_curve(ax, steps[kept], values[kept], max(1, window * int(kept.sum()) // max(1, steps.size)),
                            f"C{index + 4}", name)
        ax.set_ylabel(ylabel)
    if fid:
        fid_axes = axes[-1]
        values = np.asarray(metrics["classifier_fid"], dtype=np.float64)
        kept = np.isfinite(values)
        fid_axes.plot(steps[kept], values[kept], marker="o", markersize=3, color="tab:purple", label="classifier FID")
        fid_axes.set_ylabel("classifier FID (lower is better)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    axes[-1].set_xlabel("iteration")
    if title:
        figure.suptitle(title)
    return figure


def _finite_values(values, length: int) -> bool:
    """True for a numeric column of the table's length with at least one finite value."""
    if values is None:
        return False
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return values.shape == (length,) and bool(np.isfinite(values).any())


#: Curves longer than this are drawn from this many buckets (the band of each bucket's
#: smallest to largest value, and the moving average at the buckets' ends): a 10,000-row
#: run then plots in a fraction of the time, which matters as the plot is redrawn with
#: every sample grid.
MAX_POINTS = 1000


def _smoothed_curve(ax, steps: np.ndarray, values: np.ndarray, window: int, color: str, label: str) -> None:
    """The raw values, faint (a min-max band when long), and their moving average, solid."""
    average = moving_average(values, window)
    if steps.size <= MAX_POINTS:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, average, color=color, linewidth=1.6, label=label)
        return
    edges = np.linspace(0, steps.size, MAX_POINTS + 1).astype(int)
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduceat(values, edges[:-1])
        high = np.fmax.reduceat(values, edges[:-1])
    ends = edges[1:] - 1
    ax.fill_between(steps[ends], low, high, color=color, alpha=0.2, linewidth=0)
    ax.plot(steps[ends], average[ends], color=color, linewidth=1.6, label=label)


def plot_losses(
    metrics: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    smoothing: int | None = None,
    title: str | None = None,
    score_kind: str = "probability",
) -> Path:
    """Plot loss curves and discriminator outputs of a run into a PNG, atomically.

    See :func:`loss_figure` for the panels.

    Parameters
    ----------
    metrics : dict of str to ndarray of shape (n_rows,)
        At least the columns ``iteration``, ``d_loss``, ``g_loss``, ``d_real`` and
        ``d_fake`` (as :func:`read_metrics_csv` returns them); other numeric
        columns are drawn as extra terms, ``classifier_fid`` as its own panel.
    path : path-like
        Destination ``.png``.
    smoothing : int, optional
        Moving-average window in rows; default ``max(1, n_rows // 50)``, light
        enough to keep the shape of the curves.
    title : str, optional
        Figure title.
    score_kind : {"probability", "score"}
        What ``d_real`` / ``d_fake`` are (the objective's ``score_kind``).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    figure = loss_figure(metrics, smoothing=smoothing, title=title, score_kind=score_kind)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_metrics_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a run's ``metrics.csv`` into float columns (no pandas).

    Parameters
    ----------
    path : path-like
        A CSV file with one header row of column names and numeric rows.
        Empty cells (a metric not logged at that iteration) become NaN.

    Returns
    -------
    dict of str to ndarray of float64, each of shape (n_rows,)
        In the column order of the header.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file has no header, a row of the wrong length, or a non-numeric cell
        (the message gives the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such metrics file: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise ValueError(f"{path} has no header row")
        names = [cell.strip() for cell in header]
        if len(set(names)) != len(names):
            raise ValueError(f"{path} has duplicate column names: {names}")
        rows: list[list[float]] = []
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise ValueError(f"{path} line {line_number} has {len(row)} cells, the header has {len(names)}")
            try:
                rows.append([float(cell) if cell.strip() else math.nan for cell in row])
            except ValueError:
                raise ValueError(f"{path} line {line_number} has a non-numeric cell: {row}") from None
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return {name: table[:, index].copy() for index, name in enumerate(names)}


def write_metrics_csv(metrics: Mapping[str, Sequence[float] | np.ndarray], path: str | os.PathLike) -> Path:
    """Write float columns as a CSV readable by :func:`read_metrics_csv`, atomically.

    Parameters
    ----------
    metrics : dict of str to array of shape (n_rows,)
        Columns of equal length; NaN is written as an empty cell.
    path : path-like
        Destination ``.csv``.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError(f"metrics must be a non-empty dict of column name -> 1-D array, got {describe(metrics)}")
    names = [str(name) for name in metrics]
    columns = [np.asarray(metrics[name], dtype=np.float64) for name in metrics]
    lengths = {column.shape for column in columns}
    if len(lengths) != 1 or columns[0].ndim != 1:
        raise ValueError(f"metrics columns must be 1-D and of equal length, got shapes {sorted(lengths)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*columns):
        # repr round-trips a float exactly; integers read back as e.g. 500.0.
        writer.writerow(["" if math.isnan(value) else repr(float(value)) for value in row])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def save_progress_gif(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    duration_ms: int = 200,
    final_hold_ms: int = 1500,
    scale: int = 1,
    loop: int = 0,
) -> Path:
    """Write an animated GIF of sample grids over training, atomically.

    Parameters
    ----------
    frames : sequence of ndarray, each of shape (h, w) or (h, w, 3)
        Grid pictures (uint8, e.g. from :func:`image_grid`), all the same shape.
    path : path-like
        Destination ``.gif``.
    duration_ms : int
        Display time of each frame in milliseconds.
    final_hold_ms : int
        Display time of the last frame, so the final result stays on screen.
    scale : int
        Nearest-neighbour enlargement of every frame.
    loop : int
        Number of loops; 0 repeats forever.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from PIL import Image

    if isinstance(frames, np.ndarray) or not isinstance(frames, Sequence):
        raise TypeError(f"frames must be a list of uint8 pictures, got {describe(frames)}")
    if len(frames) == 0:
        raise ValueError("frames must hold at least one picture, got an empty list")
    duration_ms = check_int(duration_ms, "duration_ms", minimum=1)
    final_hold_ms = check_int(final_hold_ms, "final_hold_ms", minimum=1)
    loop = check_int(loop, "loop", minimum=0)
    shape = None
    pictures = []
    for index, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            raise TypeError(f"frames[{index}] must be a uint8 array, got {describe(frame)}")
        if frame.ndim != 2 and not (frame.ndim == 3 and frame.shape[-1] == 3):
            raise ValueError(f"frames[{index}] must have shape (h, w) or (h, w, 3), got {frame.shape}")
        if shape is not None and frame.shape != shape:
            raise ValueError(f"all frames must have one shape; frames[0] is {shape}, frames[{index}] is {frame.shape}")
        shape = frame.shape
        pictures.append(Image.fromarray(np.ascontiguousarray(upscale(frame, scale))))
    durations = [duration_ms] * (len(pictures) - 1) + [final_hold_ms]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=durations if len(pictures) > 1 else final_hold_ms,
        loop=loop,
        # Without disposal=1 some viewers blend consecutive grids.
        disposal=1,
        optimize=False,
    )
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def sample_grid_paths(run_dir: str | os.PathLike) -> list[Path]:
    """The sample-grid PNGs of a run, ``samples/iter_NNNNNN.png``, in iteration order."""
    samples = Path(run_dir) / "samples"
    if not samples.is_dir():
        return []
    found = []
    for entry in samples.iterdir():
        match = SAMPLE_NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [entry for _, entry in sorted(found)]


def save_progress_gif_from_run(
    run_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    duration_ms: int = 200,
    final_hold_ms: int = 1500,
    max_frames: int = 100,
) -> Path:
    """Build ``progress.gif`` from the sample grids a run wrote in ``run_dir/samples``.

    Parameters
    ----------
    run_dir : path-like
        A run folder holding ``samples/iter_000500.png`` and so on.
    path : path-like, optional
        Destination; default ``run_dir/progress.gif``.
    duration_ms, final_hold_ms : int
        Frame timing (see :func:`save_progress_gif`).
    max_frames : int
        When there are more grids than this, an evenly spaced subset is used
        (always keeping the first and the last), so the GIF stays small.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` has no sample grids.
    """
    from PIL import Image

    max_frames = check_int(max_frames, "max_frames", minimum=1)
    paths = sample_grid_paths(run_dir)
    if not paths:
        raise FileNotFoundError(f"no sample grids (samples/iter_*.png) found in {run_dir}")
    if len(paths) > max_frames:
        keep = np.unique(np.linspace(0, len(paths) - 1, max_frames).round().astype(int))
        paths = [paths[i] for i in keep]
    frames = []
    for grid_path in paths:
        with Image.open(grid_path) as picture:
            mode = "L" if picture.mode in ("1", "L", "LA", "I", "I;16") else "RGB"
            frames.append(np.asarray(picture.convert(mode)))
    destination = Path(run_dir) / "progress.gif" if path is None else Path(path)
    return save_progress_gif(frames, destination, duration_ms=duration_ms, final_hold_ms=final_hold_ms)

