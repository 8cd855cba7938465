"""examples/benford_detection.py end to end, on tiny GANs and a few dozen digits."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.benford, pytest.mark.gan]

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benford_detection.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("benford_detection_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(report: dict) -> dict:
    """Everything but the provenance (paths differ between runs)."""
    return {k: v for k, v in report.items() if k != "command"}


@pytest.mark.slow  # 8-15 s: two GANs trained for 3 iterations, 360 digits featurized twice, 8 charts
def test_script_trains_generators_then_reproduces_its_numbers_from_their_checkpoints(tmp_path, capsys):
    script = _load_script()
    first = tmp_path / "trained"
    report = script.main(["--out", str(first), "--n", "40", "--iterations", "3", "--seed", "5"])
    printed = capsys.readouterr().out

    for name in ("results.json", "results.md", "benford_chart.png", "roc.png", "roc_unseen.png", "roc_jpeg.png"):
        assert (first / name).stat().st_size > 0, name
    assert (first / "run_a" / "checkpoint.npz").exists() and (first / "run_b" / "checkpoint.npz").exists()
    assert len(list((first / "fakes_a").glob("*.png"))) == 40 and len(list((first / "fakes_b").glob("*.png"))) == 40
    on_disk = json.loads((first / "results.json").read_text())
    assert on_disk["sizes"] == {"train_real": 20, "train_fake": 20, "test_real": 20, "test_fake": 20, "unseen_fake": 40}
    for name in ("benford", "pixel"):
        r = on_disk[name]
        values = [*r["heldout"].values(), r["unseen_auc"], r["jpeg_auc_png_trained"], r["jpeg_auc_jpeg_trained"]]
        assert all(0.0 <= v <= 1.0 for v in values), r
    # generators trained for 3 iterations make noise: easy to tell from digits
    assert on_disk["benford"]["heldout"]["roc_auc"] > 0.9 and on_disk["pixel"]["heldout"]["roc_auc"] > 0.9
    assert "targets" not in on_disk and "met" not in printed  # the results only, no internal checklist
    assert "| benford |" in printed and "| pixel |" in printed
    assert (first / "results.md").read_text().count("| benford |") == 1

    # the same seed with the saved generators gives the same numbers, byte for byte in JSON
    second = tmp_path / "loaded"
    again = script.main([
        "--checkpoint", str(first / "run_a"), "--unseen", str(first / "run_b"), "--out", str(second),
        "--n", "40", "--seed", "5",
    ])
    assert json.dumps(_numbers(again), default=float) == json.dumps(_numbers(report), default=float)
    for name in ("00000.png", "00017.png", "00039.png"):
        assert (first / "fakes_a" / name).read_bytes() == (second / "fakes_a" / name).read_bytes()


def test_script_rejects_too_few_digits(tmp_path, capsys):
    script = _load_script()
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--n", "2"])
    assert "--n must be at least 4" in capsys.readouterr().err
