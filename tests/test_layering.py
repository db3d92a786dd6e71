"""Package layering (docs/architecture.md): no import cycle (function-local imports included),
dependencies point downward, ``diagnostics`` never imports ``report``, no ``matplotlib.use`` in
library code."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flagalign"
#: Attention-heads files being restructured separately (diagnostics/heads/); drop once moved.
PENDING: set[str] = set()  # every module follows the layering now


def _modules():
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = p
    return out


def _imports(name, path, module_level=True, mods=None):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if module_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:  # ``from pkg import submodule`` depends on the submodule only
                sub = f"{base}.{a.name}"
                found.add(sub if mods is not None and sub in mods else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                found.add(str(node.args[0].value))
    return {f for f in found if f.startswith("flagalign")}


def test_no_import_cycle_even_through_function_local_imports():
    mods = _modules()
    graph = {m: {d for d in _imports(m, p, module_level=False, mods=mods) if d in mods and d != m}
             for m, p in mods.items()}
    state = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, "import cycle: " + " -> ".join(stack + [m, d])
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_dependencies_point_downward():
    mods = _modules()
    for m, p in mods.items():
        rel = str(p.relative_to(SRC))
        deps = _imports(m, p, module_level=False)
        if m.startswith("flagalign.geometry"):
            bad = [d for d in deps if d.split(".")[1] in
                   ("diagnostics", "models", "report", "commands", "experiments")]
            assert not bad, (m, bad)
        if m.startswith("flagalign.diagnostics") and rel not in PENDING:
            assert not [d for d in deps if d.startswith("flagalign.report")], m


def test_no_matplotlib_use_in_library_code():
    for p in SRC.rglob("*.py"):
        rel = str(p.relative_to(SRC))
        if rel.startswith("commands/") or rel in PENDING:
            continue  # the CLI may choose a backend
        assert "matplotlib.use(" not in p.read_text(encoding="utf-8"), rel
