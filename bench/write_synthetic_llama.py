"""Write a synthetic bf16 Llama (random init) as ``model.safetensors`` + ``config.json``, streaming.

Default shape: TinyLlama-1.1B (d = 2048, ffn 5632, 22 layers, 32 query / 4 kv heads, vocab
32000; ~2.2 GB of bf16). Each tensor is generated, rounded to bfloat16 (round to nearest even)
and written in row chunks of ~4 M entries, so peak memory is a few tens of MB whatever the shape
(never the whole model, never 2× a tensor). Weights are N(0, 0.02²) as in HF's Llama init; norm
weights are 1. Deterministic for a given ``--seed`` (one generator per tensor, seeded by name).

Usage:
  python bench/write_synthetic_llama.py OUT_DIR [--layers 22] [--d 2048] [--ffn 5632]
         [--heads 32] [--kv-heads 4] [--vocab 32000] [--seed 0] [--std 0.02]
e.g. a 2-layer file of the 1.1B shape: ``--layers 2``; a d = 1024 model: ``--d 1024 --ffn 2816
--heads 16 --kv-heads 2``. Needs only numpy (no torch, no safetensors package).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import zlib

import numpy as np

CHUNK = 1 << 22  # entries generated at once


def llama_shapes(layers: int, d: int, ffn: int, heads: int, kv: int, vocab: int) -> list:
    """(name, shape) in HF Llama order."""
    hd = d // heads
    out = [("model.embed_tokens.weight", (vocab, d))]
    for i in range(layers):
        L = f"model.layers.{i}"
        out += [
            (f"{L}.input_layernorm.weight", (d,)),
            (f"{L}.self_attn.q_proj.weight", (heads * hd, d)),
            (f"{L}.self_attn.k_proj.weight", (kv * hd, d)),
            (f"{L}.self_attn.v_proj.weight", (kv * hd, d)),
            (f"{L}.self_attn.o_proj.weight", (d, heads * hd)),
            (f"{L}.post_attention_layernorm.weight", (d,)),
            (f"{L}.mlp.gate_proj.weight", (ffn, d)),
            (f"{L}.mlp.up_proj.weight", (ffn, d)),
            (f"{L}.mlp.down_proj.weight", (d, ffn)),
        ]
    out += [("model.norm.weight", (d,)), ("lm_head.weight", (vocab, d))]
    return out


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def write(out_dir: str, layers=22, d=2048, ffn=5632, heads=32, kv=4, vocab=32000, seed=0,
          std=0.02) -> str:
    """Write the model; returns the folder."""
    os.makedirs(out_dir, exist_ok=True)
    shapes = llama_shapes(layers, d, ffn, heads, kv, vocab)
    header, off = {}, 0
    for name, shape in shapes:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    header["__metadata__"] = {"format": "pt", "generator": "flagalign bench/write_synthetic_llama.py"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    path = os.path.join(out_dir, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape in shapes:
            count = int(np.prod(shape))
            if len(shape) == 1:
                f.write(to_bf16_bits(np.ones(count, np.float32)).tobytes())
                continue
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            done = 0
            while done < count:
                n = min(CHUNK, count - done)
                f.write(to_bf16_bits(rng.standard_normal(n, dtype=np.float32) * np.float32(std)).tobytes())
                done += n
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": d,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-5,
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return out_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02)
    a = ap.parse_args(argv)
    t = time.perf_counter()
    write(a.out, a.layers, a.d, a.ffn, a.heads, a.kv_heads, a.vocab, a.seed, a.std)
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print(f"wrote {a.out} ({size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
