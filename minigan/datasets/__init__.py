"""Training data for minigan: bundled digits, MNIST/Fashion-MNIST, and the user's own images.

``load(name_or_path)`` is the one entry point; it returns uint8 images and
their labels. Scale them for the generator's tanh range with
:func:`to_tanh_range` and back with :func:`from_tanh_range`.

Importing this package loads only NumPy; Pillow and urllib are imported when
a function needs them. The verified download function is
``minigan.datasets.download.download`` (the submodule keeps the name).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validation import describe
from .bundled import bundled_info, load_bundled_mnist
from .download import (
    SOURCES,
    ChecksumError,
    DownloadError,
    default_cache_dir,
    load_remote,
    read_keras_mnist_npz,
)
from .idx import IDXFormatError, read_idx, write_idx
from .images import ImageReadError, jpeg_roundtrip, read_array_file, read_image, read_image_folder, save_png
from .labelled import find_classes, is_class_folder, load_labelled, read_class_folders
from .scaling import from_tanh_range, to_tanh_range

__all__ = [
    "load",
    "dataset_names",
    "load_bundled_mnist",
    "bundled_info",
    "to_tanh_range",
    "from_tanh_range",
    "read_idx",
    "write_idx",
    "read_keras_mnist_npz",
    "read_image",
    "read_image_folder",
    "load_labelled",
    "read_class_folders",
    "find_classes",
    "is_class_folder",
    "save_png",
    "jpeg_roundtrip",
    "default_cache_dir",
    "DownloadError",
    "ChecksumError",
    "IDXFormatError",
    "ImageReadError",
]

BUNDLED_NAME = "mnist-5k"


def dataset_names() -> tuple[str, ...]:
    """The names :func:`load` accepts besides paths: ``("mnist-5k", "mnist", "fashion-mnist")``."""
    return (BUNDLED_NAME, *SOURCES)


def load(
    name_or_path: str | os.PathLike = BUNDLED_NAME,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    color: str = "grey",
    resize: tuple[int, int] | None = None,
    mirror: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a named dataset or the images at a path.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"mnist-5k"`` (the 5,000 bundled digits, no network), ``"mnist"``,
        ``"fashion-mnist"`` (downloaded once into the cache), or a path to a
        folder of image files (PNG, JPEG, ...: ``images.IMAGE_EXTENSIONS``), a
        folder of class sub-folders (labelled, see :func:`load_labelled`), a
        ``.npy`` or a ``.npz`` file.
    split : {"train", "test"}
        For MNIST and Fashion-MNIST, and for Keras-style ``.npz`` files.
        The bundled digits have only ``"train"``.
    cache_dir : path-like, optional
        Folder for downloaded datasets; default ``$MINIGAN_DATA``, else
        ``$XDG_CACHE_HOME/minigan``, else ``~/.cache/minigan``.
    download : bool
        Allow downloading missing files.
    color : {"grey", "rgb"}
        Colour of the returned images.
    resize : (height, width), optional
        Resize every image (Lanczos); needed for a folder of mixed sizes.
    mirror : str, optional
        Base URL to download MNIST/Fashion-MNIST files from instead of the
        official ones (also settable as ``$MINIGAN_DATA_MIRROR``).

    Returns
    -------
    images : ndarray of uint8, shape (n, h, w) for grey or (n, h, w, 3) for rgb
    labels : ndarray of int, shape (n,), or None when the source has no labels
    """
    from .images import COLORS, check_resize, conform_images
    from .._validation import check_choice

    check_choice(split, "split", ("train", "test"))
    check_choice(color, "color", COLORS)
    resize = check_resize(resize)
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {describe(download)}")
    if isinstance(name_or_path, str) and name_or_path in dataset_names():
        if name_or_path == BUNDLED_NAME:
            if split != "train":
                raise ValueError(
                    f"the bundled {BUNDLED_NAME!r} digits have only split='train'; use 'mnist' for the test split"
                )
            images, labels = load_bundled_mnist()
        else:
            images, labels = load_remote(
                name_or_path, split=split, cache_dir=cache_dir, download=download, mirror=mirror
            )
        if color != "grey" or resize is not None:
            images = conform_images(images, color=color, resize=resize)
        return images, labels
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a dataset name or a path, got {describe(name_or_path)}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if is_class_folder(path):  # one sub-folder per class: labelled images (see datasets.labelled)
            images, labels, _ = read_class_folders(path, color=color, resize=resize, _warn_stacklevel=3)
            return images, labels
        return read_image_folder(path, color=color, resize=resize, _warn_stacklevel=3), None
    if path.is_file():
        if path.suffix.lower() not in (".npy", ".npz"):
            raise ValueError(f"cannot load {path}: expected a folder of images, a .npy or a .npz file")
        return read_array_file(path, split=split, color=color, resize=resize)
    names = ", ".join(map(repr, dataset_names()))
    raise FileNotFoundError(f"{str(name_or_path)!r} is neither a dataset name ({names}) nor an existing path")
