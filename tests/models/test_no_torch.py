"""The safetensors, HF-folder and GGUF paths work with torch made unimportable (subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flagalign.errors import SourceNotFoundError
from flagalign.models import aliases
from flagalign.models.synthetic import gpt2_tensors, write_folder

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import flagalign
    from flagalign.errors import MissingDependencyError
    from flagalign.models import aliases

    sources = [sys.argv[1]]
    for a in ("minilm", "smollm2"):
        try:
            aliases.alias_path(a)
            sources.append(a)
        except Exception:
            pass
    out = []
    for src in sources:
        net = flagalign.load(src)
        m = net.matrix(net.pairs[0].left)
        out.append(f"{net.architecture}:{len(net.pairs)}:{m.shape[0]}")
    try:
        flagalign.load(sys.argv[2])
    except MissingDependencyError:
        out.append("pth-refused")
    assert not [k for k, v in sys.modules.items() if v is not None and k.split(".")[0] == "torch"]
    print(" ".join(out))
    """)


@pytest.mark.realmodel
def test_safetensors_hf_gguf_without_torch(tmp_path):
    t, cfg = gpt2_tensors(np.random.default_rng(0))
    folder = write_folder(tmp_path / "gpt2", t, cfg)
    pth = tmp_path / "m.pth"
    pth.write_bytes(b"PK\x03\x04 not really a checkpoint")
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, folder, str(pth)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    words = r.stdout.split()
    assert words[0] == "gpt2:13:4" and words[-1] == "pth-refused"
    want = {"minilm": "bert:89:32", "smollm2": "llama:419:64"}
    installed = []
    for a in want:
        try:
            aliases.alias_path(a)
            installed.append(want[a])
        except SourceNotFoundError:
            pass
    assert words[1:-1] == installed
