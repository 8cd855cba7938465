"""The README's API tour runs as written (with a shorter training run)."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.gan
def test_api_tour_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    tour = blocks[0]
    assert "iterations=2000" in tour
    monkeypatch.chdir(tmp_path)
    exec(compile(tour.replace("iterations=2000", "iterations=5"), "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "api" / "checkpoint.npz").exists()


def test_the_two_commands_are_the_ones_ci_runs():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install ".[test]" && pytest' in text
    assert 'pip install --quiet ".[test]"' in ci and "\npytest\n" in ci
    assert "pip install . && minigan train" in text
