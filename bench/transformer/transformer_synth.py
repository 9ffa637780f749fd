#!/usr/bin/env python3
"""Writes a random-weight GGUF with the real shape of a transformer, for
timing only (the weights are noise; the outputs mean nothing).

Shapes:
  gemma3-4b   n_embd 2560, 34 layers, 8 heads, 4 KV heads, head dim 256,
              FFN 10240, vocab 262144, sliding window 1024 (period 6),
              RoPE bases 1e6 / 1e4, linear RoPE scaling 8, tied output
  gemma3-1b   n_embd 1152, 26 layers, 4 heads, 1 KV head, head dim 256,
              FFN 6912, vocab 262144, sliding window 512
  llama-1b    Llama 3.2 1B: n_embd 2048, 16 layers, 32 heads, 8 KV heads,
              FFN 8192, vocab 128256, tied output

Matrices are Q8_0 (or F16): for each block of 32 normal values x (std
1/sqrt(n_in)), d = max|x| / 127 stored as f16 and q = round(x / d), as
ggml's reference quantizer does. Norm weights are F32 ones. The file is
written tensor by tensor, so memory use stays small.

  python3 bench/transformer/transformer_synth.py --shape gemma3-4b /tmp/gemma3-4b-q8.gguf
"""
import argparse
import struct
import sys

import numpy as np

ALIGN = 32
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STR, GGUF_ARR = 4, 5, 6, 7, 8, 9

SHAPES = {
    "gemma3-4b": dict(arch="gemma3", n_embd=2560, n_layer=34, n_head=8, n_head_kv=4, head_dim=256, n_ff=10240,
                      n_vocab=262144, window=1024, ctx=131072, rope_base=1e6, rope_base_swa=1e4, rope_factor=8.0),
    "gemma3-1b": dict(arch="gemma3", n_embd=1152, n_layer=26, n_head=4, n_head_kv=1, head_dim=256, n_ff=6912,
                      n_vocab=262144, window=512, ctx=32768, rope_base=1e6, rope_base_swa=1e4, rope_factor=0.0),
    "llama-1b": dict(arch="llama", n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, head_dim=64, n_ff=8192,
                     n_vocab=128256, window=0, ctx=131072, rope_base=5e5, rope_base_swa=0, rope_factor=0.0),
}


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def metadata(shape):
    a = shape["arch"]
    kv = [("general.architecture", GGUF_STR, a), ("general.name", GGUF_STR, "synthetic-" + a),
          (a + ".context_length", GGUF_U32, shape["ctx"]),
          (a + ".embedding_length", GGUF_U32, shape["n_embd"]),
          (a + ".block_count", GGUF_U32, shape["n_layer"]),
          (a + ".feed_forward_length", GGUF_U32, shape["n_ff"]),
          (a + ".attention.head_count", GGUF_U32, shape["n_head"]),
          (a + ".attention.head_count_kv", GGUF_U32, shape["n_head_kv"]),
          (a + ".attention.key_length", GGUF_U32, shape["head_dim"]),
          (a + ".attention.value_length", GGUF_U32, shape["head_dim"]),
          (a + ".rope.dimension_count", GGUF_U32, shape["head_dim"]),
          (a + ".rope.freq_base", GGUF_F32, shape["rope_base"]),
          (a + ".attention.layer_norm_rms_epsilon", GGUF_F32, 1e-6)]
    if shape["window"]:
        kv += [(a + ".attention.sliding_window", GGUF_U32, shape["window"]),
               (a + ".rope.freq_base_swa", GGUF_F32, shape["rope_base_swa"])]
    if shape["rope_factor"]:
        kv += [(a + ".rope.scaling.type", GGUF_STR, "linear"),
               (a + ".rope.scaling.factor", GGUF_F32, shape["rope_factor"])]
    # A stand-in tokenizer (as `flatline synth` writes for RWKV): bytes as
    # tokens 0-255, padding after, so tools that need one (flatline bench) load.
    tokens = ["\\x%02x" % i if i < 256 else "[PAD%d]" % i for i in range(shape["n_vocab"])]
    kv += [("tokenizer.ggml.model", GGUF_STR, "rwkv"),
           ("tokenizer.ggml.tokens", GGUF_ARR, (GGUF_STR, tokens)),
           ("tokenizer.ggml.token_type", GGUF_ARR, (GGUF_I32, [1 if i < 256 else 5 for i in range(shape["n_vocab"])])),
           ("tokenizer.ggml.add_bos_token", GGUF_BOOL, False)]
    return kv


def gguf_value(vtype, value):
    if vtype == GGUF_STR:
        return gguf_string(value)
    if vtype == GGUF_U32:
        return struct.pack("<I", value)
    if vtype == GGUF_I32:
        return struct.pack("<i", value)
    if vtype == GGUF_BOOL:
        return struct.pack("<?", value)
    if vtype == GGUF_F32:
        return struct.pack("<f", value)
    etype, items = value
    if etype == GGUF_I32:
        body = np.asarray(items, dtype="<i4").tobytes()
    else:
        body = b"".join(gguf_value(etype, v) for v in items)
    return struct.pack("<IQ", etype, len(items)) + body


def tensors(shape):
    """(name, dims in ggml order, kind) with kind 'matrix' or 'norm'."""
    e, f, d = shape["n_embd"], shape["n_ff"], shape["head_dim"]
    q, kv = shape["n_head"] * d, shape["n_head_kv"] * d
    out = [("token_embd.weight", (e, shape["n_vocab"]), "matrix"), ("output_norm.weight", (e,), "norm")]
    for l in range(shape["n_layer"]):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", (e,), "norm"), (p + "attn_q.weight", (e, q), "matrix"),
                (p + "attn_k.weight", (e, kv), "matrix"), (p + "attn_v.weight", (e, kv), "matrix"),
                (p + "attn_output.weight", (q, e), "matrix")]
        if shape["arch"] == "gemma3":
            out += [(p + "attn_q_norm.weight", (d,), "norm"), (p + "attn_k_norm.weight", (d,), "norm"),
                    (p + "post_attention_norm.weight", (e,), "norm"), (p + "post_ffw_norm.weight", (e,), "norm")]
        out += [(p + "ffn_norm.weight", (e,), "norm"), (p + "ffn_gate.weight", (e, f), "matrix"),
                (p + "ffn_up.weight", (e, f), "matrix"), (p + "ffn_down.weight", (f, e), "matrix")]
    return out


def tensor_bytes(dims, kind, mtype):
    n = int(np.prod(dims))
    if kind == "norm":
        return n * 4
    return n // 32 * 34 if mtype == GGML_Q8_0 else n * 2


def quantize_q8_0(x):
    """ggml's reference Q8_0: per 32 values d = amax / 127 (f16), q = round(x / d)."""
    blocks = x.reshape(-1, 32)
    d = np.abs(blocks).max(axis=1) / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.round(blocks * inv[:, None]).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", 32)])
    out["d"] = d.astype(np.float16)
    out["qs"] = q
    return out.tobytes()


def write_matrix(f, dims, mtype, rng):
    n_in, n_out = dims
    std = 1.0 / np.sqrt(n_in)
    rows_per_chunk = max(1, (1 << 22) // n_in)
    for r in range(0, n_out, rows_per_chunk):
        rows = min(rows_per_chunk, n_out - r)
        x = rng.standard_normal(rows * n_in, dtype=np.float32) * np.float32(std)
        f.write(quantize_q8_0(x) if mtype == GGML_Q8_0 else x.astype(np.float16).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gemma3-4b")
    ap.add_argument("--type", choices=["q8_0", "f16"], default="q8_0")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    shape = SHAPES[args.shape]
    mtype = GGML_Q8_0 if args.type == "q8_0" else GGML_F16
    kv = metadata(shape)
    kv.append(("general.file_type", GGUF_U32, 7 if mtype == GGML_Q8_0 else 1))
    ts = tensors(shape)

    header = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(kv))
    for key, vtype, value in kv:
        header += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset = 0
    for name, dims, kind in ts:
        ttype = GGML_F32 if kind == "norm" else mtype
        header += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        header += struct.pack("<IQ", ttype, offset)
        offset += -(-tensor_bytes(dims, kind, mtype) // ALIGN) * ALIGN
    header += b"\0" * (-len(header) % ALIGN)

    rng = np.random.default_rng(args.seed)
    with open(args.output, "wb") as f:
        f.write(header)
        for i, (name, dims, kind) in enumerate(ts):
            if kind == "norm":
                f.write(np.ones(dims[0], dtype=np.float32).tobytes())
            else:
                write_matrix(f, dims, mtype, rng)
            f.write(b"\0" * (-f.tell() % ALIGN))
            if kind == "matrix":
                print(f"\r{i + 1}/{len(ts)} tensors", end="", file=sys.stderr, flush=True)
    print(f"\nwrote {args.output}: {offset / 1e9:.2f} GB of tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
