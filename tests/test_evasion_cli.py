"""``minigan train --benford-weight W --evade DETECTOR.npz``: the settings, the record, resume and sample."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minigan.benford import BenfordDetector, PixelDetector
from minigan.models import build_gan
from minigan.settings import resolve
from shared import textured

pytestmark = [pytest.mark.cli, pytest.mark.benford]


def _minigan(*args, cwd, timeout=300):
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MINIGAN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "minigan", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _ok(done):
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    """Detector files of 28x28 digits, fitted in a moment on a few images."""
    folder = tmp_path_factory.mktemp("detectors")
    real = textured(16, size=28, seed=1)
    fake = textured(16, size=28, seed=2) // 2 + 2
    images, labels = np.concatenate([real, fake]), np.r_[np.zeros(16, np.int64), np.ones(16, np.int64)]
    BenfordDetector(epochs=2, jpeg_augment=None, bases=(10,), quality_factors=(90,)).fit(images, labels).save(
        folder / "benford.npz")
    PixelDetector(epochs=2).fit(images, labels).save(folder / "pixel.npz")
    return folder


def test_settings_add_the_terms_in_order(detectors):
    paths = f"{detectors / 'benford.npz'},{detectors / 'pixel.npz'}"
    gan = build_gan({"benford_weight": 0.5, "evade": paths, "evade_weight": 0.3, "evade_images": 4})
    evade, benford = gan.generator_terms
    assert type(evade).__name__ == "DetectorTerm" and type(benford).__name__ == "BenfordTerm"
    assert evade.weight == 0.3 and evade.max_images == 4 and benford.weight == 0.5
    assert gan.log_names[-5:] == ("evade_benford", "evade_pixel", "benford", "benford_digits", "benford_shares")
    assert build_gan({"benford_weight": 0.5, "evade": paths}, terms=False).generator_terms == []
    assert build_gan({}).generator_terms == []
    resolved = resolve({"evade": "a.npz, b.npz"})
    assert resolved["evade"] == f"{os.path.abspath('a.npz')},{os.path.abspath('b.npz')}"
    with pytest.raises(ValueError, match="benford_weight"):
        resolve({"benford_weight": -1.0})
    with pytest.raises(ValueError, match="evade must name at least one"):
        resolve({"evade": " , "})


@pytest.mark.slow
def test_train_with_the_terms_records_resumes_and_samples(detectors, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'benford_weight = 0.5\nevade = "{detectors / "pixel.npz"}"\nevade_images = 4\n')
    _ok(_minigan("train", "--config", config, "--evade-weight", "0.2", "--iterations", 4, "--batch-size", 16,
                 "--sample-every", 0, "--no-progress", "--out", "run", cwd=tmp_path))
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["settings"]["benford_weight"] == 0.5 and record["settings"]["evade_weight"] == 0.2
    terms = record["generator_terms"]
    assert [t["class"] for t in terms] == ["DetectorTerm", "BenfordTerm"]
    assert terms[0]["config"]["detectors"] == [str((detectors / "pixel.npz").resolve())]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"evade_pixel", "benford", "benford_digits", "benford_shares"} <= set(header)
    _ok(_minigan("train", "--resume", "--iterations", 6, "--no-progress", "--out", "run", cwd=tmp_path))
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 7
    copy = tmp_path / "pixel_copy.npz"
    copy.write_bytes((detectors / "pixel.npz").read_bytes())
    changed = _minigan("train", "--resume", "--evade", copy, "--iterations", 8, "--no-progress", "--out", "run",
                       cwd=tmp_path)
    assert changed.returncode == 1 and "--evade" in changed.stderr and "Traceback" not in changed.stderr
    # sampling needs no detector: the terms are left out
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    _ok(_minigan("sample", "--checkpoint", tmp_path / "run", "--n", 3, "--out", moved / "s.npy", cwd=moved))
    assert np.load(moved / "s.npy").shape == (3, 28, 28)


def test_a_missing_detector_is_a_clean_error(tmp_path):
    done = _minigan("train", "--evade", "no_such_detector.npz", "--iterations", 2, "--no-progress", "--out", "r",
                    cwd=tmp_path)
    assert done.returncode == 1 and "detector file not found" in done.stderr and "Traceback" not in done.stderr
