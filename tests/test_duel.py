"""minigan duel: the rounds, the record, resume and Ctrl-C (subprocesses), the table and the plot."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minigan.duel import DETECTORS, Duel, duel_figure

pytestmark = pytest.mark.cli

TINY = ["--iterations", "40", "--evade-iterations", "20", "--samples", "40", "--evade-images", "4", "--no-progress"]


def _minigan(*args, timeout=600, **kwargs):
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minigan", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, **kwargs)


def _row(k, auc, fid):
    scores = {name: {"roc_auc": auc + 0.01 * i, "tpr_at_1pct_fpr": auc / 2} for i, name in enumerate(DETECTORS)}
    row = {"round": k, "run": f"round_{k}", "iterations": 10 * (k + 1), "fid": fid, "after": scores}
    if k:
        row["before"] = {name: {"roc_auc": 0.6, "tpr_at_1pct_fpr": 0.1} for name in DETECTORS}
    return row


def test_duel_figure_draws_the_aucs_and_the_fid():
    rows = [_row(0, 0.99, 7.0), _row(1, 0.9, 8.0), _row(2, 0.8, 9.5)]
    figure = duel_figure(rows)
    auc_axes, fid_axes = figure.axes
    lines = {line.get_label(): line for line in auc_axes.get_lines()}
    np.testing.assert_allclose(lines["benford, refitted on the round's digits"].get_ydata(), [0.99, 0.9, 0.8])
    np.testing.assert_allclose(lines["pixel, refitted on the round's digits"].get_ydata(), [1.0, 0.91, 0.81])
    np.testing.assert_allclose(lines["benford, previous round's detector"].get_xdata(), [1, 2])
    np.testing.assert_allclose(lines["benford, previous round's detector"].get_ydata(), [0.6, 0.6])
    fid = {line.get_label(): line for line in fid_axes.get_lines()}
    np.testing.assert_allclose(fid["classifier FID"].get_ydata(), [7.0, 8.0, 9.5])
    np.testing.assert_allclose(fid["1.3 x round 0"].get_ydata(), [9.1, 9.1])


def test_duel_refuses_other_settings_and_writes_its_table(tmp_path):
    duel = Duel(tmp_path, {"samples": 40}, progress=False)
    duel.state["rounds"] = [_row(0, 0.99, 7.0), _row(1, 0.7, 8.0)]
    duel._save()
    table = Duel(tmp_path, {"samples": 40}, progress=False).table()
    assert "| 1 | 20 | 8.00 | 0.600 / 0.700 |" in table
    with pytest.raises(ValueError, match="samples: the duel has 40, now 50"):
        Duel(tmp_path, {"samples": 50})
    with pytest.raises(ValueError, match="samples"):
        Duel(tmp_path / "other", {"samples": 2})
    record = json.loads((tmp_path / "duel.json").read_text())
    record["format_version"] = 1
    (tmp_path / "duel.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="earlier minigan.*plain bce.*another --out"):
        Duel(tmp_path, {"samples": 40})


def test_duel_command_help_and_bad_input():
    done = _minigan("duel", "--help", timeout=60)
    assert done.returncode == 0 and "--rounds" in done.stdout and "--evade-iterations" in done.stdout
    done = _minigan("duel", "--out", "unused-dir", "--rounds", "-1", timeout=60)
    assert done.returncode == 1 and "rounds" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_duel_plays_rounds_and_continues(tmp_path):
    out = tmp_path / "duel"
    done = _minigan("duel", "--out", str(out), "--rounds", "1", *TINY)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads((out / "duel.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [0, 1]
    first, second = record["rounds"]
    assert "before" not in first and set(second["before"]) == set(DETECTORS) == set(second["after"])
    for row in record["rounds"]:
        assert row["fid"] > 0
        for scores in (row["after"], row.get("before", {})):
            for s in scores.values():
                assert 0.0 <= s["roc_auc"] <= 1.0 and 0.0 <= s["tpr_at_1pct_fpr"] <= 1.0
    assert second["iterations"] == 60
    assert (out / "duel.png").stat().st_size > 0
    config = json.loads((out / "round_1" / "config.json").read_text())
    assert config["settings"]["evade"].split(",") == [str((out / "round_0" / f"{n}_detector.npz").resolve())
                                                      for n in DETECTORS]
    assert [t["class"] for t in config["generator_terms"]] == ["DetectorTerm", "BenfordTerm"]
    # round 0 is the article's plain bce; the evading rounds train with minigan train's lazy R1
    first_config = json.loads((out / "round_0" / "config.json").read_text())
    assert first_config["settings"]["r1"] == 0.0 and first_config["generator_terms"] == []
    assert config["settings"]["r1"] > 0 and config["settings"]["r1_every"] > 1
    assert [t["class"] for t in config["discriminator_terms"]] == ["R1Penalty"]
    sample = _minigan("sample", "--checkpoint", str(out / "round_1"), "--n", "4", "--out", str(tmp_path / "s.npy"))
    assert sample.returncode == 0, sample.stderr
    assert np.load(tmp_path / "s.npy").shape == (4, 28, 28)
    stamps = {p: (out / p).stat().st_mtime_ns for p in ("round_0/checkpoint.npz", "round_1/checkpoint.npz",
                                                        "round_1/benford_detector.npz")}
    done = _minigan("duel", "--out", str(out), "--rounds", "2", *TINY)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "duel.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [0, 1, 2] and record["rounds"][2]["iterations"] == 80
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps  # done rounds are not redone
    other = _minigan("duel", "--out", str(out), "--rounds", "2", *TINY[:-1], "--seed", "3", "--no-progress")
    assert other.returncode == 1 and "other settings" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.slow
def test_duel_ctrl_c_keeps_what_is_done_and_the_command_continues(tmp_path):
    out = tmp_path / "duel"
    args = ["duel", "--out", str(out), "--rounds", "1", "--iterations", "40", "--evade-iterations", "400",
            "--samples", "40", "--evade-images", "2", "--no-progress"]
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "minigan", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    # The metrics log gets its header when round 1's training starts (its rows are flushed only
    # with grids and checkpoints, so counting rows would wait for the end of the round); the stop
    # handler is installed right after it, and 400 steps with the detectors' terms take seconds.
    metrics = out / "round_1" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not metrics.exists():
        time.sleep(0.05)
    time.sleep(1.0)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "run the same command again" in stdout
    record = json.loads((out / "duel.json").read_text())
    assert "after" in record["rounds"][0]
    assert len(record["rounds"]) == 1 or "iterations" not in record["rounds"][1]
    assert (out / "round_1" / "checkpoint.npz").exists()
    done = _minigan(*args)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "duel.json").read_text())
    assert record["rounds"][1]["iterations"] == 440 and "after" in record["rounds"][1]
