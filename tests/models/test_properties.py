"""Property tests (hypothesis): the safetensors reader against the safetensors package, and the
GGUF rotary un-permutation against llama.cpp's converter formula."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flagalign.models.architectures.llama import unpermute_rotary
from flagalign.models.sources.safetensors_file import open_safetensors

shapes = st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple)


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(shapes, min_size=1, max_size=4),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_safetensors_reader_matches_reference(tmp_path_factory, shapes, dtype, seed):
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(seed)
    tensors = {f"t{i}": (100 * rng.standard_normal(s)).astype(dtype) for i, s in enumerate(shapes)}
    path = str(tmp_path_factory.mktemp("st") / "x.safetensors")
    save_file(tensors, path)
    ref = load_file(path)
    src = open_safetensors(path)
    assert sorted(src.entries) == sorted(ref)
    for k, v in ref.items():
        assert src.entries[k].shape == v.shape and src.entries[k].dtype == dtype
        np.testing.assert_array_equal(src.load(k), v.astype(np.float64))


def _converter_permute(w, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py, LlamaModel.permute (verbatim logic)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@settings(max_examples=40, deadline=None)
@given(
    heads=st.integers(1, 6), half=st.integers(1, 5), cols=st.integers(1, 5), kv_div=st.sampled_from([1, 2, 3])
)
def test_unpermute_inverts_converter(heads, half, cols, kv_div):
    kv = max(1, heads // kv_div) if heads % kv_div == 0 else heads
    rng = np.random.default_rng(heads * 100 + half * 10 + cols)
    q = rng.standard_normal((heads * 2 * half, cols))
    k = rng.standard_normal((kv * 2 * half, cols))
    np.testing.assert_array_equal(unpermute_rotary(_converter_permute(q, heads, heads), heads), q)
    np.testing.assert_array_equal(unpermute_rotary(_converter_permute(k, heads, kv), kv), k)
    # the permutation keeps every row inside its head: per-head row sets are unchanged
    p = _converter_permute(q, heads, heads).reshape(heads, 2 * half, cols)
    for h in range(heads):
        assert sorted(map(tuple, p[h])) == sorted(map(tuple, q.reshape(heads, 2 * half, cols)[h]))
