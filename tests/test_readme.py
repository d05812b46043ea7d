"""The README's Python examples run as written, in order, as a reader would paste them into one session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_python_examples_run_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(BLOCKS) >= 2
    namespace: dict[str, object] = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        if "print(" in block:
            assert capsys.readouterr().out.strip(), f"block {index} printed nothing"
