"""Tiny synthetic models with random weights, written with numpy + safetensors only (no torch).

Public helpers for tests and examples (docs/formats.md, "Synthetic models"):

* :func:`write_folder` — any name → array mapping as an HF-style folder;
* :func:`gpt2_tensors`, :func:`llama_tensors` — HF GPT-2 (Conv1D layout) / Llama (GQA) state dicts
  and configs; :func:`mlp_tensors` — a plain MLP ``layers.<i>.weight/bias`` (paired sequentially).
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["write_folder", "write_safetensors", "gpt2_tensors", "llama_tensors", "mlp_tensors"]


def write_safetensors(path, tensors: dict) -> str:
    """Write ``tensors`` (name → array, stored as float32) to one ``.safetensors`` file."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path))
    return str(path)


def mlp_tensors(rng, sizes=(8, 16, 12, 4)) -> dict:
    """``layers.<i>.weight`` (out, in) and ``layers.<i>.bias`` for the layer sizes given."""
    t = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        t[f"layers.{i}.weight"] = rng.standard_normal((b, a))
        t[f"layers.{i}.bias"] = rng.standard_normal(b)
    return t


def write_folder(path, tensors: dict, config: dict) -> str:
    """Write ``tensors`` (name → array) as ``model.safetensors`` + ``config.json`` in ``path``."""
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "model.safetensors"), tensors)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return str(path)


def gpt2_tensors(rng, layers=2, d=16, heads=4, vocab=11, ctx=8):
    t = {
        "wte.weight": rng.standard_normal((vocab, d)),
        "wpe.weight": rng.standard_normal((ctx, d)),
        "ln_f.weight": rng.standard_normal(d),
        "ln_f.bias": rng.standard_normal(d),
    }
    for n in range(layers):
        L = f"h.{n}"
        t.update(
            {
                f"{L}.ln_1.weight": 1 + 0.1 * rng.standard_normal(d),
                f"{L}.ln_1.bias": rng.standard_normal(d),
                f"{L}.attn.c_attn.weight": rng.standard_normal((d, 3 * d)),
                f"{L}.attn.c_attn.bias": rng.standard_normal(3 * d),
                f"{L}.attn.c_proj.weight": rng.standard_normal((d, d)),
                f"{L}.attn.c_proj.bias": rng.standard_normal(d),
                f"{L}.ln_2.weight": 1 + 0.1 * rng.standard_normal(d),
                f"{L}.ln_2.bias": rng.standard_normal(d),
                f"{L}.mlp.c_fc.weight": rng.standard_normal((d, 4 * d)),
                f"{L}.mlp.c_fc.bias": rng.standard_normal(4 * d),
                f"{L}.mlp.c_proj.weight": rng.standard_normal((4 * d, d)),
                f"{L}.mlp.c_proj.bias": rng.standard_normal(d),
            }
        )
    cfg = {
        "model_type": "gpt2",
        "n_embd": d,
        "n_head": heads,
        "n_layer": layers,
        "vocab_size": vocab,
        "n_positions": ctx,
        "architectures": ["GPT2LMHeadModel"],
    }
    return t, cfg


def llama_tensors(rng, layers=2, d=32, heads=4, kv_heads=2, d_ff=48, vocab=13):
    hd = d // heads
    t = {
        "model.embed_tokens.weight": rng.standard_normal((vocab, d)),
        "model.norm.weight": rng.standard_normal(d),
        "lm_head.weight": rng.standard_normal((vocab, d)),
    }
    for n in range(layers):
        L = f"model.layers.{n}"
        t.update(
            {
                f"{L}.input_layernorm.weight": 1 + 0.1 * rng.standard_normal(d),
                f"{L}.self_attn.q_proj.weight": rng.standard_normal((heads * hd, d)),
                f"{L}.self_attn.k_proj.weight": rng.standard_normal((kv_heads * hd, d)),
                f"{L}.self_attn.v_proj.weight": rng.standard_normal((kv_heads * hd, d)),
                f"{L}.self_attn.o_proj.weight": rng.standard_normal((d, heads * hd)),
                f"{L}.post_attention_layernorm.weight": 1 + 0.1 * rng.standard_normal(d),
                f"{L}.mlp.gate_proj.weight": rng.standard_normal((d_ff, d)),
                f"{L}.mlp.up_proj.weight": rng.standard_normal((d_ff, d)),
                f"{L}.mlp.down_proj.weight": rng.standard_normal((d, d_ff)),
            }
        )
    cfg = {
        "model_type": "llama",
        "hidden_size": d,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": d_ff,
        "num_hidden_layers": layers,
        "vocab_size": vocab,
        "architectures": ["LlamaForCausalLM"],
    }
    return t, cfg
