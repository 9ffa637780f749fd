#!/usr/bin/env python3
"""Writes a tiny random-weight RWKV-7 GGUF (llama.cpp layout) for the client
tests, with the standard library only, so they run without ../shared.

Same shapes as tests/server_test_support.h: 64-wide, 2 layers, one 64-dim
head, vocabulary = printable ASCII + newline (one byte per token).
usage: make_random_rwkv7.py OUT.gguf [SEED]
"""
import random
import struct
import sys

GGUF_STRING, GGUF_ARRAY, GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32, GGUF_BOOL = 8, 9, 4, 5, 6, 7
ALIGN = 32


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STRING:
        out += gguf_string(value)
    elif vtype == GGUF_UINT32:
        out += struct.pack("<I", value)
    elif vtype == GGUF_FLOAT32:
        out += struct.pack("<f", value)
    elif vtype == GGUF_BOOL:
        out += struct.pack("<?", value)
    elif vtype == GGUF_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        for item in items:
            out += gguf_string(item) if etype == GGUF_STRING else struct.pack("<i", item)
    return out


def main():
    path = sys.argv[1]
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    D, F, R, L = 64, 128, 8, 2
    vocab = [("\\\\" if c == "\\" else c) for c in map(chr, range(32, 127))] + ["\\n"]
    V = len(vocab)
    meta = [
        kv("general.architecture", GGUF_STRING, "rwkv7"),
        kv("general.name", GGUF_STRING, "random-rwkv7-client-test"),
        kv("rwkv7.context_length", GGUF_UINT32, 1048576),
        kv("rwkv7.embedding_length", GGUF_UINT32, D),
        kv("rwkv7.block_count", GGUF_UINT32, L),
        kv("rwkv7.attention.layer_norm_epsilon", GGUF_FLOAT32, 1e-5),
        kv("rwkv7.wkv.head_size", GGUF_UINT32, 64),
        kv("rwkv7.attention.decay_lora_rank", GGUF_UINT32, R),
        kv("rwkv7.attention.iclr_lora_rank", GGUF_UINT32, R),
        kv("rwkv7.attention.value_residual_mix_lora_rank", GGUF_UINT32, R),
        kv("rwkv7.attention.gate_lora_rank", GGUF_UINT32, R),
        kv("rwkv7.feed_forward_length", GGUF_UINT32, F),
        kv("tokenizer.ggml.model", GGUF_STRING, "rwkv"),
        kv("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, vocab)),
        kv("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_INT32, [1] * V)),
        kv("tokenizer.ggml.add_bos_token", GGUF_BOOL, False),
    ]
    tensors = []  # (name, dims, scale, offset)

    def t(name, dims, scale, offset=0.0):
        tensors.append((name, dims, scale, offset))

    t("token_embd.weight", [D, V], 1.0)
    t("token_embd_norm.weight", [D], 0.1, 1.0)
    t("token_embd_norm.bias", [D], 0.1)
    for l in range(L):
        p = "blk.%d." % l
        for n in ("attn_norm", "attn_norm_2", "time_mix_ln"):
            t(p + n + ".weight", [D], 0.1, 1.0)
            t(p + n + ".bias", [D], 0.1)
        t(p + "time_mix_w0.weight", [D], 0.5, -0.5)
        for n in ("a0", "v0"):
            t(p + "time_mix_%s.weight" % n, [D], 0.5)
        for n in ("w", "a", "v", "g"):
            t(p + "time_mix_%s1.weight" % n, [D, R], 0.1)
            t(p + "time_mix_%s2.weight" % n, [R, D], 0.1)
        t(p + "time_mix_lerp_fused.weight", [D, 1, 1, 6], 0.5, 0.5)
        t(p + "time_mix_k_k.weight", [D], 0.5, 0.5)
        t(p + "time_mix_k_a.weight", [D], 0.5, 0.5)
        t(p + "time_mix_r_k.weight", [D], 0.5)
        for n in ("key", "value", "receptance", "output"):
            t(p + "time_mix_%s.weight" % n, [D, D], 0.2)
        t(p + "channel_mix_lerp_k.weight", [D, 1, 1], 0.5, 0.5)
        t(p + "channel_mix_key.weight", [D, F], 0.2)
        t(p + "channel_mix_value.weight", [F, D], 0.2)
    t("output_norm.weight", [D], 0.1, 1.0)
    t("output_norm.bias", [D], 0.1)
    t("output.weight", [D, V], 1.0)

    infos, blobs, offset = b"", [], 0
    for name, dims, scale, off in tensors:
        n = 1
        for d in dims:
            n *= d
        data = struct.pack("<%df" % n, *[off + scale * rng.uniform(-1, 1) for _ in range(n)])
        pad = (-offset) % ALIGN
        offset += pad
        blobs.append(b"\0" * pad + data)
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        infos += struct.pack("<IQ", 0, offset)  # F32, offset in the data section
        offset += len(data)
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(meta) + infos
    header += b"\0" * ((-len(header)) % ALIGN)
    with open(path, "wb") as f:
        f.write(header + b"".join(blobs))


if __name__ == "__main__":
    main()
