"""A small RWKV-7 ("Goose", x070) language model in PyTorch, written from the
RWKV-7 equations (see /work/shared/reference/FACTS.md sections 2.4 and 5.1).

Parameters are stored in the same orientation as llama.cpp's rwkv7 GGUF layout
(numpy row-major = reversed ggml ne), so export is a rename: a matrix that the
GGUF stores with ne = {in, out} is a torch tensor of shape (out, in), used as
F.linear(x, W). One forward serves training (zero state, whole sequences) and
inference (explicit recurrent state, any length).
"""

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from wkv7 import wkv7_chunked, wkv7_sequential

HEAD_SIZE = 64
LAYER_NORM_EPS = 1e-5
GROUP_NORM_EPS = 64e-5
DECAY_SCALE = 0.606531  # exp(-0.5): decay w = exp(-DECAY_SCALE * sigmoid(.)) lies in (0.545, 1)
LERP_ORDER = ("r", "w", "k", "v", "a", "g")  # row order of time_mix_lerp_fused


@dataclass
class Config:
    n_vocab: int = 257
    n_embd: int = 256
    n_layer: int = 4
    ffn: int = 1024
    decay_lora: int = 32
    iclr_lora: int = 32
    value_lora: int = 32
    gate_lora: int = 64

    @property
    def n_head(self):
        return self.n_embd // HEAD_SIZE

    def to_dict(self):
        return asdict(self)


def _orthogonal(shape, gain, gen):
    w = torch.empty(shape)
    # torch.nn.init.orthogonal_ takes no generator; draw the gaussian ourselves.
    flat = torch.randn(max(shape), min(shape), generator=gen)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    w.copy_(q if shape[0] >= shape[1] else q.T)
    return w * gain


class Layer(nn.Module):
    def __init__(self, cfg, layer_id, gen):
        super().__init__()
        D, L = cfg.n_embd, cfg.n_layer
        H, N = cfg.n_head, HEAD_SIZE
        self.layer_id = layer_id
        self.n_head = H
        ones = torch.ones(D)
        self.ln1_w, self.ln1_b = nn.Parameter(ones.clone()), nn.Parameter(torch.zeros(D))
        self.ln2_w, self.ln2_b = nn.Parameter(ones.clone()), nn.Parameter(torch.zeros(D))

        # Initial values follow the shape of the RWKV-7 reference initialisation
        # (token-shift mixes that fade with depth, decays spread from fast to slow
        # across channels, small LoRA outputs, zero output projections).
        depth = layer_id / max(1, L - 1)            # 0 .. 1
        fade = 1.0 - layer_id / L                   # 1 .. ~0
        pos = torch.arange(D) / D
        lerp = [1.0 - pos ** (p * fade) for p in (0.2, 0.9, 0.7, 0.7, 0.9, 0.2)]   # r w k v a g
        self.lerp = nn.Parameter(torch.stack(lerp))                              # (6, D)
        linear = torch.arange(D) / (D - 1) - 0.5
        zigzag = ((torch.arange(D) % N) - (N - 1) / 2) / ((N - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        decay_base = -6 + 6 * (torch.arange(D) / (D - 1)) ** (1 + depth ** 0.3)
        self.w0 = nn.Parameter(decay_base + 0.5 + zigzag * 2.5)
        self.w1 = nn.Parameter(torch.zeros(cfg.decay_lora, D))
        self.w2 = nn.Parameter(_orthogonal((D, cfg.decay_lora), 0.1, gen))
        self.a0 = nn.Parameter(-0.19 + zigzag * 0.3 + linear * 0.4)
        self.a1 = nn.Parameter(torch.zeros(cfg.iclr_lora, D))
        self.a2 = nn.Parameter(_orthogonal((D, cfg.iclr_lora), 0.1, gen))
        self.v0 = nn.Parameter(0.73 - linear * 0.4)
        self.v1 = nn.Parameter(torch.zeros(cfg.value_lora, D))
        self.v2 = nn.Parameter(_orthogonal((D, cfg.value_lora), 0.1, gen))
        self.g1 = nn.Parameter(torch.zeros(cfg.gate_lora, D))
        self.g2 = nn.Parameter(_orthogonal((D, cfg.gate_lora), 0.1, gen))
        self.k_k = nn.Parameter(0.71 - linear * 0.1)
        self.k_a = nn.Parameter(torch.full((D,), 1.02))
        self.r_k = nn.Parameter(torch.full((D,), -0.04))
        self.wr = nn.Parameter(_orthogonal((D, D), 1.0, gen))
        self.wk = nn.Parameter(_orthogonal((D, D), 0.1, gen))
        self.wv = nn.Parameter(_orthogonal((D, D), 1.0, gen))
        self.wo = nn.Parameter(torch.zeros(D, D))
        self.lnx_w = nn.Parameter(torch.full((D,), ((1 + layer_id) / L) ** 0.7))
        self.lnx_b = nn.Parameter(torch.zeros(D))

        self.cm_lerp = nn.Parameter(1.0 - pos ** (fade ** 4))
        self.cm_key = nn.Parameter(_orthogonal((cfg.ffn, D), 1.0, gen))
        self.cm_value = nn.Parameter(torch.zeros(D, cfg.ffn))

    def time_mix(self, x, shift, S, v_first, wkv):
        B, T, D = x.shape
        H, N = self.n_head, HEAD_SIZE
        prev = torch.cat([shift[:, None, :], x[:, :-1]], dim=1)
        sx = prev - x
        xr, xw, xk, xv, xa, xg = (x + sx * self.lerp[i] for i in range(6))
        r = F.linear(xr, self.wr)
        logw = -DECAY_SCALE * torch.sigmoid(self.w0 + F.linear(torch.tanh(F.linear(xw, self.w1)), self.w2))
        k = F.linear(xk, self.wk)
        v = F.linear(xv, self.wv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + F.linear(F.linear(xv, self.v1), self.v2))
        a = torch.sigmoid(self.a0 + F.linear(F.linear(xa, self.a1), self.a2))
        g = F.linear(torch.sigmoid(F.linear(xg, self.g1)), self.g2)
        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0, eps=1e-12)
        k = k * (1 + (a - 1) * self.k_a)
        heads = lambda t: t.view(B, T, H, N)
        y, S = wkv(heads(r), heads(logw), heads(k), heads(v), -kk, kk * heads(a), S)
        y = F.group_norm(y.reshape(B * T, D), H, self.lnx_w, self.lnx_b, eps=GROUP_NORM_EPS).view(B, T, D)
        bonus = (heads(r) * heads(k) * self.r_k.view(H, N)).sum(-1, keepdim=True) * heads(v)
        y = y + bonus.reshape(B, T, D)
        return F.linear(y * g, self.wo), x[:, -1], S, v_first

    def channel_mix(self, x, shift):
        prev = torch.cat([shift[:, None, :], x[:, :-1]], dim=1)
        xk = x + (prev - x) * self.cm_lerp
        return F.linear(torch.relu(F.linear(xk, self.cm_key)) ** 2, self.cm_value), x[:, -1]

    def forward(self, x, state, v_first, wkv):
        att_shift, ffn_shift, S = state
        D = x.shape[-1]
        dx, att_shift, S, v_first = self.time_mix(F.layer_norm(x, (D,), self.ln1_w, self.ln1_b, LAYER_NORM_EPS),
                                                  att_shift, S, v_first, wkv)
        x = x + dx
        dx, ffn_shift = self.channel_mix(F.layer_norm(x, (D,), self.ln2_w, self.ln2_b, LAYER_NORM_EPS), ffn_shift)
        return x + dx, (att_shift, ffn_shift, S), v_first


class RWKV7(nn.Module):
    def __init__(self, cfg, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.cfg = cfg
        D, V = cfg.n_embd, cfg.n_vocab
        self.emb = nn.Parameter((torch.rand(V, D, generator=gen) * 2 - 1) * 1e-4)
        self.ln0_w, self.ln0_b = nn.Parameter(torch.ones(D)), nn.Parameter(torch.zeros(D))
        self.layers = nn.ModuleList(Layer(cfg, i, gen) for i in range(cfg.n_layer))
        self.lnout_w, self.lnout_b = nn.Parameter(torch.ones(D)), nn.Parameter(torch.zeros(D))
        head_gain = 0.5 * math.sqrt(V / D) if V > D else 0.5
        self.head = nn.Parameter(_orthogonal((V, D), head_gain, gen))

    def zero_state(self, batch, dtype=torch.float32):
        D, H = self.cfg.n_embd, self.cfg.n_head
        return [(torch.zeros(batch, D, dtype=dtype), torch.zeros(batch, D, dtype=dtype),
                 torch.zeros(batch, H, HEAD_SIZE, HEAD_SIZE, dtype=dtype)) for _ in range(self.cfg.n_layer)]

    def forward(self, idx, state=None, sequential=False, chunk=16):
        """idx [B, T] token ids -> logits [B, T, V], new state. state None = zeros.
        sequential=True uses the step-by-step WKV (for golden outputs)."""
        if state is None:
            state = self.zero_state(idx.shape[0], self.emb.dtype)
        wkv = wkv7_sequential if sequential else (lambda *args: wkv7_chunked(*args, chunk=chunk))
        D = self.cfg.n_embd
        x = F.layer_norm(self.emb[idx], (D,), self.ln0_w, self.ln0_b, LAYER_NORM_EPS)
        v_first = None
        new_state = []
        for layer, layer_state in zip(self.layers, state):
            x, layer_state, v_first = layer(x, layer_state, v_first, wkv)
            new_state.append(layer_state)
        x = F.layer_norm(x, (D,), self.lnout_w, self.lnout_b, LAYER_NORM_EPS)
        return F.linear(x, self.head), new_state

    def n_params(self):
        return sum(p.numel() for p in self.parameters())
