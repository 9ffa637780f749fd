"""Renders models/flatline-demo-kjv.md from the training log and golden data."""

import math


def _loadavg(m):
    return ", ".join(str(x) for x in m["loadavg_1_5_15"])


def render(cfg, n_params, log, golden, gguf_bytes):
    args = log["args"]
    evals = log["evals"]
    last_eval = evals[-1] if evals else {}
    tokens_seen = log["steps_done"] * args["batch"] * args["ctx"]
    corpus = log["corpus"]
    curve = "\n".join(f"| {e['step']} | {e['tokens']} | {e['train_loss_ema']:.4f} | {e['heldout_loss_sample']:.4f} | "
                      f"{e['wall_s']:.0f} | {e['loadavg']:.1f} |" for e in evals)
    samples = "\n\n".join(_sample(s) for s in golden["samples"])
    h = log["final_heldout_loss"]
    return f"""# flatline-demo-kjv

flatline's bundled demo model, trained from scratch by flatline's own tool
(`tools/train-tiny/`) so that a fresh install can chat with no download. It is
a toy: it writes King James English in the shape of a verse, not answers.

## Model

| | |
|---|---|
| architecture | RWKV-7 (llama.cpp `rwkv7` GGUF layout) |
| parameters | {n_params:,} |
| layers x n_embd | {cfg.n_layer} x {cfg.n_embd} ({cfg.n_head} heads of 64) |
| channel-mix (FFN) width | {cfg.ffn} |
| LoRA ranks (decay, iclr, value-residual, gate) | {cfg.decay_lora}, {cfg.iclr_lora}, {cfg.value_lora}, {cfg.gate_lora} |
| vocabulary | 257: token id == byte value for 0..255, id 256 = `"\\n\\n"` (end of turn, `tokenizer.ggml.eot_token_id`); GGUF `tokenizer.ggml.model = "rwkv"` (greedy longest match), no BOS/EOS |
| chat template | `rwkv-world`: `User: ...\\n\\nAssistant:`; the reply ends with token 256 |
| file | `flatline-demo-kjv.gguf`, {gguf_bytes:,} bytes: matrices F16, vectors and norms F32 |
| license of the weights | CC0-1.0 (`general.license`); the training text is public domain |

## Design choices

- Vocabulary: bytes plus one `"\\n\\n"` token rather than a trained BPE. It is exact by construction in any
  implementation (greedy longest match over 257 strings, the `rwkv` tokenizer llama.cpp and flatline already have),
  and it gives the chat format a real end-of-turn token, like RWKV World's token 261. A GPT-2-style BPE cannot: its
  pre-tokenizer splits `"\\n\\nUser"` into `"\\n"`, `"\\n"`, `"User"`. A BPE would compress the text ~3-4x per token and
  so see more text for the same compute; no BPE run was made to measure that (the shared machine was too loaded).
- Size: per-step cost on this CPU is dominated by element-wise work and WKV bookkeeping rather than by the matrix
  products (n_embd 192 x 4 layers costs ~75% of n_embd 256 x 4 per step), so the larger of the two is the better use of
  a fixed budget at well under one epoch. No sweep over sizes was finished, for the same reason.
- Training data is a User/Assistant dialogue so that the chat front end gets a one-verse reply that ends with the
  end-of-turn token; the model never sees real questions, so its "answers" are verse-like continuations.

## Data

- Text: the King James Version of the Bible (1611), Debian packages {", ".join(f"`{p}`" for p in log["packages"])},
  read with the package's own reader: `bible -f Gen1:1-Rev22:21` (31,102 verses). License: public domain
  ("The copyright for the King James Version text of the Bible is expired", /usr/share/doc/bible-kjv-text/copyright;
  the package's reader code is GPL-2+ and is only run, not shipped).
- Split (fixed): chapters numbered 0..1188 in canonical order; every chapter with number = 19 (mod 20) is held out
  (59 chapters, {corpus["n_heldout_verses"]} verses, {100 * golden_share(corpus):.1f}% of the text); the rest is training text.
- Rendering: the verses of each split in order, as one dialogue of strictly alternating turns
  `User: <verse>\\n\\n` / `Assistant: <next verse>\\n\\n` (no verse numbers or book names).
  Training text sha256 `{corpus["train_sha256"]}`, held-out sha256 `{corpus["heldout_sha256"]}`.
- `flatline-demo-kjv.heldout.txt`: the first {golden["heldout_bytes"]:,} bytes (whole turns) of the held-out split.

## Training

```
apt-get install libopenblas0-pthread bible-kjv bible-kjv-text python3-torch python3-numpy   # OpenBLAS: ~15x faster matmuls than Debian's default netlib BLAS
{log["command"]}
```

- PyTorch {log["machine_start"]["torch"]} (Debian python3-torch), /usr/bin/python3, CPU only; `run.sh` sets OpenBLAS
  (2 threads), passive OpenMP waiting and `nice -n 10`; torch intra-op threads = {args["threads"]}.
- AdamW (betas 0.9/0.99, weight decay {args["weight_decay"]} on matrices), lr {args["lr"]} with {args["warmup"]} warm-up
  steps and cosine decay to {args["lr_final"]}, gradient clip 1.0, batch {args["batch"]} x {args["ctx"]} tokens,
  {log["steps_done"]} steps = {tokens_seen:,} tokens ({tokens_seen / max(1, len_train(corpus)):.2f} epochs), seed {args["seed"]}.
  The WKV recurrence is trained in an exact chunked form (chunks of {args["chunk"]} tokens; `wkv7.py`).
- Machine: {log["machine_start"]["cores"]} cores ({log["machine_start"]["cpu"]}), shared with other jobs. Load average
  (1/5/15 min) at start {_loadavg(log["machine_start"])}, at end {_loadavg(log["machine_end"])}.
- Wall time of the training loop: {log["train_wall_s"]:.0f} s ({log["train_wall_s"] / 60:.1f} min); process CPU time
  {log["train_cpu_s"]:.0f} s (both OpenBLAS threads counted). The machine was never idle while this was made; on an
  idle 2-core machine the loop should take about the CPU time divided by the ~1.3 cores it keeps busy
  ({log["train_cpu_s"] / 1.3 / 60:.0f} min, an estimate, not measured).

| step | tokens | train loss (EMA) | held-out loss ({args["eval_windows"]} windows) | wall s | load |
|---|---|---|---|---|---|
{curve}

## Results

| | nats/token | perplexity |
|---|---|---|
| train loss (EMA of the last steps) | {log["final_train_loss_ema"]:.4f} | {math.exp(log["final_train_loss_ema"]):.3f} |
| held-out split, all {args["ctx"]}-token windows from a zero state (PyTorch, trained weights) | {h:.4f} | {math.exp(h):.3f} |
| `heldout.txt` in one sequence, weights as exported (golden) | {golden["heldout_mean_nll"]:.4f} | {golden["heldout_perplexity"]:.4f} |

Per token is close to per byte here (the only multi-byte token is `"\\n\\n"`); {golden["heldout_n_tokens"]:,} tokens for
{golden["heldout_bytes"]:,} bytes in `heldout.txt` (bits per byte = {golden["heldout_mean_nll"] * golden["heldout_n_tokens"] / golden["heldout_bytes"] / math.log(2):.3f}).

## Golden files

- `flatline-demo-kjv.golden.json`: the token ids and text of a {len(golden["token_ids"])}-token held-out passage,
  the held-out perplexity above and its exact definition, and the samples below.
- `flatline-demo-kjv.golden-logits.f32`: float32 [{len(golden["token_ids"])}][{cfg.n_vocab}] logits for that passage from a
  zero state, computed in float32 from the weights exactly as exported. flatline computing in F32 from the F16
  file should match within ~1e-3.
- Verified independently: `tools/train-tiny/verify_export.py` (a float64 NumPy forward pass that reads the GGUF,
  written from llama.cpp's formulation, checked itself against rwkv.cpp's expected logits by `verify_fixture.py`).

## Verification

`tools/train-tiny/verify_fixture.py` checks the float64 NumPy forward pass against rwkv.cpp's expected logits;
`tools/train-tiny/verify_export.py` runs it on this GGUF against the golden logits and perplexity. Results recorded
for this file (re-run both after retraining):

## Samples

PyTorch, weights as exported, temperature 0.8, top-p 0.9, seed {golden["samples"][0]["seed"]}, stop at token 256:

{samples}
"""


def _sample(s):
    ended = s["output"].endswith("\n\n")
    text = s["prompt"] + (s["output"][:-2] if ended else s["output"])
    tail = "[end-of-turn token]" if ended else f"[stopped at {s['max_tokens']} tokens]"
    return f"Prompt ({s['kind']}): `{s['prompt']!r}`\n\n```\n{text}\n{tail}\n```"


def golden_share(corpus):
    """Held-out share of the rendered text, by bytes."""
    return corpus["heldout_bytes"] / (corpus["heldout_bytes"] + corpus["train_bytes"])


def len_train(corpus):
    return corpus.get("train_tokens", 0)
