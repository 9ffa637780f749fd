#!/usr/bin/python3
"""Train flatline's bundled demo model: a small byte-level RWKV-7 on the King
James Bible (Debian package bible-kjv-text), then export it to GGUF with its
golden files and model card (see export.py).

Deterministic given --seed and --threads: fixed initialisation generator, fixed
data order, a fixed number of steps (never "as many as fit in N minutes").
Run through run.sh, which sets the BLAS library and thread environment.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import byte_tokenizer  # noqa: E402
import kjv_corpus  # noqa: E402
from rwkv7_model import RWKV7, Config  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--ffn-mult", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ctx", type=int, default=256, help="training sequence length (tokens)")
    p.add_argument("--chunk", type=int, default=32, help="WKV chunk length")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lr-final", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1611)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-windows", type=int, default=64, help="held-out windows for the periodic eval")
    p.add_argument("--time-limit", type=float, default=0,
                   help="experiments only: stop after this many CPU-seconds/threads (breaks determinism of length)")
    p.add_argument("--final-eval-windows", type=int, default=0, help="0 = the whole held-out split")
    p.add_argument("--checkpoint", default="", help="where to save the trained weights (.pt)")
    p.add_argument("--save-every", type=int, default=0, help="also save the checkpoint every N steps (safety net)")
    p.add_argument("--export", action="store_true", help="export GGUF, golden files and card to --models-dir")
    p.add_argument("--models-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    return p.parse_args()


def make_config(args):
    d = args.n_embd
    ffn = int(round(d * args.ffn_mult / 32)) * 32
    rank = lambda f: max(32, int(round(f * math.sqrt(d) / 32)) * 32)
    return Config(n_vocab=byte_tokenizer.N_VOCAB, n_embd=d, n_layer=args.n_layer, ffn=ffn,
                  decay_lora=rank(2.5), iclr_lora=rank(2.5), value_lora=rank(1.7), gate_lora=rank(5.0))


class Batches:
    """Deterministic order: each epoch picks a random phase in [0, ctx) and a random
    permutation of the non-overlapping windows that start there."""

    def __init__(self, tokens, batch, ctx, seed):
        self.tokens = torch.from_numpy(tokens)
        self.batch, self.ctx = batch, ctx
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.epoch = -1
        self.order = torch.zeros(0, dtype=torch.long)
        self.pos = 0

    def _new_epoch(self):
        self.epoch += 1
        phase = int(torch.randint(0, self.ctx, (1,), generator=self.gen))
        n = (len(self.tokens) - 1 - phase) // self.ctx
        starts = phase + self.ctx * torch.arange(n)
        self.order = starts[torch.randperm(n, generator=self.gen)]
        self.pos = 0

    def next(self):
        if self.pos + self.batch > len(self.order):
            self._new_epoch()
        starts = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        idx = starts[:, None] + torch.arange(self.ctx + 1)[None, :]
        return self.tokens[idx]


@torch.no_grad()
def heldout_loss(model, tokens, ctx, chunk, max_windows=0, batch=32):
    """Mean next-token NLL (nats) over non-overlapping ctx windows, each from a zero state."""
    n = (len(tokens) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    t = torch.from_numpy(tokens)
    total, count = 0.0, 0
    for s in range(0, n, batch):
        idx = torch.stack([t[i * ctx:i * ctx + ctx + 1] for i in range(s, min(n, s + batch))])
        logits, _ = model(idx[:, :-1], chunk=chunk)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1), reduction="sum").item()
        count += idx[:, 1:].numel()
    return total / count


def make_optimizer(model, args):
    decay, no_decay, fast = [], [], []
    for name, p in model.named_parameters():
        if name.endswith(".w0"):
            fast.append(p)          # the decay bias learns at 2x (as in the RWKV-7 reference trainer)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
              {"params": fast, "weight_decay": 0.0, "lr_scale": 2.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.99), eps=1e-8)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * progress))


def machine_info():
    load = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "loadavg_1_5_15": [round(x, 2) for x in load], "torch": torch.__version__,
            "blas_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "")}


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = make_config(args)

    corpus = kjv_corpus.load()
    train_tokens = byte_tokenizer.encode(corpus["train"])
    heldout_tokens = byte_tokenizer.encode(corpus["heldout"])
    print(f"data: train {len(corpus['train'])} bytes / {len(train_tokens)} tokens, "
          f"held-out {len(corpus['heldout'])} bytes / {len(heldout_tokens)} tokens", flush=True)

    model = RWKV7(cfg, seed=args.seed)
    print(f"model: {cfg.to_dict()} params {model.n_params()}", flush=True)
    opt = make_optimizer(model, args)
    batches = Batches(train_tokens, args.batch, args.ctx, args.seed)

    log = {"command": "tools/train-tiny/run.sh " + " ".join(sys.argv[1:]), "args": vars(args), "config": cfg.to_dict(), "n_params": model.n_params(),
           "machine_start": machine_info(), "corpus": dict({k: v for k, v in corpus.items() if not isinstance(v, bytes)},
                         train_bytes=len(corpus["train"]), heldout_bytes=len(corpus["heldout"]),
                         train_tokens=len(train_tokens), heldout_tokens=len(heldout_tokens)),
           "packages": kjv_corpus.package_versions(), "evals": []}
    wall0, cpu0 = time.time(), time.process_time()
    ema = None
    step = 0
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args) * group["lr_scale"]
        idx = batches.next()
        logits, _ = model(idx[:, :-1], chunk=args.chunk)
        loss = F.cross_entropy(logits.reshape(-1, cfg.n_vocab), idx[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        last = step + 1 == args.steps
        cpu_per_thread = (time.process_time() - cpu0) / max(1, args.threads)
        out_of_time = args.time_limit and cpu_per_thread > args.time_limit
        if (step + 1) % args.eval_every == 0 or last or out_of_time:
            model.eval()
            h = heldout_loss(model, heldout_tokens, args.ctx, args.chunk, args.eval_windows)
            model.train()
            entry = {"step": step + 1, "tokens": (step + 1) * args.batch * args.ctx, "train_loss_ema": round(ema, 4),
                     "heldout_loss_sample": round(h, 4), "wall_s": round(time.time() - wall0, 1),
                     "cpu_s": round(time.process_time() - cpu0, 1), "loadavg": os.getloadavg()[0]}
            log["evals"].append(entry)
            print(json.dumps(entry), flush=True)
        elif (step + 1) % 10 == 0:
            print(f"step {step + 1} loss {loss.item():.4f} ema {ema:.4f} lr {lr_at(step, args):.2e} "
                  f"wall {time.time() - wall0:.0f}s cpu {time.process_time() - cpu0:.0f}s", flush=True)
        if args.checkpoint and args.save_every and (step + 1) % args.save_every == 0 and not last:
            torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict(), "log": dict(log, steps_done=step + 1)},
                       args.checkpoint + ".partial")
        if out_of_time:
            print(f"time limit reached at step {step + 1}", flush=True)
            break
    log["steps_done"] = step + 1
    log["train_wall_s"] = round(time.time() - wall0, 1)
    log["train_cpu_s"] = round(time.process_time() - cpu0, 1)
    log["machine_end"] = machine_info()

    model.eval()
    log["final_train_loss_ema"] = ema
    t0 = time.time()
    log["final_heldout_loss"] = heldout_loss(model, heldout_tokens, args.ctx, args.chunk, args.final_eval_windows)
    log["final_heldout_eval_s"] = round(time.time() - t0, 1)
    print(f"final held-out loss ({args.final_eval_windows or 'all'} {args.ctx}-token windows): "
          f"{log['final_heldout_loss']:.4f} nats/token, ppl {math.exp(log['final_heldout_loss']):.3f}", flush=True)

    if args.checkpoint:
        torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict(), "log": log}, args.checkpoint)
    if args.export:
        import export  # noqa: E402
        export.export_all(model, log, corpus, args.models_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
