"""Export a trained demo model: the GGUF (llama.cpp rwkv7 layout, matrices F16,
vectors F32), the held-out text, golden logits + perplexity computed from the
weights exactly as exported, a generated sample, and the model card.

Also usable alone: export.py --checkpoint ckpt.pt [--models-dir models]
"""

import argparse
import copy
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import byte_tokenizer  # noqa: E402
from gguf_io import GGML_F16, GGML_F32, T_ARRAY, T_INT32, T_UINT32, Typed, write_gguf  # noqa: E402
from rwkv7_model import RWKV7, Config, HEAD_SIZE, LAYER_NORM_EPS  # noqa: E402

MODEL_NAME = "flatline-demo-kjv"
WEIGHTS_LICENSE = "CC0-1.0"
CHAT_TEMPLATE = "rwkv-world"
HELDOUT_FILE_MAX_BYTES = 32 * 1024
GOLDEN_PASSAGE_TOKENS = 256
SAMPLE_SEED = 7
SAMPLE_PROMPTS = [
    ("chat", "User: Who made the heaven and the earth?\n\nAssistant:"),
    ("chat", "User: What shall I do to be saved?\n\nAssistant:"),
    ("continuation", "User: And God said unto Moses,"),
]


def gguf_tensors(model):
    """[(gguf name, torch tensor, numpy shape, ggml type)] in llama.cpp's order."""
    cfg = model.cfg
    D = cfg.n_embd
    out = [("token_embd.weight", model.emb, None, GGML_F16),
           ("token_embd_norm.weight", model.ln0_w, None, GGML_F32),
           ("token_embd_norm.bias", model.ln0_b, None, GGML_F32)]
    for i, layer in enumerate(model.layers):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", layer.ln1_w, None, GGML_F32),
            (p + "attn_norm.bias", layer.ln1_b, None, GGML_F32),
            (p + "attn_norm_2.weight", layer.ln2_w, None, GGML_F32),
            (p + "attn_norm_2.bias", layer.ln2_b, None, GGML_F32),
            (p + "time_mix_w0.weight", layer.w0, None, GGML_F32),
            (p + "time_mix_w1.weight", layer.w1, None, GGML_F16),
            (p + "time_mix_w2.weight", layer.w2, None, GGML_F16),
            (p + "time_mix_a0.weight", layer.a0, None, GGML_F32),
            (p + "time_mix_a1.weight", layer.a1, None, GGML_F16),
            (p + "time_mix_a2.weight", layer.a2, None, GGML_F16),
            # Layer 0 has no value residual; its v0/v1/v2 are written (unused) so every
            # layer has the same tensor set.
            (p + "time_mix_v0.weight", layer.v0, None, GGML_F32),
            (p + "time_mix_v1.weight", layer.v1, None, GGML_F16),
            (p + "time_mix_v2.weight", layer.v2, None, GGML_F16),
            (p + "time_mix_g1.weight", layer.g1, None, GGML_F16),
            (p + "time_mix_g2.weight", layer.g2, None, GGML_F16),
            (p + "time_mix_lerp_fused.weight", layer.lerp, (6, 1, 1, D), GGML_F32),   # ggml ne {D,1,1,6}
            (p + "time_mix_k_k.weight", layer.k_k, None, GGML_F32),
            (p + "time_mix_k_a.weight", layer.k_a, None, GGML_F32),
            (p + "time_mix_r_k.weight", layer.r_k, None, GGML_F32),
            (p + "time_mix_key.weight", layer.wk, None, GGML_F16),
            (p + "time_mix_value.weight", layer.wv, None, GGML_F16),
            (p + "time_mix_receptance.weight", layer.wr, None, GGML_F16),
            (p + "time_mix_ln.weight", layer.lnx_w, None, GGML_F32),
            (p + "time_mix_ln.bias", layer.lnx_b, None, GGML_F32),
            (p + "time_mix_output.weight", layer.wo, None, GGML_F16),
            (p + "channel_mix_lerp_k.weight", layer.cm_lerp, (1, 1, D), GGML_F32),     # ggml ne {D,1,1}
            (p + "channel_mix_key.weight", layer.cm_key, None, GGML_F16),
            (p + "channel_mix_value.weight", layer.cm_value, None, GGML_F16),
        ]
    out += [("output_norm.weight", model.lnout_w, None, GGML_F32),
            ("output_norm.bias", model.lnout_b, None, GGML_F32),
            ("output.weight", model.head, None, GGML_F16)]
    return out


def rounded_copy(model):
    """The model with every tensor that is stored as F16 rounded to F16 and back:
    the weights exactly as flatline will read them."""
    m = copy.deepcopy(model).float().eval()
    names = {id(p): (name, t) for name, p, _, t in gguf_tensors(m)}
    with torch.no_grad():
        for p in m.parameters():
            entry = names.get(id(p))
            if entry and entry[1] == GGML_F16:
                p.copy_(p.half().float())
    return m


def gguf_metadata(cfg, description):
    u32 = lambda v: Typed(T_UINT32, v)
    tokens = byte_tokenizer.gguf_token_strings()
    return {
        "general.architecture": "rwkv7",
        "general.name": MODEL_NAME,
        "general.description": description,
        "general.license": WEIGHTS_LICENSE,
        "general.file_type": u32(1),   # mostly F16
        "rwkv7.context_length": u32(1048576),
        "rwkv7.embedding_length": u32(cfg.n_embd),
        "rwkv7.block_count": u32(cfg.n_layer),
        "rwkv7.attention.layer_norm_epsilon": float(LAYER_NORM_EPS),
        "rwkv7.wkv.head_size": u32(HEAD_SIZE),
        "rwkv7.attention.decay_lora_rank": u32(cfg.decay_lora),
        "rwkv7.attention.iclr_lora_rank": u32(cfg.iclr_lora),
        "rwkv7.attention.value_residual_mix_lora_rank": u32(cfg.value_lora),
        "rwkv7.attention.gate_lora_rank": u32(cfg.gate_lora),
        "rwkv7.feed_forward_length": u32(cfg.ffn),
        "rwkv7.attention.head_count": u32(0),
        "tokenizer.ggml.model": "rwkv",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": Typed(T_ARRAY, [byte_tokenizer.GGUF_TOKEN_TYPE_NORMAL] * len(tokens), T_INT32),
        "tokenizer.ggml.eot_token_id": u32(byte_tokenizer.EOT_ID),
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.add_eos_token": False,
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }


def write_model_gguf(model, path, description):
    tensors = []
    for name, param, shape, ttype in gguf_tensors(model):
        arr = param.detach().float().numpy()
        if shape is not None:
            arr = arr.reshape(shape)
        tensors.append((name, arr, ttype))
    write_gguf(path, gguf_metadata(model.cfg, description), tensors)


@torch.no_grad()
def sequence_logits(model, tokens, sequential, segment=1024):
    """Logits [n, V] for tokens fed in one sequence from a zero state (state carried
    across segments)."""
    state = None
    rows = []
    t = torch.as_tensor(np.asarray(tokens), dtype=torch.long)[None, :]
    for s in range(0, t.shape[1], segment):
        logits, state = model(t[:, s:s + segment], state=state, sequential=sequential)
        rows.append(logits[0])
    return torch.cat(rows).numpy()


def heldout_perplexity(model, tokens):
    """exp(mean NLL) of tokens[1:], each predicted from all earlier tokens; token 0
    is fed but not predicted."""
    logits = torch.from_numpy(sequence_logits(model, tokens, sequential=False))
    nll = F.cross_entropy(logits[:-1].double(), torch.as_tensor(np.asarray(tokens[1:]), dtype=torch.long))
    return float(nll), math.exp(float(nll))


@torch.no_grad()
def generate(model, prompt, max_tokens=300, temperature=0.8, top_p=0.9, seed=SAMPLE_SEED):
    gen = torch.Generator().manual_seed(seed)
    ids = byte_tokenizer.encode(prompt.encode("ascii"))
    logits, state = model(torch.as_tensor(ids)[None, :], sequential=True)
    last = logits[0, -1]
    out = []
    for _ in range(max_tokens):
        probs = torch.softmax(last.double() / temperature, dim=-1)
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
        token = int(order[torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=gen)])
        out.append(token)
        if token == byte_tokenizer.EOT_ID:
            break
        logits, state = model(torch.tensor([[token]]), state=state, sequential=True)
        last = logits[0, -1]
    return byte_tokenizer.decode(out).decode("ascii", errors="replace")


def cut_heldout_text(heldout_bytes):
    """The first whole turns of the held-out split, at most HELDOUT_FILE_MAX_BYTES."""
    cut = heldout_bytes.rfind(b"\n\n", 0, HELDOUT_FILE_MAX_BYTES)
    return heldout_bytes[:cut + 2]


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def export_all(model, log, corpus, models_dir):
    os.makedirs(models_dir, exist_ok=True)
    base = os.path.join(models_dir, MODEL_NAME)
    cfg = model.cfg
    exported = rounded_copy(model)

    description = (f"flatline's demo model: byte-level RWKV-7, {cfg.n_layer} layers x {cfg.n_embd}, "
                   "trained from scratch by tools/train-tiny on the King James Bible (public domain, Debian "
                   "bible-kjv-text) as a User/Assistant dialogue of consecutive verses.")
    write_model_gguf(exported, base + ".gguf", description)

    heldout_text = cut_heldout_text(corpus["heldout"])
    with open(base + ".heldout.txt", "wb") as f:
        f.write(heldout_text)
    heldout_tokens = byte_tokenizer.encode(heldout_text)
    nll, ppl = heldout_perplexity(exported, heldout_tokens)

    passage = heldout_tokens[:GOLDEN_PASSAGE_TOKENS]
    logits = sequence_logits(exported, passage, sequential=True).astype("<f4")
    logits.tofile(base + ".golden-logits.f32")

    samples = [{"kind": kind, "prompt": prompt, "seed": SAMPLE_SEED, "temperature": 0.8, "top_p": 0.9,
                "max_tokens": 300, "output": generate(exported, prompt)} for kind, prompt in SAMPLE_PROMPTS]

    golden = {
        "model": os.path.basename(base + ".gguf"),
        "model_sha256": sha256_file(base + ".gguf"),
        "n_vocab": cfg.n_vocab,
        "tokenizer": "byte-level: token id == byte value for 0..255; id 256 = \"\\n\\n\" (EOT); greedy longest match",
        "passage_text": byte_tokenizer.decode(passage).decode("ascii"),
        "passage_source": f"the first {len(passage)} tokens of {os.path.basename(base)}.heldout.txt",
        "token_ids": [int(t) for t in passage],
        "logits_file": os.path.basename(base + ".golden-logits.f32"),
        "logits_format": (f"little-endian float32, row-major [{len(passage)}][{cfg.n_vocab}]; row t = logits after "
                          "feeding token_ids[0..t] one sequence from a zero state"),
        "computed_with": ("PyTorch float32, step-by-step WKV recurrence, weights exactly as stored in the GGUF "
                          "(F16 tensors rounded to F16 and widened back to float32)"),
        "heldout_file": os.path.basename(base + ".heldout.txt"),
        "heldout_sha256": hashlib.sha256(heldout_text).hexdigest(),
        "heldout_bytes": len(heldout_text),
        "heldout_n_tokens": int(len(heldout_tokens)),
        "heldout_mean_nll": nll,
        "heldout_perplexity": ppl,
        "perplexity_definition": ("tokens = encode(heldout.txt) (no BOS), fed in one sequence from a zero state; "
                                  "the first token is fed but not predicted; ppl = exp(mean over tokens 1..n-1 of "
                                  "-log softmax(logits after token t-1)[token t]) in float32 logits, float64 softmax"),
        "samples": samples,
    }
    with open(base + ".golden.json", "w") as f:
        # one key per line, each value compact (token_ids on one line)
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in golden.items()) + "\n}\n")

    import model_card  # noqa: E402
    with open(base + ".md", "w") as f:
        f.write(model_card.render(cfg, exported.n_params(), log, golden, os.path.getsize(base + ".gguf")))
    print(f"exported {base}.gguf ({os.path.getsize(base + '.gguf')} bytes); held-out file ppl {ppl:.4f}", flush=True)
    for s in samples:
        print(f"sample [{s['kind']}] {s['prompt']!r} -> {s['output']!r}", flush=True)
    return golden


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--card-only", action="store_true", help="re-render the card from the checkpoint log and golden.json")
    p.add_argument("--models-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = torch.load(args.checkpoint)
    model = RWKV7(Config(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    if args.card_only:
        import model_card  # noqa: E402
        base = os.path.join(args.models_dir, MODEL_NAME)
        golden = json.load(open(base + ".golden.json"))
        with open(base + ".md", "w") as f:
            f.write(model_card.render(model.cfg, model.n_params(), ckpt["log"], golden, os.path.getsize(base + ".gguf")))
        return
    import kjv_corpus  # noqa: E402
    export_all(model, ckpt["log"], kjv_corpus.load(), args.models_dir)


if __name__ == "__main__":
    main()
