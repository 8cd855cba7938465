"""Labelled data for conditional GANs: folders of class sub-folders (torchvision's ImageFolder
layout), .npz files with labels (and class names), the named datasets' classes, and clear
errors for bad labels."""
from __future__ import annotations

import numpy as np
import pytest

from minigan import datasets
from minigan.conditional.labels import (check_class_names, check_labels, describe_classes, even_labels,
                                        label_from_text)
from minigan.datasets.labelled import FASHION_MNIST_CLASSES, find_classes, is_class_folder, read_class_folders

pytestmark = pytest.mark.data


def _png(path, value, size=(6, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.save_png(path, np.full(size, value, dtype=np.uint8))


@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "pets"
    _png(root / "dog" / "b.png", 30)
    _png(root / "dog" / "a.png", 20)
    _png(root / "cat" / "x.png", 10)
    _png(root / "cat" / "deeper" / "y.png", 11)  # any depth inside a class folder
    _png(root / "Zebra" / "z.jpg.png", 40)
    _png(root / ".ipynb_checkpoints" / "c.png", 99)  # hidden: not a class
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_class_folders_read_as_imagefolder_does(class_folder):
    assert is_class_folder(class_folder) and not is_class_folder(class_folder / "dog")
    assert find_classes(class_folder) == ["Zebra", "cat", "dog"]  # sorted by code point: capitals first
    with pytest.warns(UserWarning, match="skipped 1 non-image file"):
        images, labels, names = read_class_folders(class_folder)
    assert names == ["Zebra", "cat", "dog"]
    assert list(labels) == [0, 1, 1, 2, 2] and labels.dtype == np.int64
    assert list(images[:, 0, 0]) == [40, 11, 10, 20, 30]  # sorted paths: cat/deeper/y.png before cat/x.png
    with pytest.warns(UserWarning):
        loaded, loaded_labels = datasets.load(class_folder)  # the one entry point gives the labels too
    np.testing.assert_array_equal(loaded, images)
    np.testing.assert_array_equal(loaded_labels, labels)
    with pytest.warns(UserWarning):
        _, _, again = datasets.load_labelled(class_folder, resize=(4, 4), color="rgb")
    assert again == names


def test_class_folder_errors(tmp_path):
    root = tmp_path / "data"
    _png(root / "a" / "1.png", 1)
    (root / "b").mkdir()
    with pytest.raises(ValueError, match=r"class 'b' .* holds no PNG or JPEG images"):
        read_class_folders(root)
    _png(root / "b" / "2.png", 2, size=(5, 6))
    with pytest.raises(ValueError, match="different sizes.*resize"):
        read_class_folders(root)
    images, labels, _ = read_class_folders(root, resize=(3, 3))
    assert images.shape == (2, 3, 3) and list(labels) == [0, 1]
    with pytest.raises(ValueError, match="no class sub-folders"):
        read_class_folders(root / "a")
    plain = tmp_path / "plain"
    _png(plain / "1.png", 1)
    with pytest.raises(ValueError, match="has no labels, which a conditional GAN needs"):
        datasets.load_labelled(plain)


def test_npz_labels_and_class_names(tmp_path):
    images = np.zeros((6, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "plain.npz", images=images, labels=np.array([0, 1, 2, 2, 1, 0]))
    _, labels, names = datasets.load_labelled(tmp_path / "plain.npz")
    assert names == ["0", "1", "2"] and labels.dtype == np.int64
    np.savez(tmp_path / "named.npz", images=images, labels=np.array([0, 1, 1, 1, 1, 0]),
             class_names=np.array(["left", "right"]))
    assert datasets.load_labelled(tmp_path / "named.npz")[2] == ["left", "right"]
    np.savez(tmp_path / "gap.npz", images=images, labels=np.array([0, 1, 3, 3, 1, 0]))
    with pytest.raises(ValueError, match=r"1 of the 4 classes have no images \(class 2\)"):
        datasets.load_labelled(tmp_path / "gap.npz")
    np.savez(tmp_path / "too_many.npz", images=images, labels=np.array([0, 1, 2, 2, 1, 0]),
             class_names=np.array(["left", "right"]))
    with pytest.raises(ValueError, match=r"must lie in 0 \.\. 1"):
        datasets.load_labelled(tmp_path / "too_many.npz")
    np.savez(tmp_path / "floats.npz", images=images, labels=np.zeros(6))
    with pytest.raises(ValueError, match="must be integers"):
        datasets.load_labelled(tmp_path / "floats.npz")
    np.savez(tmp_path / "short.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"integers of shape \(6,\)"):
        datasets.load_labelled(tmp_path / "short.npz")
    np.save(tmp_path / "images.npy", images)
    with pytest.raises(ValueError, match="has no labels"):
        datasets.load_labelled(tmp_path / "images.npy")


def test_named_datasets_name_their_classes(monkeypatch):
    images, labels, names = datasets.load_labelled("mnist-5k")
    assert names == [str(k) for k in range(10)] and len(labels) == 5000 and labels.dtype == np.int64
    fake = (np.zeros((20, 28, 28), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 10)
    monkeypatch.setattr(datasets, "load_remote", lambda *a, **k: fake)  # no download in the test
    assert datasets.load_labelled("fashion-mnist")[2] == list(FASHION_MNIST_CLASSES)
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert datasets.load_labelled("mnist")[2] == [str(k) for k in range(10)]


def test_labels_are_found_by_name_or_number():
    digits = [str(k) for k in range(10)]
    assert label_from_text("7", digits) == 7
    assert label_from_text("cat", ["cat", "dog"]) == 0 and label_from_text("1", ["cat", "dog"]) == 1
    with pytest.raises(ValueError, match=r"'bird' is not a class of this run; its classes are 0 'cat', 1 'dog'"):
        label_from_text("bird", ["cat", "dog"])
    with pytest.raises(ValueError, match="0 .. 9"):
        label_from_text("10", digits)
    # sub-folders named 1, 2, 3 are the classes 0, 1, 2: a number that is not a name is ambiguous
    assert label_from_text("3", ["1", "2", "3"]) == 2
    with pytest.raises(ValueError, match="ambiguous"):
        label_from_text("0", ["1", "2", "3"])
    assert describe_classes(digits) == "0 .. 9"


def test_label_checks():
    assert check_labels([1, 0, 2], 3, 3).dtype == np.int64
    assert list(check_labels(np.array([2, 0], dtype=np.uint8), 2, 3)) == [2, 0]
    for bad, kind, word in (([0, 1], ValueError, r"one entry per image \(3\)"),
                            (np.array([0, 1, 3]), ValueError, r"0 \.\. 2 \(3 classes\), got 3"),
                            (np.array([0.5, 1, 2]), TypeError, "integers"),
                            ("012", TypeError, "array of integer class labels"),
                            ([[0, 1, 2]], ValueError, "1-D")):
        with pytest.raises(kind, match=word):
            check_labels(bad, 3, 3)
    with pytest.raises(ValueError, match=r"class 1\b"):
        check_labels(np.array([0, 2, 2]), 3, 3, every_class=True)
    with pytest.raises(ValueError, match="distinct"):
        check_class_names(["a", "a"])
    with pytest.raises(TypeError, match="non-empty string"):
        check_class_names(["a", 3])
    assert list(even_labels(5, 5)) == [0, 1, 2, 3, 4] and list(even_labels(4, 2)) == [0, 0, 1, 1]
