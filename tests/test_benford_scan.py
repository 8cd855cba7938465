"""mg.benford.scan: streaming, bounded memory, the CSV log, resume, and the Dask path on a LocalCluster."""
from __future__ import annotations

import csv
import os
import tracemalloc

import numpy as np
import pytest

from minigan.benford import BenfordDetector, PixelDetector, scan
from minigan.benford.scan import CSV_COLUMNS, CsvLog, ScanRow, iter_image_files, score_files
from shared import textured

pytestmark = pytest.mark.benford

FAST = {"quality_factors": (90, 100), "bases": (10, 20), "n_coefficients": 6, "epochs": 5, "jpeg_augment": None}


def save_pngs(folder, images, prefix="img"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        paths.append(folder / f"{prefix}_{i:04d}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def detector():
    real = textured(30, 16, seed=1)
    fake = np.clip(textured(30, 16, seed=2).astype(int) + 30 * (np.indices((16, 16)).sum(0) % 2), 0, 255)
    x = np.r_[real, fake.astype(np.uint8)]
    y = np.r_[np.zeros(30, dtype=np.int64), np.ones(30, dtype=np.int64)]
    return BenfordDetector(seed=0, **FAST).fit(x, y)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 good 16x16 PNGs in two folders, a corrupt one, a 5x5 one and a text file (not listed)."""
    root = tmp_path_factory.mktemp("corpus")
    save_pngs(root / "a", textured(25, 16, seed=5))
    save_pngs(root / "b" / "deeper", textured(15, 16, seed=6))
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    save_pngs(root / "b", [np.zeros((5, 5), np.uint8)], prefix="tiny")
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def all_rows(*args, **kwargs) -> list[ScanRow]:
    return [row for rows in scan(*args, **kwargs) for row in rows]


def test_scan_scores_every_file_once_and_reports_the_others(detector, corpus):
    files = list(iter_image_files([corpus, corpus / "missing.png"]))
    assert len(files) == 25 + 1 + 15 + 1 + 1 and not any(f.endswith(".txt") for f in files)
    rows = all_rows([corpus, corpus / "missing.png"], detector, chunk_files=7)
    assert [r.file for r in rows] == files  # one process: in the order of the files
    by_reason = {}
    for r in rows:
        by_reason.setdefault(r.reason, []).append(r)
    assert len(by_reason["ok"]) == 40
    assert [os.path.basename(r.file) for r in by_reason["unreadable"]] == ["broken.png"]
    assert by_reason["too small"][0].status.startswith("too small: 5x5")
    assert by_reason["missing"][0].file.endswith("missing.png")
    assert all(r.p_fake is None and r.verdict == "" for r in rows if not r.scored)
    # the scores are the detector's
    from minigan.datasets import read_image

    ok = by_reason["ok"]
    expected = detector.predict_proba([read_image(r.file) for r in ok])[:, 1]
    np.testing.assert_allclose([r.p_fake for r in ok], expected, rtol=0, atol=1e-6)
    assert all(r.verdict == ("fake" if r.p_fake >= 0.5 else "real") for r in ok)


def test_chunking_does_not_change_the_scores(detector, corpus):
    one = {r.file: r.p_fake for r in all_rows([corpus], detector, chunk_files=1)}
    many = {r.file: r.p_fake for r in all_rows([corpus], detector, chunk_files=1000)}
    assert one.keys() == many.keys()
    for f in one:
        assert (one[f] is None) == (many[f] is None)
        if one[f] is not None:
            assert abs(one[f] - many[f]) <= 1e-6


def test_scan_skips_what_it_is_told_and_checks_its_arguments(detector, corpus):
    rows = all_rows([corpus], detector, skip=lambda f: "deeper" in f)
    assert len(rows) == 25 + 1 + 1 and not any("deeper" in r.file for r in rows)
    with pytest.raises(ValueError, match="threshold must be <= 1"):
        scan([corpus], detector, threshold=1.5)
    with pytest.raises(TypeError, match="detector must be"):
        scan([corpus], "model.npz")
    from minigan.errors import NotFittedError

    with pytest.raises(NotFittedError):
        scan([corpus], BenfordDetector())


def test_a_pixel_model_reports_images_of_another_size(tmp_path):
    x = np.r_[textured(10, 8, seed=1), textured(10, 8, seed=2) // 2].astype(np.uint8)
    model = PixelDetector(epochs=2, seed=0).fit(x, np.r_[np.zeros(10, int), np.ones(10, int)])
    save_pngs(tmp_path, [x[0], textured(1, 12, seed=3)[0]])
    rows = all_rows([tmp_path], model)
    assert rows[0].status == "ok" and rows[1].status.startswith("wrong size: 12x12, the model expects 8x8")


@pytest.mark.slow  # six 1024x1024 photos, scored twice
def test_a_large_photo_is_scored_through_its_luma_in_bounded_memory(detector, tmp_path, monkeypatch):
    """A 1024x1024 RGB photo: features block row by block row equal the whole-image features bit for bit,
    and the memory a scan holds does not grow with the number of photos."""
    import minigan.benford.image as image_module
    from minigan.benford import image_features

    rng = np.random.default_rng(0)
    photos = [np.clip(rng.normal(128, 40, (1024, 1024, 3)), 0, 255).astype(np.uint8) for _ in range(6)]
    paths = save_pngs(tmp_path, photos)
    whole = image_features(photos[:1], **detector._feature_kwargs())
    monkeypatch.setattr(image_module, "_CHUNK_PIXELS", 64 * 1024)  # 16 strips of 64 rows
    np.testing.assert_array_equal(image_features(photos[:1], **detector._feature_kwargs()).view(np.uint64),
                                  whole.view(np.uint64))
    monkeypatch.undo()

    def peak(files) -> int:
        tracemalloc.start()
        try:
            rows = [r for chunk in scan(files, detector, chunk_files=2) for r in chunk]
            return tracemalloc.get_traced_memory()[1], rows
        finally:
            tracemalloc.stop()

    del photos
    peak_two, rows = peak(paths[:2])
    peak_six, rows = peak(paths)
    assert [r.status for r in rows] == ["ok"] * 6
    assert rows[0].note and "1024x1024" in rows[0].note and "colour" in rows[0].note  # far from 16x16 grey
    assert peak_six < 1.3 * peak_two + (8 << 20), (peak_two, peak_six)
    assert peak_six < 400 << 20


def test_csv_log_appends_whole_lines_and_resumes(tmp_path, detector, corpus):
    path = tmp_path / "scan.csv"
    rows = all_rows([corpus], detector)
    with CsvLog(path) as log:
        log.write(rows[:10])
    with pytest.raises(FileExistsError, match="--resume"):
        CsvLog(path)
    # a kill in the middle of a line leaves half a row: resuming drops it, and scores that file again
    with open(path, "a") as handle:
        handle.write(rows[10].file + ",0.12")
    with CsvLog(path, resume=True) as log:
        assert log.done == {r.file for r in rows[:10]}
        log.write(all_rows([corpus], detector, skip=log.done.__contains__))
    read = list(csv.reader(open(path)))
    assert tuple(read[0]) == CSV_COLUMNS
    assert sorted(r[0] for r in read[1:]) == sorted(r.file for r in rows)  # every file exactly once
    assert all(len(r) == 4 for r in read)
    with CsvLog(path, overwrite=True):
        pass
    assert path.read_text() == "file,p_fake,verdict,status\n"
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a scan"):
        CsvLog(other, resume=True)


def test_score_files_reports_a_failing_group_instead_of_stopping(detector, corpus, monkeypatch):
    files = [f for f in iter_image_files([corpus / "a"]) if "img_" in f][:3]

    def broken(images):
        raise FloatingPointError("boom")

    monkeypatch.setattr(detector, "features", broken)
    rows = score_files(files, detector)
    assert [r.status for r in rows] == ["error: FloatingPointError: boom"] * 3


# ---------------------------------------------------------------------------
# Dask (a LocalCluster of worker processes on 127.0.0.1)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    import logging

    from minigan.benford.scan import start_local_cluster

    environ = dict(os.environ)
    local, client = start_local_cluster(2, logging.ERROR)  # the cluster of minigan detect --workers 2
    client.environ_kept = dict(os.environ) == environ  # checked by a test below
    with local, client:
        yield client


def _scores(rows):
    return {r.file: (r.p_fake, r.status) for r in rows}


@pytest.mark.dask
@pytest.mark.slow  # a LocalCluster of two processes takes a few seconds to start
def test_dask_scan_gives_the_scores_of_one_process(detector, corpus, cluster):
    # the workers run one BLAS thread: so must this process for bit-identical products
    workers_threads = cluster.run(lambda: os.environ.get("OPENBLAS_NUM_THREADS"))
    here = all_rows([corpus], detector, chunk_files=4)
    there = all_rows([corpus], detector, chunk_files=4, client=cluster)
    assert len(there) == len(here) == 42
    assert sorted(r.file for r in there) == sorted(r.file for r in here)
    if set(workers_threads.values()) == {os.environ.get("OPENBLAS_NUM_THREADS")}:
        assert _scores(there) == _scores(here)
    else:  # other thread counts: the last bits of the products may differ
        for f, (p, status) in _scores(here).items():
            q, other = _scores(there)[f]
            assert status == other and (p is None) == (q is None) and (p is None or abs(p - q) <= 1e-6)


@pytest.mark.dask
@pytest.mark.slow
def test_local_cluster_workers_get_its_settings(cluster):
    import dask

    from minigan.benford.scan import LOCAL_CLUSTER_CONFIG

    in_config = {key: value for key, value in LOCAL_CLUSTER_CONFIG.items() if "pre-spawn-environ" not in key}
    settings = cluster.run(lambda: {key: dask.config.get(key) for key in in_config})
    assert len(settings) == 2 and all(s == in_config for s in settings.values())
    # glibc's trimming as glibc sets it, unless this process's environment says otherwise
    trim = cluster.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(trim.values()) == {os.environ.get("MALLOC_TRIM_THRESHOLD_")}
    # one BLAS thread each unless this process set another count
    blas_threads = cluster.run(lambda: os.environ.get("OPENBLAS_NUM_THREADS"))
    assert set(blas_threads.values()) == {os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    # and this process's environment is as it was: Dask's nannies write the workers' into it
    assert cluster.environ_kept


@pytest.mark.dask
@pytest.mark.slow
def test_dask_scan_survives_a_worker_killed_mid_scan(detector, tmp_path, cluster):
    import signal
    import time

    save_pngs(tmp_path, textured(160, 16, seed=9))
    expected = _scores(all_rows([tmp_path], detector, chunk_files=2))
    pids = list(cluster.run(os.getpid).values())
    seen: list[ScanRow] = []
    killed = False
    for rows in scan([tmp_path], detector, chunk_files=2, client=cluster):
        seen += rows
        if not killed:
            os.kill(pids[0], signal.SIGKILL)  # the nanny starts a new worker; its chunks run again
            killed = True
    files = [r.file for r in seen]
    assert len(files) == len(set(files)) == 160  # every file exactly once
    got = _scores(seen)
    for f, (p, status) in expected.items():
        assert got[f][1] == status == "ok" and abs(got[f][0] - p) <= 1e-6
    deadline = time.time() + 30
    while len(cluster.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)  # leave the cluster as it was for the next test


def test_detect_reads_files_as_the_datasets_do_16_bit_pngs_included(detector, tmp_path):
    from PIL import Image

    import minigan.benford.cli as detect_cli
    from minigan.datasets import images as dataset_images

    wide = textured(1, 16, seed=3)[0].astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "deep.png")  # mode I;16
    (tmp_path / "photo.webp").write_bytes(b"")  # one suffix list for both: .webp is an image suffix
    assert not hasattr(detect_cli, "IMAGE_SUFFIXES") and not hasattr(detect_cli, "read_image")
    listed = sorted(os.path.basename(f) for f in iter_image_files([tmp_path]))
    assert listed == ["deep.png", "photo.webp"]
    assert dataset_images.scan_image_folder(tmp_path)[0] == sorted(tmp_path.iterdir())
    rows = all_rows([tmp_path / "deep.png"], detector)
    pixels = dataset_images.read_image(tmp_path / "deep.png")
    # scaled from 16 bits (v * 257 -> v), not clipped at 255
    np.testing.assert_array_equal(pixels, textured(1, 16, seed=3)[0])
    assert rows[0].p_fake == pytest.approx(detector.predict_proba(pixels[None])[0, 1], abs=1e-6)
