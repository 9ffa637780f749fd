#!/usr/bin/python3
"""Independent check of the exported demo model: a float64 NumPy forward pass
(rwkv7_numpy_ref.py, llama.cpp's formulation, reads the GGUF) against the
PyTorch golden logits and held-out perplexity in models/.

Usage: verify_export.py [--models-dir DIR] [--skip-ppl]"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import byte_tokenizer  # noqa: E402
from rwkv7_numpy_ref import NumpyRWKV7  # noqa: E402


def log_softmax(x):
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    p.add_argument("--name", default="flatline-demo-kjv")
    p.add_argument("--skip-ppl", action="store_true")
    args = p.parse_args()
    base = os.path.join(args.models_dir, args.name)
    golden = json.load(open(base + ".golden.json"))
    model = NumpyRWKV7(base + ".gguf")
    ids = golden["token_ids"]
    assert list(byte_tokenizer.encode(golden["passage_text"].encode("ascii"))) == ids, "passage text != token ids"
    ref = np.fromfile(os.path.join(args.models_dir, golden["logits_file"]), dtype="<f4").reshape(len(ids), golden["n_vocab"])
    logits, _ = model.logits_for(ids)
    diff = np.abs(logits - ref)
    print(f"passage logits ({len(ids)} tokens x {golden['n_vocab']}): max abs diff numpy-f64 vs torch-f32 "
          f"{diff.max():.3e} (mean {diff.mean():.3e}); argmax agreement "
          f"{(logits.argmax(1) == ref.argmax(1)).mean() * 100:.1f}%")
    ok = diff.max() < 1e-3
    if not args.skip_ppl:
        text = open(base + ".heldout.txt", "rb").read()
        tokens = byte_tokenizer.encode(text)
        state = model.zero_state()
        nll = 0.0
        prev = model.step(int(tokens[0]), state)
        for t in tokens[1:]:
            nll -= log_softmax(prev)[int(t)]
            prev = model.step(int(t), state)
        mean = nll / (len(tokens) - 1)
        print(f"heldout.txt ({len(tokens)} tokens): numpy-f64 mean NLL {mean:.6f} ppl {math.exp(mean):.6f}; "
              f"golden (torch f32) {golden['heldout_mean_nll']:.6f} ppl {golden['heldout_perplexity']:.6f}; "
              f"rel diff {abs(math.exp(mean) / golden['heldout_perplexity'] - 1):.2e}")
        ok = ok and abs(math.exp(mean) / golden["heldout_perplexity"] - 1) < 1e-4
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
