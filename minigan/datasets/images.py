"""The user's own images: folders of image files (PNG, JPEG, ...), ``.npy``/``.npz`` arrays, and PNG writing.

Every reader returns uint8 pixels, shape (n, h, w) for ``color="grey"`` and
(n, h, w, 3) for ``color="rgb"``. Pillow is imported inside the functions that
need it, so that importing minigan stays cheap.
"""
from __future__ import annotations

import io
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_int, describe
from ..serialization import FileFormatError, atomic_write_bytes

#: File suffixes (any case) read as images, by the datasets and by ``minigan detect`` alike.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
COLORS = ("grey", "rgb")
#: ``read_image`` also takes ``"auto"``: grey files as (h, w), colour ones as (h, w, 3).
READ_COLORS = COLORS + ("auto",)
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"}
# npz keys tried, in order, for the images and the labels of a user's archive
IMAGE_KEYS = ("images", "x", "X", "data")
LABEL_KEYS = ("labels", "y", "Y", "targets")


class ImageReadError(ValueError):
    """A file that claims to be an image (by its extension) cannot be decoded."""


def check_resize(resize: Any) -> tuple[int, int] | None:
    """Validate ``resize``: None or a pair of positive ints ``(height, width)``."""
    if resize is None:
        return None
    if not isinstance(resize, (tuple, list)) or len(resize) != 2:
        raise TypeError(f"resize must be None or a pair (height, width), got {describe(resize)}")
    return (check_int(resize[0], "resize[0] (height)", minimum=1), check_int(resize[1], "resize[1] (width)", minimum=1))


def _size_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _resize_pixels(image: np.ndarray, resize: tuple[int, int]) -> np.ndarray:
    """Resize one uint8 image (h, w) or (h, w, 3) to ``resize`` with Lanczos filtering."""
    if image.shape[:2] == resize:
        return image
    from PIL import Image

    resized = Image.fromarray(image).resize((resize[1], resize[0]), Image.Resampling.LANCZOS)
    return np.array(resized, dtype=np.uint8)


def _is_grey(img: Any) -> bool:
    """Whether a Pillow image holds grey levels only (by its mode, or its palette's entries)."""
    if img.mode in _GREY_MODES:
        return True
    if img.mode in ("P", "PA"):
        palette = img.getpalette() or []
        return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return False


def _pil_to_array(img: Any, color: str) -> np.ndarray:
    """Convert a decoded Pillow image to uint8 grey (h, w) or RGB (h, w, 3) (``"auto"``: as the file is)."""
    from PIL import Image

    if color == "auto":
        color = "grey" if _is_grey(img) else "rgb"

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit PNGs: Pillow's convert("L") would clip them at 255, so scale 0..65535 to 0..255 instead
        wide = np.asarray(img).astype(np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(grey)
    elif img.mode == "F":
        raise ImageReadError("floating-point images (mode F) are not supported; save them as 8-bit PNG")
    # Pillow's convert drops alpha and uses ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B) for grey
    target = "L" if color == "grey" else "RGB"
    if img.mode != target:
        img = img.convert(target)
    return np.array(img, dtype=np.uint8)  # a writable copy


def read_image(path: str | os.PathLike, color: str = "grey") -> np.ndarray:
    """Read one PNG or JPEG (or any format Pillow decodes) as uint8 pixels.

    Parameters
    ----------
    path : path-like
    color : {"grey", "rgb", "auto"}
        Grey uses ITU-R 601-2 luma; RGB repeats a grey image in 3 channels;
        ``"auto"`` keeps the file's kind (grey for grey-level and grey-palette
        files, RGB otherwise). Alpha is dropped; 16-bit images are scaled to 8 bits.

    Returns
    -------
    ndarray of uint8, shape (h, w) for grey or (h, w, 3) for rgb

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ImageReadError
        The file cannot be decoded (corrupt, truncated or not an image).
    """
    check_choice(color, "color", READ_COLORS)
    path = Path(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses at twice that (DecompressionBombError, below)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return _pil_to_array(img, color)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):  # asked of the file system by opening it
        raise FileNotFoundError(f"no such image file: {path}") from None
    except ImageReadError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"cannot read image {path}: it is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"cannot read image {path}: it is corrupt, truncated or not an image ({exc})") from None


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write one uint8 image as a PNG file, atomically.

    Parameters
    ----------
    path : path-like
        Destination (its folder is created if needed).
    image : ndarray of uint8, shape (h, w), (h, w, 1) or (h, w, 3)
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_check_uint8_image(image)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def jpeg_roundtrip(image: np.ndarray, quality: int = 90) -> np.ndarray:
    """The image as a platform republishes it: encoded as a baseline JPEG at ``quality``
    (1..100, Pillow's IJG scaling) and decoded again.

    Parameters
    ----------
    image : ndarray of uint8, shape (h, w), (h, w, 1) or (h, w, 3)
    quality : int

    Returns
    -------
    ndarray of uint8, shape (h, w) for grey input, (h, w, 3) for RGB
    """
    from PIL import Image

    image = _check_uint8_image(image)
    quality = check_int(quality, "quality", minimum=1, maximum=100)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))


def _check_uint8_image(image: Any) -> np.ndarray:
    """One uint8 image as a C-contiguous (h, w) or (h, w, 3) array, or a clear error."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a NumPy array, got {describe(image)}")
    if image.dtype != np.uint8:
        raise TypeError(
            f"image must have dtype uint8, got {image.dtype}; convert floats in [-1, 1] with "
            "minigan.datasets.from_tanh_range"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        raise ValueError(f"image must have shape (h, w), (h, w, 1) or (h, w, 3), got {image.shape}")
    return np.ascontiguousarray(image)


def scan_image_folder(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """List a folder's image files (by extension, sorted by name) and the other entries.

    Only the folder's own files are read; subfolders are counted with the skipped entries.

    Returns
    -------
    images : list of Path
        Files ending in one of ``IMAGE_EXTENSIONS`` (any case), sorted by name.
    skipped : list of Path
        Every other entry, sorted by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    chosen = set(images)
    return images, [p for p in entries if p not in chosen]


def read_image_folder(
    folder: str | os.PathLike,
    *,
    color: str = "grey",
    resize: tuple[int, int] | None = None,
    _warn_stacklevel: int = 2,
) -> np.ndarray:
    """Read every image file (PNG, JPEG, ...: ``IMAGE_EXTENSIONS``) in a folder into one uint8 array.

    Files are read in name order. Non-image files (by extension) are skipped
    and counted in a ``UserWarning``; a file with an image extension that
    cannot be decoded is an error.

    Parameters
    ----------
    folder : path-like
    color : {"grey", "rgb"}
    resize : (height, width), optional
        Resize every image to this size (Lanczos). Without it, all images must
        have the same size.

    Returns
    -------
    ndarray of uint8, shape (n, h, w) for grey or (n, h, w, 3) for rgb

    Raises
    ------
    ValueError
        The folder holds no images, or images of different sizes without ``resize``.
    ImageReadError
        An image file is corrupt.
    """
    check_choice(color, "color", COLORS)
    resize = check_resize(resize)
    paths, skipped = scan_image_folder(folder)
    if not paths:
        count = len(skipped)
        noun = "entry" if count == 1 else "entries"
        extra = f" ({count} other {noun}, e.g. {skipped[0].name!r})" if skipped else " (it is empty)"
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder}{extra}")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} non-image entr{'y' if len(skipped) == 1 else 'ies'} in {folder} "
            f"(e.g. {skipped[0].name!r}); images are files ending in {', '.join(IMAGE_EXTENSIONS)}",
            UserWarning,
            stacklevel=_warn_stacklevel,  # point at the user's call, also when reached through load()
        )
    images: list[np.ndarray] = []
    first: Path | None = None
    for path in paths:
        image = read_image(path, color)
        if resize is not None:
            image = _resize_pixels(image, resize)
        elif first is None:
            first = path
        elif image.shape[:2] != images[0].shape[:2]:
            raise ValueError(
                f"images in {folder} have different sizes: {first.name} is {_size_text(images[0].shape)} "
                f"but {path.name} is {_size_text(image.shape)} (height x width); "
                "pass resize=(height, width) to resize them all (minigan train: --resize HxW)"
            )
        images.append(image)
    return np.stack(images)


def conform_images(
    images: np.ndarray, *, color: str = "grey", resize: tuple[int, int] | None = None, name: str = "images"
) -> np.ndarray:
    """Check an image array and bring it to the asked colour and size.

    Parameters
    ----------
    images : ndarray of integers in 0..255, shape (n, h, w), (n, h, w, 1) or (n, h, w, 3)
    color : {"grey", "rgb"}
        RGB becomes grey by ITU-R 601-2 luma (as Pillow); grey becomes RGB by repetition.
    resize : (height, width), optional

    Returns
    -------
    ndarray of uint8, shape (n, h, w) for grey or (n, h, w, 3) for rgb
    """
    check_choice(color, "color", COLORS)
    resize = check_resize(resize)
    if images.dtype.kind == "f":
        raise TypeError(
            f"{name} must hold integer pixels 0..255, got dtype {images.dtype}; convert floats in [-1, 1] "
            "with minigan.datasets.from_tanh_range, or floats in [0, 1] with (x * 255).round().astype('uint8')"
        )
    if images.dtype.kind not in "uib":
        raise TypeError(f"{name} must hold integer pixels 0..255, got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)):
        raise ValueError(f"{name} must have shape (n, h, w), (n, h, w, 1) or (n, h, w, 3), got {images.shape}")
    if images.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {images.shape}")
    if images.dtype != np.uint8:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(f"{name} must hold pixel values 0..255, got values {low}..{high}")
        images = images.astype(np.uint8)
    if color == "grey" and images.ndim == 4:
        # the same integer luma formula as Pillow's convert("L")
        rgb = images.astype(np.uint32)
        images = ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
    elif color == "rgb" and images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    if resize is not None and images.shape[1:3] != resize:
        images = np.stack([_resize_pixels(image, resize) for image in images])
    return np.ascontiguousarray(images)


def _pick(archive: Any, keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if key in archive.files), None)


def read_array_file(
    path: str | os.PathLike, *, split: str = "train", color: str = "grey", resize: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read images (and labels, if any) from a ``.npy`` or ``.npz`` file.

    A ``.npy`` holds only images. A ``.npz`` holds the images under ``images``,
    ``x``, ``X`` or ``data`` (or as its only array) and optional labels under
    ``labels``, ``y``, ``Y`` or ``targets``; a Keras-style archive
    (``x_train``, ``y_train``, ``x_test``, ``y_test``) gives the asked ``split``.
    Files are read with ``allow_pickle=False``.

    Returns
    -------
    images : ndarray of uint8, shape (n, h, w) or (n, h, w, 3)
    labels : ndarray of int, shape (n,), or None
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    labels = None
    try:
        # numpy leaks its own file handle when a zip is unreadable, so it gets ours
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                images = loaded
            else:
                with loaded as archive:
                    if f"x_{split}" in archive.files:  # Keras layout
                        images_key = f"x_{split}"
                        labels_key = f"y_{split}" if f"y_{split}" in archive.files else None
                    else:
                        images_key = _pick(archive, IMAGE_KEYS)
                        if images_key is None and len(archive.files) == 1:
                            images_key = archive.files[0]
                        labels_key = _pick(archive, LABEL_KEYS)
                    if images_key is None:
                        raise FileFormatError(
                            f"{path} has no images array: expected one of {', '.join(IMAGE_KEYS)} or x_{split}, "
                            f"found {', '.join(archive.files) or 'no arrays'}"
                        )
                    images = archive[images_key]
                    labels = archive[labels_key] if labels_key is not None else None
    except FileFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise FileFormatError(f"{path} holds object arrays, which minigan does not load (no pickle)") from None
        raise FileFormatError(f"{path} is not a readable NumPy file ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise FileFormatError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    images = conform_images(images, color=color, resize=resize, name=f"the images in {path.name}")
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (images.shape[0],):
            raise ValueError(
                f"the labels in {path.name} must be integers of shape ({images.shape[0]},), "
                f"got {labels.dtype} of shape {labels.shape}"
            )
    return images, labels
