"""Verified downloads and the MNIST/Fashion-MNIST cache, against a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

import minigan.datasets as ds
from minigan.datasets import download as dl
from minigan.serialization import FileFormatError

pytestmark = pytest.mark.data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes``: path -> (mode, bytes). Modes: good, short, short-unannounced, corrupt."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        mode, data = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode != "short-unannounced":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "good":
            self.wfile.write(data)
        elif mode in ("short", "short-unannounced"):
            self.wfile.write(data[: len(data) // 2])  # then the connection closes early
            self.close_connection = True
        elif mode == "corrupt":
            damaged = bytearray(data)
            damaged[len(damaged) // 3] ^= 0x55
            self.wfile.write(bytes(damaged))

    def log_message(self, *args):  # keep pytest output quiet
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes = {}
    httpd.requests = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


PAYLOAD = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()


def test_good_download_is_verified_and_published(server, tmp_path):
    server.routes["/f.bin"] = ("good", PAYLOAD)
    seen = []
    dest = tmp_path / "sub" / "f.bin"
    out = dl.download(server.url + "/f.bin", dest, sha(PAYLOAD), timeout=10, progress=lambda n, t: seen.append((n, t)))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 1
    assert dest.stat().st_mode & 0o044  # not left private like a mkstemp file


@pytest.mark.parametrize(
    "mode, route, expected_sha, error, message",
    [
        ("short", "/f.bin", sha(PAYLOAD), dl.DownloadError, r"truncated: received 100000 of the 200000 bytes"),
        ("short-unannounced", "/f.bin", sha(PAYLOAD), dl.ChecksumError, "wrong checksum"),
        ("corrupt", "/f.bin", sha(PAYLOAD), dl.ChecksumError, "wrong checksum .*discarded"),
        ("good", "/f.bin", sha(b"something else"), dl.ChecksumError, "wrong checksum"),
        ("good", "/other.bin", sha(PAYLOAD), dl.DownloadError, "HTTP 404"),
    ],
    ids=["closed-early", "closed-early-no-length", "corrupted", "wrong-checksum", "not-found"],
)
def test_failed_download_leaves_nothing_behind(server, tmp_path, mode, route, expected_sha, error, message):
    server.routes[route] = (mode, PAYLOAD)
    dest = tmp_path / "f.bin"
    with pytest.raises(error, match=message):
        dl.download(server.url + "/f.bin", dest, expected_sha, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_keeps_the_previous_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old content")
    server.routes["/f.bin"] = ("corrupt", PAYLOAD)
    with pytest.raises(dl.ChecksumError):
        dl.download(server.url + "/f.bin", dest, sha(PAYLOAD), timeout=10)
    assert dest.read_bytes() == b"old content" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_unreachable_server_is_a_download_error(tmp_path):
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(dl.DownloadError, match="cannot reach"):
        dl.download(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", sha(PAYLOAD), timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_download_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        dl.download("http://127.0.0.1/x", tmp_path / "x", "abc")
    with pytest.raises(ValueError, match="url"):
        dl.download("ftp://example.org/x", tmp_path / "x", "0" * 64)
    with pytest.raises(ValueError, match="timeout"):
        dl.download("http://127.0.0.1/x", tmp_path / "x", "0" * 64, timeout=0)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the registry and the cache


def test_registry_lists_complete_sources():
    for name in ("mnist", "fashion-mnist"):
        source = dl.SOURCES[name]
        assert set(source.files) == {"train_images", "train_labels", "test_images", "test_labels"}
        for remote in source.files.values():
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256) and remote.size > 0
        assert all(base.startswith(("https://", "http://")) for base in source.mirrors)
    assert dl.SOURCES["mnist"].files["train_images"].sha256.startswith("440fcabf")


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MINIGAN_DATA")
    assert ds.default_cache_dir() == tmp_path / "xdg" / "minigan"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.default_cache_dir() == tmp_path / "home" / ".cache" / "minigan"


def fake_mnist(folder: Path | None, n: int = 12, seed: int = 0) -> tuple[dict, dict[str, bytes]]:
    """Small MNIST-shaped IDX archives and a registry entry whose checksums match them."""
    import tempfile

    rng = np.random.default_rng(seed)
    arrays = {}
    blobs = {}
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    with tempfile.TemporaryDirectory() as scratch:
        for key, filename in names.items():
            count = n if key.startswith("train") else n // 2
            array = (
                rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
                if key.endswith("images")
                else rng.integers(0, 10, count, dtype=np.uint8)
            )
            path = Path(scratch) / filename
            ds.write_idx(path, array)
            arrays[key] = array
            blobs[filename] = path.read_bytes()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for filename, blob in blobs.items():
            (folder / filename).write_bytes(blob)
    files = {key: dl.RemoteFile(names[key], sha(blobs[names[key]]), len(blobs[names[key]])) for key in names}
    return arrays, files


@pytest.fixture
def fake_source(monkeypatch):
    """Replace the MNIST registry entry by one that matches fake files (and no real mirror)."""

    def install(files, mirrors=("http://127.0.0.1:9/unused/",), keras_npz=None):
        source = dl.DatasetSource("mnist", tuple(mirrors), files, "test data", keras_npz)
        monkeypatch.setitem(dl.SOURCES, "mnist", source)
        return source

    monkeypatch.delenv("MINIGAN_DATA_MIRROR", raising=False)
    return install


def no_network(*args, **kwargs):
    raise AssertionError("the network was used")


def test_load_reads_a_prepopulated_cache_without_network(tmp_path, fake_source, monkeypatch):
    arrays, files = fake_mnist(tmp_path / "mnist")
    fake_source(files)
    monkeypatch.setattr(dl, "download", no_network)
    for split in ("train", "test"):
        images, labels = ds.load("mnist", split=split, cache_dir=tmp_path)
        assert np.array_equal(images, arrays[f"{split}_images"]) and np.array_equal(labels, arrays[f"{split}_labels"])
    images, labels = ds.load("mnist", cache_dir=tmp_path, download=False, color="rgb")
    assert images.shape == (12, 28, 28, 3)


def test_load_uses_the_mnist_data_environment_variable(tmp_path, fake_source, monkeypatch):
    arrays, files = fake_mnist(tmp_path / "env" / "mnist")
    fake_source(files)
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(dl, "download", no_network)
    images, _ = ds.load("mnist", download=False)
    assert np.array_equal(images, arrays["train_images"])


def test_missing_files_without_download_name_the_cache_folder(tmp_path, fake_source):
    _, files = fake_mnist(None)
    fake_source(files)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz is not in the cache folder .*mnist"):
        ds.load("mnist", cache_dir=tmp_path, download=False)


def serve_fake_mnist(server, folder, prefix: str, mode: str = "good") -> None:
    """Write the fake MNIST files to ``folder`` and serve each under ``prefix`` with ``mode``."""
    fake_mnist(folder)
    for path in folder.iterdir():
        server.routes[f"{prefix}{path.name}"] = (mode, path.read_bytes())


def test_download_through_a_mirror_then_reuse_the_cache(server, tmp_path, fake_source):
    arrays, files = fake_mnist(None)
    serve_fake_mnist(server, tmp_path / "served", "/mirror/")
    fake_source(files)
    cache = tmp_path / "cache"
    images, labels = ds.load("mnist", split="test", cache_dir=cache, mirror=server.url + "/mirror")
    assert np.array_equal(images, arrays["test_images"]) and np.array_equal(labels, arrays["test_labels"])
    assert sorted(server.requests) == ["/mirror/t10k-images-idx3-ubyte.gz", "/mirror/t10k-labels-idx1-ubyte.gz"]
    cached = sorted(p.name for p in (cache / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    ds.load("mnist", split="test", cache_dir=cache, mirror=server.url + "/mirror")
    assert len(server.requests) == 2  # the second load came from the cache


def test_mirror_from_environment_and_fallback_between_mirrors(server, tmp_path, fake_source, monkeypatch):
    arrays, files = fake_mnist(None)
    serve_fake_mnist(server, tmp_path / "served", "/second/")
    # the first mirror answers 404 for everything: the second one is used
    fake_source(files, mirrors=(server.url + "/first/", server.url + "/second/"))
    images, _ = ds.load("mnist", cache_dir=tmp_path / "a")
    assert np.array_equal(images, arrays["train_images"])
    assert any(r.startswith("/first/") for r in server.requests)
    # $MINIGAN_DATA_MIRROR replaces the listed mirrors
    server.requests.clear()
    fake_source(files, mirrors=("http://127.0.0.1:9/never/",))
    monkeypatch.setenv("MINIGAN_DATA_MIRROR", server.url + "/second")
    images, _ = ds.load("mnist", cache_dir=tmp_path / "b")
    assert np.array_equal(images, arrays["train_images"]) and all(r.startswith("/second/") for r in server.requests)


def test_failed_dataset_download_leaves_the_cache_clean(server, tmp_path, fake_source):
    _, files = fake_mnist(None)
    serve_fake_mnist(server, tmp_path / "served", "/m/", "corrupt")
    fake_source(files)
    cache = tmp_path / "cache"
    with pytest.raises(dl.DownloadError, match="wrong checksum") as info:
        ds.load("mnist", cache_dir=cache, mirror=server.url + "/m/")
    assert "copy train-images-idx3-ubyte.gz into the folder" in str(info.value)
    assert list((cache / "mnist").iterdir()) == []


def test_damaged_cached_file_is_refused_or_replaced(server, tmp_path, fake_source):
    arrays, files = fake_mnist(tmp_path / "mnist")
    fake_source(files)
    damaged = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    good_bytes = damaged.read_bytes()
    damaged.write_bytes(good_bytes[:-3])
    with pytest.raises(dl.ChecksumError, match="cached file .*train-labels"):
        ds.load("mnist", cache_dir=tmp_path, download=False)
    server.routes["/m/train-labels-idx1-ubyte.gz"] = ("good", good_bytes)
    _, labels = ds.load("mnist", cache_dir=tmp_path, mirror=server.url + "/m")
    assert np.array_equal(labels, arrays["train_labels"]) and damaged.read_bytes() == good_bytes


def test_cached_keras_npz_is_used_when_idx_files_are_absent(tmp_path, fake_source, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(9)
    x_train = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, 7, dtype=np.uint8)
    np.savez_compressed(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_train[:2], y_test=y_train[:2])
    _, files = fake_mnist(None)
    npz_sha = sha((folder / "mnist.npz").read_bytes())
    fake_source(files, keras_npz=dl.RemoteFile("mnist.npz", npz_sha))
    monkeypatch.setattr(dl, "download", no_network)
    images, labels = ds.load("mnist", cache_dir=tmp_path, download=False)
    assert np.array_equal(images, x_train) and np.array_equal(labels, y_train)
    fake_source(files, keras_npz=dl.RemoteFile("mnist.npz", "0" * 64))
    with pytest.raises(dl.ChecksumError, match="mnist.npz"):
        ds.load("mnist", cache_dir=tmp_path, download=False)


def test_cached_files_with_inconsistent_counts_are_rejected(tmp_path, fake_source):
    _, files = fake_mnist(tmp_path / "mnist")
    labels_path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    ds.write_idx(labels_path, np.zeros(5, dtype=np.uint8))
    files["train_labels"] = dl.RemoteFile(labels_path.name, sha(labels_path.read_bytes()))
    fake_source(files)
    with pytest.raises(FileFormatError, match="match 12 images"):
        ds.load("mnist", cache_dir=tmp_path, download=False)
