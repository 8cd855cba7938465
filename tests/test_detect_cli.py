"""``minigan detect`` and ``minigan benford`` as a user runs them: ``python -m minigan`` in a subprocess
(exit codes, files, messages, never a traceback), including Ctrl-C / SIGTERM and --resume."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minigan.benford import BenfordDetector
from shared import textured

pytestmark = [pytest.mark.cli, pytest.mark.benford]

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("MINIGAN_DEBUG", None)
    env.update(extra)
    return env


def minigan(*args, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minigan", *map(str, args)], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def fails(result: subprocess.CompletedProcess, pattern: str, code: int | None = None) -> str:
    assert result.returncode != 0 and (code is None or result.returncode == code), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert pattern.lower() in result.stderr.lower(), result.stderr
    return result.stderr


def save_pngs(folder: Path, images, prefix: str = "img") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{prefix}_{i:04d}.png")


def checkerboard(images: np.ndarray) -> np.ndarray:
    board = 30 * (np.indices(images.shape[1:3]).sum(0) % 2)
    return np.clip(images.astype(int) + board, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Folders of 16x16 real and fake PNGs (with a corrupt, a tiny and a text file), and a small model."""
    root = tmp_path_factory.mktemp("detect")
    save_pngs(root / "real", textured(30, 16, seed=1))
    save_pngs(root / "fake", checkerboard(textured(30, 16, seed=2)))
    (root / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    save_pngs(root / "fake", [np.zeros((4, 4), np.uint8)], prefix="tiny")
    (root / "fake" / "readme.txt").write_text("not an image")
    x = np.r_[textured(30, 16, seed=1), checkerboard(textured(30, 16, seed=2))]
    y = np.r_[np.zeros(30, dtype=np.int64), np.ones(30, dtype=np.int64)]
    BenfordDetector(quality_factors=(90, 100), bases=(10, 20), n_coefficients=6, epochs=80, jpeg_augment=None,
                    seed=0).fit(x, y).save(root / "model.npz")
    return root


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ detect fit


def test_fit_help_describes_the_command_and_shows_defaults(work):
    out = " ".join(ok(minigan("detect", "fit", "--help", cwd=work)).stdout.split())  # help wraps its lines
    assert "Train a detector on real and GAN-generated image files" in out
    assert "(default: benford)" in out and "(default: 0)" in out and "100 for benford, 20 for pixel" in out
    predict = " ".join(ok(minigan("detect", "predict", "--help", cwd=work)).stdout.split())
    assert "(default: 0.5)" in predict and "--resume" in predict and "--workers" in predict


@pytest.mark.slow  # trains a detector in a subprocess
def test_fit_shows_progress_and_summarises_skipped_files(work, tmp_path):
    result = ok(minigan("detect", "fit", "--real", work / "real", "--fake", work / "fake", "--out",
                        tmp_path / "m.npz", "--epochs", 3, cwd=work))
    assert "training" in result.stderr and "epoch" in result.stderr  # the progress bar
    assert "reading real images" in result.stderr
    notes = [line for line in result.stderr.splitlines() if "broken.png" in line]
    assert len(notes) == 1 and "skipped 2 file(s) (1 unreadable, 1 too small)" in notes[0]
    assert "tiny_0000.png" in notes[0]
    assert "trained a benford detector on 30 real and 30 fake images (3 epochs" in result.stdout
    assert (tmp_path / "m.npz").is_file()


# ------------------------------------------------------------------ detect predict


def test_predict_prints_scored_files_and_a_summary(work):
    result = ok(minigan("detect", "predict", "--model", work / "model.npz", work / "real", work / "fake",
                        work / "missing.png", cwd=work))
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["p(fake)", "verdict", "file"]
    assert sum(1 for line in lines if line.endswith(".png")) == 60
    assert "60 image(s) scored" in result.stdout and "3 not scored" in result.stdout
    assert "broken.png" not in result.stdout  # skipped files: one summary line on stderr, not a line each
    summary = [line for line in result.stderr.splitlines() if "skipped 3 file(s)" in line]
    assert len(summary) == 1 and "1 missing" in summary[0] and "1 unreadable" in summary[0]


@pytest.mark.slow
def test_predict_csv_streams_rows_with_a_progress_bar(work, tmp_path):
    out = tmp_path / "scores.csv"
    result = ok(minigan("detect", "predict", "--model", work / "model.npz", work, "--csv", out,
                        "--chunk-files", 16, cwd=work))
    assert "scoring" in result.stderr and "62/62" in result.stderr  # the bar, not a row per file
    assert "img_0000.png" not in result.stdout
    rows = csv_rows(out)
    assert list(rows[0]) == ["file", "p_fake", "verdict", "status"]
    assert len(rows) == 62 and len({r["file"] for r in rows}) == 62
    status = {Path(r["file"]).name: r["status"] for r in rows}
    assert status["broken.png"].startswith("unreadable") and status["tiny_0000.png"].startswith("too small")
    scored = [r for r in rows if r["status"] == "ok"]
    assert all(0 <= float(r["p_fake"]) <= 1 and r["verdict"] in ("real", "fake") for r in scored)
    fake_called_fake = sum(r["verdict"] == "fake" for r in scored if "/fake/" in r["file"])
    assert fake_called_fake >= 25  # the checkerboard is plain to see
    # an existing CSV is never overwritten by accident
    fails(minigan("detect", "predict", "--model", work / "model.npz", work, "--csv", out, cwd=work), "--resume")
    again = ok(minigan("detect", "predict", "--model", work / "model.npz", work, "--csv", out, "--resume", cwd=work))
    assert "62 file(s) already there are skipped" in again.stderr and len(csv_rows(out)) == 62


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_threshold_outside_zero_one_is_refused(work, value):
    result = minigan("detect", "predict", "--model", work / "model.npz", work / "real", "--threshold", value,
                     cwd=work)
    fails(result, "--threshold", code=2)


def test_workers_without_dask_say_how_to_install_it(work, tmp_path):
    blocker = tmp_path / "nodask"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('No module named distributed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    result = subprocess.run([sys.executable, "-m", "minigan", "detect", "predict", "--model", str(work / "model.npz"),
                             str(work / "real"), "--workers", "2"], cwd=work, env={**_env(), **env},
                            capture_output=True, text=True, timeout=120)
    fails(result, 'pip install "minigan[dask]"', code=1)


def _interrupt_and_resume(work: Path, tmp_path: Path, sig: int, code: int) -> None:
    folder = tmp_path / "many"
    save_pngs(folder, textured(300, 16, seed=4))
    out = tmp_path / "scan.csv"
    args = [sys.executable, "-m", "minigan", "detect", "predict", "--model", str(work / "model.npz"), str(folder),
            "--csv", str(out), "--chunk-files", 4, "--no-progress"]
    proc = subprocess.Popen(list(map(str, args)), cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and (not out.exists() or len(out.read_text().splitlines()) < 9):
        time.sleep(0.05)
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "every scored row is kept" in stderr and "--resume" in stderr
    text = out.read_text()
    assert text.endswith("\n")  # no half-written line
    first = csv_rows(out)
    assert 8 <= len(first) < 300 and all(r["status"] == "ok" and r["p_fake"] for r in first)
    ok(minigan("detect", "predict", "--model", work / "model.npz", folder, "--csv", out, "--resume", cwd=work))
    rows = csv_rows(out)
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)) == 300  # every file exactly once
    assert rows[: len(first)] == first


@pytest.mark.slow  # 300 files in chunks of 4, twice
def test_ctrl_c_keeps_every_scored_row_and_resume_finishes_the_scan(work, tmp_path):
    _interrupt_and_resume(work, tmp_path, signal.SIGINT, 130)


@pytest.mark.slow
def test_sigterm_keeps_every_scored_row_and_resume_finishes_the_scan(work, tmp_path):
    _interrupt_and_resume(work, tmp_path, signal.SIGTERM, 143)


@pytest.mark.slow  # starts a LocalCluster of two worker processes
@pytest.mark.dask
def test_predict_on_two_local_workers_gives_the_scores_of_one_process(work, tmp_path):
    pytest.importorskip("distributed")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    ok(minigan("detect", "predict", "--model", work / "model.npz", work, "--csv", one, "--chunk-files", 8, cwd=work))
    ok(minigan("detect", "predict", "--model", work / "model.npz", work, "--csv", two, "--chunk-files", 8,
               "--workers", 2, cwd=work))
    by_file = {r["file"]: r for r in csv_rows(one)}
    assert sorted(by_file) == sorted(r["file"] for r in csv_rows(two))
    assert {r["file"]: r for r in csv_rows(two)} == by_file  # to the last digit printed


@pytest.mark.slow  # a subprocess scan
def test_a_benford_model_warns_about_images_unlike_its_training_images(work, tmp_path):
    rng = np.random.default_rng(0)
    save_pngs(tmp_path, [np.clip(rng.normal(128, 40, (96, 96, 3)), 0, 255).astype(np.uint8)], prefix="photo")
    result = ok(minigan("detect", "predict", "--model", work / "model.npz", tmp_path, cwd=work))
    assert "far from what the detector was trained on" in result.stderr
    assert "it is 96x96, the training images were 16x16" in result.stderr and "colour" in result.stderr
    assert "UserWarning" not in result.stderr


# ------------------------------------------------------------------ detect evaluate


@pytest.mark.slow  # scores two folders and plots
def test_evaluate_prints_accuracy_auc_and_tpr_and_writes_the_roc_plot(work, tmp_path):
    roc = tmp_path / "roc.png"
    result = ok(minigan("detect", "evaluate", "--model", work / "model.npz", "--real", work / "real", "--fake",
                        work / "fake", "--roc", roc, cwd=work))
    out = result.stdout
    assert "30 real and 30 fake images" in out
    values = {name: float(line.split()[-1]) for line in out.splitlines()
              for name in ("ROC AUC", "TPR at 1% FPR") if line.strip().startswith(name)}
    assert values["ROC AUC"] > 0.9 and 0 <= values["TPR at 1% FPR"] <= 1
    assert "accuracy at p(fake) >= 0.5" in out
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "skipped 2 file(s)" in result.stderr
    fails(minigan("detect", "evaluate", "--model", work / "model.npz", "--real", work / "real", "--fake",
                  tmp_path / "nothing", cwd=work), "need scored real and fake images")


# ------------------------------------------------------------------ benford FILE


def test_benford_on_an_image_tests_its_dct_coefficients(work, tmp_path):
    result = ok(minigan("benford", work / "real" / "img_0000.png", cwd=work))
    assert "is an image: testing its quantized 8x8 block DCT coefficients" in result.stdout
    assert "First digit test" in result.stdout
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"\x00\x01\x02" * 100)
    fails(minigan("benford", blob, cwd=work), "binary file")
    zeros = tmp_path / "zeros.txt"
    zeros.write_text("0 0 0")
    stderr = fails(minigan("benford", zeros, cwd=work), "none of the 3 value(s) has a first digit")
    assert "x has no value" not in stderr


@pytest.mark.slow  # a subprocess scan in chunks of 2
def test_predict_into_a_closed_pipe_ends_quietly(work):
    head = subprocess.Popen(["head", "-n", "2"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    proc = subprocess.run([sys.executable, "-m", "minigan", "detect", "predict", "--model", str(work / "model.npz"),
                           str(work / "real"), str(work / "fake"), "--chunk-files", "2"], cwd=work, env=_env(),
                          stdout=head.stdin, stderr=subprocess.PIPE, text=True, timeout=120)
    head.stdin.close()
    head.wait()
    assert proc.returncode in (0, 141) and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.slow  # a LocalCluster started by the test, reached through its address
@pytest.mark.dask
def test_predict_on_an_existing_scheduler(work, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import logging

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the workers' BLAS threads, as minigan detect runs them

    one = tmp_path / "one.csv"
    ok(minigan("detect", "predict", "--model", work / "model.npz", work / "real", "--csv", one, cwd=work))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        out = tmp_path / "cluster.csv"
        ok(minigan("detect", "predict", "--model", work / "model.npz", work / "real", "--csv", out, "--scheduler",
                   cluster.scheduler_address, cwd=work))
    assert {r["file"]: r for r in csv_rows(out)} == {r["file"]: r for r in csv_rows(one)}
    fails(minigan("detect", "predict", "--model", work / "model.npz", work / "real", "--scheduler",
                  "tcp://127.0.0.1:9", cwd=work, timeout=120), "cannot reach the Dask scheduler")
