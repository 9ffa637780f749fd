#!/usr/bin/python3
"""Checks rwkv7_numpy_ref.py against references it did not produce: rwkv.cpp's
expected logits for its tiny RWKV-7 test model (as a llama.cpp GGUF in
/work/shared/models) and the independent 49-token sequence reference there."""

import json
import os
import sys

import numpy as np

from rwkv7_numpy_ref import NumpyRWKV7

SHARED = os.environ.get("FLATLINE_SHARED", "/work/shared/models")


def main():
    model = NumpyRWKV7(os.path.join(SHARED, "tiny-rwkv7-834K-f32.gguf"))
    meta = json.load(open(os.path.join(SHARED, "tiny-rwkv7-834K.json")))
    expected = np.fromfile(os.path.join(SHARED, "tiny-rwkv7-834K.expected-logits.f32.bin"), dtype="<f4")
    logits, _ = model.logits_for(meta["token_ids"])
    diff = np.abs(logits[-1] - expected)
    print(f"rwkv.cpp expected logits ('\"in'): max abs diff {diff.max():.3e}, |sum diff| {abs((logits[-1] - expected).sum()):.3e}")
    seq = meta["sequence_reference"]
    ref = np.fromfile(os.path.join(SHARED, seq["file"]), dtype="<f4").reshape(len(seq["token_ids"]), -1)
    logits, _ = model.logits_for(seq["token_ids"])
    print(f"49-token sequence reference: max abs diff {np.abs(logits - ref).max():.3e}")
    ok = diff.max() < 1e-4 and np.abs(logits - ref).max() < 1e-4
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
