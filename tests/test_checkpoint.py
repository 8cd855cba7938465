"""Checkpoints: round trip, corrupt/truncated/foreign files, models that do not fit,
and Ctrl-C / SIGTERM during training (a real subprocess) followed by a resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minigan as mg
from minigan.checkpoint import load_checkpoint, save_checkpoint
from minigan.models import build_gan, load_gan, mlp_discriminator, mlp_generator
from minigan.serialization import FileFormatError, save_npz

pytestmark = pytest.mark.gan

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"architecture": "mlp", "latent_dim": 8, "image_shape": [8, 8], "g_hidden": [16], "d_hidden": [16],
            "seed": 0}


def make_gan(**changes) -> mg.GAN:
    return build_gan({**SETTINGS, **changes})


def make_data(n=64) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 8, 8)).astype(np.float32)


def states_equal(a: mg.GAN, b: mg.GAN) -> bool:
    sa, sb = a.state()[0], b.state()[0]
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    """A run trained for 3 iterations with build_gan settings recorded (so load_gan can rebuild it)."""
    run = tmp_path_factory.mktemp("good") / "run"
    make_gan().fit(make_data(), iterations=3, batch_size=16, out_dir=run, progress=False, config=SETTINGS)
    return run / "checkpoint.npz"


# ------------------------------------------------------------------ round trip
def test_round_trip_restores_everything(tmp_path):
    gan = make_gan(seed=5)
    for i in range(3):
        gan.train_step(make_data()[16 * i:16 * (i + 1)])
    path = save_checkpoint(tmp_path / "ck.npz", gan, meta={"note": "hello"})
    assert path == tmp_path / "ck.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary file left behind
    with zipfile.ZipFile(path) as archive:  # plain .npy members, readable without pickle
        assert all(name.endswith(".npy") for name in archive.namelist())
    with np.load(path, allow_pickle=False) as npz:
        assert "G/0.W" in npz.files
    arrays, meta = load_checkpoint(path)
    assert meta["iteration"] == 3 and meta["note"] == "hello" and "versions" in meta

    other = make_gan(seed=9)
    assert not states_equal(gan, other)
    other.load_state(arrays, meta)
    assert states_equal(gan, other) and other.iteration == 3
    assert other.rng.bit_generator.state == gan.rng.bit_generator.state
    # Both continue identically.
    batch = make_data()[:16]
    assert gan.train_step(batch) == other.train_step(batch)
    assert states_equal(gan, other)


def test_load_gan_rebuilds_a_recorded_run(good_checkpoint):
    gan = load_gan(good_checkpoint.parent)
    assert gan.iteration == 3 and gan.image_shape == (8, 8)
    arrays, _ = load_checkpoint(good_checkpoint)
    assert all(np.array_equal(arrays[k], v) for k, v in gan.state()[0].items())
    assert np.array_equal(load_gan(good_checkpoint).sample(4, seed=1), gan.sample(4, seed=1))


def test_load_gan_reads_a_run_trained_from_python(tmp_path):
    """A run made by GAN.fit with no settings passed records its networks and loads as it is."""
    gan = mg.GAN(mlp_generator(8, (8, 8), hidden=(12,), activation="tanh", rng=1),
                 mlp_discriminator((8, 8), hidden=(10, 6), dropout=0.3, rng=2), latent_dim=8, loss="lsgan", seed=4)
    gan.fit(make_data(), iterations=2, batch_size=16, out_dir=tmp_path / "run", progress=False)
    loaded = load_gan(tmp_path / "run")
    assert states_equal(loaded, gan) and loaded.loss_name == "lsgan" and loaded.iteration == 2
    assert [type(layer).__name__ for layer in loaded.discriminator.layers] == \
        ["Dense", "LeakyReLU", "Dropout", "Dense", "LeakyReLU", "Dropout", "Dense"]
    assert np.array_equal(loaded.sample(4, seed=1), gan.sample(4, seed=1))


def test_load_gan_explains_a_custom_layer_it_cannot_rebuild(tmp_path):
    from shared import Scale

    G = mg.Sequential([*mlp_generator(8, (8, 8), hidden=(12,), rng=1).layers[:-1], Scale(64).astype(np.float32),
                       mg.Tanh()])
    gan = mg.GAN(G, mlp_discriminator((8, 8), hidden=(10,), rng=2), latent_dim=8, seed=4)
    gan.fit(make_data(), iterations=2, batch_size=16, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(FileFormatError, match="Scale does not implement get_config"):
        load_gan(tmp_path / "run")


# ------------------------------------------------------------------ bad files
def _truncated(good: Path, dest: Path) -> None:
    data = good.read_bytes()
    dest.write_bytes(data[: len(data) // 2])


def _tail_cut(good: Path, dest: Path) -> None:
    dest.write_bytes(good.read_bytes()[:-10])


def _random_bytes(good: Path, dest: Path) -> None:
    dest.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _empty(good: Path, dest: Path) -> None:
    dest.write_bytes(b"")


def _plain_npz(good: Path, dest: Path) -> None:
    with open(dest, "wb") as handle:
        np.savez(handle, weights=np.ones(3))


def _npy(good: Path, dest: Path) -> None:
    with open(dest, "wb") as handle:
        np.save(handle, np.ones((2, 2)))


def _other_kind(good: Path, dest: Path) -> None:
    save_npz(dest, {"x": np.ones(2)}, {"iteration": 3}, kind="other")


def _missing_meta_keys(good: Path, dest: Path) -> None:
    arrays, meta = load_checkpoint(good)
    del meta["rng"], meta["minigan_format"]
    save_npz(dest, arrays, meta, kind="gan-checkpoint")


def _garbled_meta(good: Path, dest: Path) -> None:
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["__meta__"] = np.frombuffer(b"{not json", dtype=np.uint8)
    with open(dest, "wb") as handle:
        np.savez(handle, **arrays)


def _corrupted_member(good: Path, dest: Path) -> None:
    # Flip bytes in the middle of the (stored, uncompressed) weights: the zip CRC catches it.
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    dest.write_bytes(bytes(data))


BAD_FILES = {
    "truncated": (_truncated, "corrupt or truncated"),
    "tail_cut": (_tail_cut, "corrupt or truncated"),
    "random_bytes": (_random_bytes, "corrupt or truncated|not an .npz"),
    "empty": (_empty, "corrupt or truncated|not an .npz"),
    "plain_npz": (_plain_npz, "not a minigan"),
    "npy": (_npy, "bare .npy"),
    "other_kind": (_other_kind, "'other'"),
    "missing_meta_keys": (_missing_meta_keys, "'rng' is missing"),
    "garbled_meta": (_garbled_meta, "metadata"),
    "corrupted_member": (_corrupted_member, "corrupt"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_checkpoint_files_give_a_clear_error(case, good_checkpoint, tmp_path):
    make, pattern = BAD_FILES[case]
    dest = tmp_path / ("bad.npy" if case == "npy" else "bad.npz")
    make(good_checkpoint, dest)
    with pytest.raises(FileFormatError, match=pattern) as info:
        load_checkpoint(dest)
    assert str(dest) in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError see it too
    with pytest.raises(FileFormatError):
        load_gan(dest)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.npz")


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"g_hidden": [24]}, "does not fit"),
        ({"d_hidden": [24]}, "does not fit"),
        ({"latent_dim": 4}, "latent_dim"),
        ({"loss": "wgan"}, "loss"),
        ({"image_shape": [4, 16]}, "image_shape"),
        ({"dtype": "float64"}, "dtype"),
    ],
)
def test_a_checkpoint_of_another_model_is_refused_and_nothing_changes(good_checkpoint, changes, pattern):
    arrays, meta = load_checkpoint(good_checkpoint)
    gan = make_gan(**changes)
    before = gan.state()[0]
    with pytest.raises(ValueError, match=pattern):
        gan.load_state(arrays, meta, source=str(good_checkpoint))
    after = gan.state()[0]
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert changed == [], f"a refused checkpoint was half-loaded into {changed[:4]}"
    assert gan.iteration == 0


def test_a_checkpoint_with_nan_weights_is_refused(good_checkpoint, tmp_path):
    arrays, meta = load_checkpoint(good_checkpoint)
    arrays["G/0.W"] = arrays["G/0.W"].copy()
    arrays["G/0.W"][0, 0] = np.nan
    del meta["minigan_format"]
    save_npz(tmp_path / "nan.npz", arrays, meta, kind="gan-checkpoint")
    with pytest.raises(ValueError, match="NaN"):
        make_gan().load_state(*load_checkpoint(tmp_path / "nan.npz"))


# ------------------------------------------------------------------ Ctrl-C and SIGTERM
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np

    from minigan.models import build_gan

    run, iterations, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    gan = build_gan({settings!r})
    data = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8)).astype(np.float32)
    result = gan.fit(data, iterations=iterations, batch_size=16, out_dir=run, checkpoint_every=50,
                     sample_every=0, progress=False, resume=resume)
    sys.exit({{"SIGINT": 130, "SIGTERM": 143}}.get(result.interrupted, 0))
    """
).format(settings=SETTINGS)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("MINIGAN_DEBUG", None)
    return env


def _metrics_rows(path: Path) -> list[int]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines if line.strip()]


@pytest.mark.cli
@pytest.mark.parametrize("sig, code", [pytest.param(signal.SIGINT, 130, id="SIGINT"),
                                       pytest.param(signal.SIGTERM, 143, id="SIGTERM")])
@pytest.mark.slow
def test_a_signal_saves_a_checkpoint_and_the_run_resumes(tmp_path, sig, code):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run), "100000000", "fresh"], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _metrics_rows(run / "metrics.csv"):
            assert proc.poll() is None, f"training stopped early: {proc.communicate()}"
            assert time.monotonic() < deadline, "no metrics rows within 120 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err, err
    assert f"stopped by {sig.name}" in out

    arrays, meta = load_checkpoint(run)
    rows = _metrics_rows(run / "metrics.csv")
    stopped_at = meta["iteration"]
    assert rows == list(range(1, stopped_at + 1))  # every finished iteration logged, once, up to the stop
    assert stopped_at >= 50

    target = stopped_at + 7
    resumed = subprocess.run([sys.executable, str(script), str(run), str(target), "resume"], cwd=tmp_path,
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert load_checkpoint(run)[1]["iteration"] == target
    assert _metrics_rows(run / "metrics.csv") == list(range(1, target + 1))
    if sig == signal.SIGINT:
        # Stopped by a signal, resumed: the same weights as an uninterrupted run.
        straight = make_gan()
        straight.fit(np.random.default_rng(0).uniform(-1, 1, (64, 8, 8)).astype(np.float32), iterations=target,
                     batch_size=16, out_dir=tmp_path / "straight", checkpoint_every=50, sample_every=0,
                     progress=False)
        assert states_equal(load_gan_from(run), straight)


def load_gan_from(run: Path) -> mg.GAN:
    gan = make_gan()
    gan.load_state(*load_checkpoint(run))
    return gan
