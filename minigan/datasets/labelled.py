"""Images with class labels and class names, for conditional GANs.

:func:`load_labelled` returns ``(images, labels, class_names)`` for every source that
has labels:

* the bundled digits, MNIST: classes ``"0" .. "9"``; Fashion-MNIST: its ten article
  names (Xiao, Rasul and Vollgraf 2017, "Fashion-MNIST", label 0 = "T-shirt/top" ...
  9 = "Ankle boot");
* a folder of class sub-folders, torchvision's ``ImageFolder`` convention
  (``root/cat/001.png``, ``root/dog/xyz.png``): the class names are the sub-folder
  names sorted by code point (Python's ``sorted``, as ``ImageFolder`` sorts them),
  label ``k`` being the ``k``-th name; every PNG/JPEG inside a class folder, at any
  depth, is an image of that class, read in sorted path order. Entries whose names
  start with a dot (``.ipynb_checkpoints``, ``.DS_Store``) are ignored. A class
  folder without images is an error;
* an ``.npz`` with ``images`` and integer ``labels`` (see
  :func:`minigan.datasets.images.read_array_file` for the accepted keys), and
  optionally ``class_names`` (an array of strings, one per class); without it the
  classes are named by their numbers.

The labels are int64 ``0 .. K-1`` with every class present: a source whose labels skip
a class (e.g. 0, 1, 3) is refused with a message naming the empty class.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice
from ..conditional.labels import check_class_names, check_labels, default_class_names
from ..serialization import FileFormatError
from .images import COLORS, IMAGE_EXTENSIONS, _resize_pixels, check_resize, read_image

#: Fashion-MNIST's class names, label 0 first (the dataset's documentation).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
#: The key of an ``.npz`` file's optional class names.
CLASS_NAMES_KEY = "class_names"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def find_classes(folder: str | os.PathLike) -> list[str]:
    """The class names of an image folder: its sub-folders' names, sorted (hidden ones left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and _visible(entry))


def is_class_folder(folder: str | os.PathLike) -> bool:
    """True for a folder laid out as one sub-folder per class: it has sub-folders and no
    image files of its own."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    entries = [entry for entry in folder.iterdir() if _visible(entry)]
    has_images = any(entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS for entry in entries)
    return not has_images and any(entry.is_dir() for entry in entries)


def _class_files(class_folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files anywhere below ``class_folder`` (sorted by path) and the other files."""
    images, others = [], []
    for root, dirs, files in os.walk(class_folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            (images if path.suffix.lower() in IMAGE_EXTENSIONS else others).append(path)
    return sorted(images), others


def read_class_folders(folder: str | os.PathLike, *, color: str = "grey", resize: tuple[int, int] | None = None,
                       _warn_stacklevel: int = 2) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder of class sub-folders (torchvision's ``ImageFolder`` layout).

    Parameters
    ----------
    folder : path-like
        ``folder/<class name>/**/*.png|jpg|jpeg``.
    color : {"grey", "rgb"}
    resize : (height, width), optional
        Resize every image (Lanczos); without it all images must have one size.

    Returns
    -------
    images : ndarray of uint8, (n, h, w) for grey or (n, h, w, 3) for rgb
        The classes' images one class after the other, in sorted path order.
    labels : ndarray of int64 (n,)
        ``k`` for the images of ``class_names[k]``.
    class_names : list of str
        The sub-folder names, sorted.

    Raises
    ------
    ValueError
        No class sub-folders, a class folder without images, or images of different
        sizes without ``resize``.
    ImageReadError
        An image file cannot be decoded.
    """
    check_choice(color, "color", COLORS)
    resize = check_resize(resize)
    folder = Path(folder)
    names = find_classes(folder)
    if not names:
        raise ValueError(f"{folder} has no class sub-folders: a labelled image folder holds one sub-folder per "
                         "class (folder/cat/*.png, folder/dog/*.png)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[Path] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for label, name in enumerate(names):
        paths, others = _class_files(folder / name)
        skipped += others
        if not paths:
            extra = f" ({len(others)} other files, e.g. {others[0].name!r})" if others else ""
            raise ValueError(f"class {name!r} (the sub-folder {folder / name}) holds no PNG or JPEG images{extra}; "
                             "every class needs images: remove the empty folder or add its images")
        for path in paths:
            image = read_image(path, color)
            if resize is not None:
                image = _resize_pixels(image, resize)
            elif first is None:
                first = (path, image.shape[:2])
            elif image.shape[:2] != first[1]:
                raise ValueError(
                    f"images in {folder} have different sizes: {first[0].relative_to(folder)} is "
                    f"{first[1][0]}x{first[1][1]} but {path.relative_to(folder)} is {image.shape[0]}x{image.shape[1]} "
                    "(height x width); pass resize=(height, width) to resize them all (minigan train: --resize HxW)"
                )
            images.append(image)
            labels.append(label)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} non-image file{'' if len(skipped) == 1 else 's'} in the class folders of "
            f"{folder} (e.g. {skipped[0].relative_to(folder)}); images are files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}",
            UserWarning,
            stacklevel=_warn_stacklevel,
        )
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


def _npz_class_names(path: Path) -> list[str] | None:
    if path.suffix.lower() != ".npz":
        return None
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            if CLASS_NAMES_KEY not in archive.files:
                return None
            names = archive[CLASS_NAMES_KEY]
    except ValueError:
        raise FileFormatError(f"{path}: its {CLASS_NAMES_KEY!r} array must hold strings (no pickled objects)") from None
    if names.dtype.kind not in "U" or names.ndim != 1:
        raise FileFormatError(f"{path}: {CLASS_NAMES_KEY!r} must be a 1-D array of strings, one per class, got "
                              f"dtype {names.dtype} and shape {names.shape}")
    return [str(v) for v in names]


def load_labelled(name_or_path: str | os.PathLike = "mnist-5k", **options: Any
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, their labels and the class names, from any labelled source (see the module docstring).

    Parameters
    ----------
    name_or_path : str or path-like
        A dataset name (``"mnist-5k"``, ``"mnist"``, ``"fashion-mnist"``), a folder of
        class sub-folders, or an ``.npz`` with labels.
    **options
        As :func:`minigan.datasets.load` takes them (``split``, ``color``, ``resize``, ...).

    Returns
    -------
    images : ndarray of uint8, (n, h, w) or (n, h, w, 3)
    labels : ndarray of int64 (n,), every class ``0 .. K-1`` present
    class_names : list of K str

    Raises
    ------
    ValueError
        The source has no labels (a folder of images without class sub-folders, a
        ``.npy``, an ``.npz`` without labels), or its labels skip a class.
    """
    from . import dataset_names, load

    images, labels = load(name_or_path, **options)
    source = str(name_or_path)
    if labels is None:
        raise ValueError(
            f"{source} has no labels, which a conditional GAN needs: use a folder with one sub-folder of images "
            "per class (folder/cat/*.png, folder/dog/*.png), an .npz with 'images' and 'labels', or a labelled "
            "dataset (mnist-5k, mnist, fashion-mnist)")
    path = None if isinstance(name_or_path, str) and name_or_path in dataset_names() else Path(name_or_path)
    if path is not None and path.is_dir():
        names = find_classes(path)
    else:
        names = _npz_class_names(path) if path is not None else None
    labels = check_labels(labels, len(images), name=f"the labels of {source}")
    num_classes = len(names) if names is not None else int(labels.max()) + 1
    labels = check_labels(labels, len(images), num_classes, name=f"the labels of {source}", every_class=True)
    if names is None:
        names = list(FASHION_MNIST_CLASSES) if name_or_path == "fashion-mnist" else default_class_names(num_classes)
    return images, labels, check_class_names(names, num_classes, name=f"the class names of {source}")
