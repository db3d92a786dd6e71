"""docs/tutorial.md runs as written: every ```python block is a doctest (< 30 s)."""

import doctest
import re
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def test_tutorial_runs():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import threadpoolctl

    text = TUTORIAL.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4, "the tutorial lost its code blocks"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    globs: dict = {}
    with threadpoolctl.threadpool_limits(1):
        for i, block in enumerate(blocks):  # one namespace: later blocks use earlier names
            test = parser.get_doctest(block, globs, f"tutorial[{i}]", str(TUTORIAL), 0)
            result = runner.run(test, out=lambda s: print(s, end=""), clear_globs=False)
            globs.update(test.globs)  # DocTest copies globs: carry the names on by hand
            assert result.attempted > 0 and result.failed == 0, f"block {i}: {result.failed} failed"
