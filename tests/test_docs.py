"""The README runs: every ```python block in it is executed, in order, in one namespace.
Docstring examples of the public entry points run too."""

import doctest
import re
from pathlib import Path

import pytest

import dropkit.mc.mode

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text())
    assert blocks, "the README should show runnable examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {i} failed: {err!r}\n{block}")


@pytest.mark.parametrize("module", [dropkit.mc.mode])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
