"""The README's API tour runs as written (with a shorter training run)."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.gan
@pytest.mark.parametrize("index", [0, 1], ids=["api tour", "the loop's parts"])
def test_python_examples_run(index, tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "the README's python examples are missing"
    block = blocks[index]
    assert "iterations=2000" in block
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("iterations=2000", "iterations=5"), "README.md", "exec"), {"__name__": "readme"})
    assert any((tmp_path / "runs").glob("*/checkpoint.npz"))


def test_the_two_commands_are_the_ones_ci_runs():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install ".[test]" && pytest' in text
    assert 'pip install --quiet ".[test]"' in ci and "\npytest\n" in ci
    assert "pip install . && minigan train" in text
