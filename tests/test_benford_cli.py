"""The ``benford`` and ``detect`` sub-commands, driven through a small argparse parser."""
from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest

from minigan.benford.cli import add_benford_command, add_detect_command
from minigan.benford.io import read_numbers
from shared import textured

pytestmark = [pytest.mark.benford, pytest.mark.cli]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="minigan")
    sub = parser.add_subparsers(dest="command", required=True)
    add_benford_command(sub)
    add_detect_command(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def benford_numbers(n: int = 3000, seed: int = 0) -> np.ndarray:
    return 10 ** np.random.default_rng(seed).uniform(-1, 5, n)


# ---------------------------------------------------------------------------
# reading numbers


def test_read_csv_with_header_by_name_and_index(tmp_path):
    path = tmp_path / "ledger.csv"
    path.write_text('id,amount,note\n1,"1,234.50",a\n2,$17,b\n3,(45),c\n4,,d\n5,n/a,e\n')
    values, skipped = read_numbers(path, "amount")
    assert values.tolist() == [1234.5, 17.0, -45.0] and skipped == 2
    values, _ = read_numbers(path, "1")
    assert values.tolist() == [1234.5, 17.0, -45.0]
    with pytest.raises(ValueError, match="choose one with --column"):
        read_numbers(path)
    with pytest.raises(ValueError, match="no column 'total'"):
        read_numbers(path, "total")
    with pytest.raises(ValueError, match="out of range"):
        read_numbers(path, "7")


def test_read_csv_without_header_semicolons_and_big_integers(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("12;7\n999999999999999999;3\n")
    values, skipped = read_numbers(path, 0)
    assert values.dtype == np.int64 and values.tolist() == [12, 999999999999999999] and skipped == 0
    single = tmp_path / "single.csv"
    single.write_text("value\n3\n0.5\n")
    assert read_numbers(single)[0].tolist() == [3.0, 0.5]


def test_read_npy_and_text(tmp_path):
    arr = np.arange(1, 13, dtype=np.int32).reshape(4, 3)
    np.save(tmp_path / "a.npy", arr)
    assert read_numbers(tmp_path / "a.npy")[0].tolist() == list(range(1, 13))
    assert read_numbers(tmp_path / "a.npy", "2")[0].tolist() == [3, 6, 9, 12]
    (tmp_path / "n.txt").write_text("1 2.5\n3e2, 4;hello\n")
    values, skipped = read_numbers(tmp_path / "n.txt")
    assert values.tolist() == [1, 2.5, 300, 4] and skipped == 1
    (tmp_path / "empty.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="no numbers"):
        read_numbers(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError):
        read_numbers(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------
# benford FILE


def test_benford_command_prints_table_and_label(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, benford_numbers())
    assert run(["benford", str(path)]) == 0
    out = capsys.readouterr().out
    assert "First digit test, base 10" in out and "close conformity" in out and "MAD" in out


def test_benford_command_options_and_plot(tmp_path, capsys):
    path = tmp_path / "x.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "value"])
        writer.writerows([f"r{i}", f"{v:.6g}"] for i, v in enumerate(benford_numbers(2000, 1)))
    png = tmp_path / "chart.png"
    assert run(["benford", str(path), "--column", "value", "--test", "first_two", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "First two digits test" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(["benford", str(path), "--column", "value", "--base", "20"]) == 0
    assert "base 20" in capsys.readouterr().out


def test_benford_command_errors(tmp_path, capsys):
    assert run(["benford", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err
    zeros = tmp_path / "zeros.txt"
    zeros.write_text("0 0 0")
    assert run(["benford", str(zeros)]) == 1
    assert "all zero" in capsys.readouterr().err
    assert run(["benford", str(zeros), "--base", "2"]) == 1
    assert "base must be >= 3" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# detect fit / predict


def save_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img_{i:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    real = textured(24, 16, seed=1)
    fake = np.clip(textured(24, 16, seed=2).astype(int) + 40 * (np.indices((16, 16)).sum(0) % 2), 0, 255)
    save_pngs(root / "real", real)
    save_pngs(root / "fake", fake.astype(np.uint8))
    (root / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.mark.parametrize("kind", ["pixel", "benford"])
def test_detect_fit_and_predict(folders, tmp_path, capsys, kind):
    model = tmp_path / f"{kind}.npz"
    code = run(["detect", "fit", "--real", str(folders / "real"), "--fake", str(folders / "fake"),
                "--kind", kind, "--out", str(model), "--epochs", "15"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "broken.png" in captured.err and model.is_file()
    out_csv = tmp_path / "scores.csv"
    files = [str(folders / "real" / "img_000.png"), str(folders / "fake"), str(tmp_path / "missing.png")]
    assert run(["detect", "predict", "--model", str(model), *files]) == 0
    captured = capsys.readouterr()
    assert "p(fake)" in captured.out and "missing.png" in captured.err and "broken.png" in captured.err
    assert run(["detect", "predict", "--model", str(model), *files, "--csv", str(out_csv)]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 1 + 24 + 2  # the broken and the missing file get a row with their status
    assert rows[0]["file"].endswith("img_000.png") and rows[0]["verdict"] in ("real", "fake")
    scored = [r for r in rows if r["status"] == "ok"]
    assert len(scored) == 25 and all(0.0 <= float(r["p_fake"]) <= 1.0 for r in scored)
    if kind == "pixel":  # the checkerboard is plain to see
        assert sum(r["verdict"] == "fake" for r in scored[1:]) >= 20


def test_detect_predict_errors(folders, tmp_path, capsys):
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, a=np.zeros(2))
    assert run(["detect", "predict", "--model", str(bogus), str(folders / "real")]) == 1
    assert "not a minigan detector" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["detect", "fit", "--real", str(empty), "--fake", str(folders / "fake"), "--out", str(tmp_path / "m.npz")]) == 1
    assert "0 real" in capsys.readouterr().err


def test_python_m_minigan_benford(tmp_path):
    """Through the real entry point, once the lead has wired the sub-command into minigan/cli.py."""
    import importlib.util
    import os
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec("minigan.cli") is None:
        pytest.skip("minigan/cli.py does not exist yet")
    path = tmp_path / "x.txt"
    path.write_text("\n".join(f"{v:.8g}" for v in benford_numbers(1000, 4)))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "minigan", "benford", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode == 2 and "invalid choice" in proc.stderr:
        pytest.skip("the benford sub-command is not wired into minigan/cli.py yet")
    assert proc.returncode == 0, proc.stderr
    assert "First digit test" in proc.stdout
