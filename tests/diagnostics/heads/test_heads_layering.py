"""Layering of the heads code: diagnostics never import report; figures are pyplot-free."""

import ast
from pathlib import Path

import numpy as np

import flagalign
from flagalign.diagnostics.heads import composition, head_overlap
from flagalign.models.network import AttentionLayer, Network

SRC = Path(flagalign.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    pkg = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("import_module", "__import__")):
            out.add(str(node.args[0].value))  # importlib.import_module("flagalign.report...")
    return out


def test_heads_diagnostics_do_not_import_report_or_matplotlib():
    files = sorted((SRC / "diagnostics" / "heads").glob("*.py"))
    assert {f.name for f in files} >= {"overlap.py", "bases.py", "stats.py", "composition.py",
                                       "controls.py"}
    for f in files:
        bad = {m for m in _imports(f) if m.startswith(("flagalign.report", "matplotlib"))}
        assert not bad, f"{f.name} imports {sorted(bad)}"


def test_heads_figures_use_no_pyplot_state():
    text = (SRC / "report" / "heads_figures.py").read_text(encoding="utf-8")
    assert "matplotlib.pyplot" not in _imports(SRC / "report" / "heads_figures.py")
    assert "matplotlib.use" not in text


def _net(seed=0, L=3, d=24, H=4, dh=4):
    rng = np.random.default_rng(seed)
    arrays, atts = {}, []
    for i in range(L):
        for w, shape in (("q", (H * dh, d)), ("k", (H * dh, d)), ("v", (H * dh, d)),
                         ("o", (d, H * dh))):
            arrays[f"{w}{i}"] = rng.standard_normal(shape)
        atts.append(AttentionLayer(i, H, H, dh, d, f"q{i}", f"k{i}", f"v{i}", f"o{i}"))
    return Network.from_arrays(arrays, pairs=[], attention=atts)


def test_save_writes_pngs_without_opening_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    net = _net()
    files = head_overlap(net, "v", control="random-init").save(tmp_path)
    files += composition(net, "v").save(tmp_path)
    pngs = sorted(f.name for f in files if f.suffix == ".png")
    assert pngs == ["composition_v.png", "heads_overlap_v.png", "heads_redundancy_v.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files if f.suffix == ".png")
    assert plt.get_fignums() == before
