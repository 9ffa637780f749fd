"""Plain float64 NumPy RWKV-7 forward pass that reads a llama.cpp-layout rwkv7
GGUF (F32 or F16 tensors), one token at a time, written from llama.cpp's
formulation (FACTS.md section 2.4): wkv7 with a = -kk, b = kk * a, the state
indexed [value i][key j]. It shares no code with the PyTorch model, so it
checks both the export (names, shapes, orientation, lerp order) and the model.

Usage: rwkv7_numpy_ref.py MODEL.gguf [token ids...]  -> prints the last logits.
"""

import sys

import numpy as np

from gguf_io import GGUFFile


def layer_norm(x, w, b, eps):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / np.sqrt(var + eps) * w + b


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyRWKV7:
    def __init__(self, path):
        g = GGUFFile(path)
        md = g.metadata
        if md.get("general.architecture") != "rwkv7":
            raise ValueError(f"{path}: expected general.architecture rwkv7, found {md.get('general.architecture')}")
        self.D = md["rwkv7.embedding_length"]
        self.L = md["rwkv7.block_count"]
        self.N = md["rwkv7.wkv.head_size"]
        self.H = self.D // self.N
        self.eps = md.get("rwkv7.attention.layer_norm_epsilon", 1e-5)
        self.t = {name: np.asarray(arr, dtype=np.float64) for name, arr in g.tensors.items()}
        self.n_vocab = self.t["token_embd.weight"].shape[0]

    def w(self, name):
        return self.t[name]

    def zero_state(self):
        return {"att": np.zeros((self.L, self.D)), "ffn": np.zeros((self.L, self.D)),
                "wkv": np.zeros((self.L, self.H, self.N, self.N))}

    def time_mix(self, i, x, state, v_first):
        p = f"blk.{i}."
        H, N = self.H, self.N
        sx = state["att"][i] - x
        state["att"][i] = x
        lerp = self.w(p + "time_mix_lerp_fused.weight").reshape(6, self.D)   # r w k v a g
        xr, xw, xk, xv, xa, xg = (x + sx * lerp[j] for j in range(6))
        r = self.w(p + "time_mix_receptance.weight") @ xr
        w_in = self.w(p + "time_mix_w0.weight") + self.w(p + "time_mix_w2.weight") @ np.tanh(self.w(p + "time_mix_w1.weight") @ xw)
        w = np.exp(-0.606531 * sigmoid(w_in))
        k = self.w(p + "time_mix_key.weight") @ xk
        v = self.w(p + "time_mix_value.weight") @ xv
        if i == 0:
            v_first = v
        else:
            mix = sigmoid(self.w(p + "time_mix_v0.weight") + self.w(p + "time_mix_v2.weight") @ (self.w(p + "time_mix_v1.weight") @ xv))
            v = v + (v_first - v) * mix
        g = self.w(p + "time_mix_g2.weight") @ sigmoid(self.w(p + "time_mix_g1.weight") @ xg)
        a = sigmoid(self.w(p + "time_mix_a0.weight") + self.w(p + "time_mix_a2.weight") @ (self.w(p + "time_mix_a1.weight") @ xa))
        kk = (k * self.w(p + "time_mix_k_k.weight")).reshape(H, N)
        kk = kk / np.maximum(np.linalg.norm(kk, axis=1, keepdims=True), 1e-12)
        k = k + k * (a - 1) * self.w(p + "time_mix_k_a.weight")
        aa = -kk
        bb = kk * a.reshape(H, N)
        rh, wh, kh, vh = (t.reshape(H, N) for t in (r, w, k, v))
        S = state["wkv"][i]
        y = np.zeros((H, N))
        for h in range(H):
            sa = S[h] @ aa[h]                                            # sa_i = sum_j a_j S[i][j]
            S[h] = S[h] * wh[h][None, :] + np.outer(vh[h], kh[h]) + np.outer(sa, bb[h])
            y[h] = S[h] @ rh[h]
        # GroupNorm over each head, eps 64e-5
        mu = y.mean(axis=1, keepdims=True)
        var = ((y - mu) ** 2).mean(axis=1, keepdims=True)
        y = ((y - mu) / np.sqrt(var + 64e-5)).reshape(-1) * self.w(p + "time_mix_ln.weight") + self.w(p + "time_mix_ln.bias")
        bonus = (rh * kh * self.w(p + "time_mix_r_k.weight").reshape(H, N)).sum(axis=1, keepdims=True) * vh
        y = y + bonus.reshape(-1)
        return self.w(p + "time_mix_output.weight") @ (y * g), v_first

    def channel_mix(self, i, x, state):
        p = f"blk.{i}."
        sx = state["ffn"][i] - x
        state["ffn"][i] = x
        xk = x + sx * self.w(p + "channel_mix_lerp_k.weight").reshape(-1)
        hidden = np.maximum(self.w(p + "channel_mix_key.weight") @ xk, 0.0) ** 2
        return self.w(p + "channel_mix_value.weight") @ hidden

    def step(self, token, state):
        x = layer_norm(self.w("token_embd.weight")[token], self.w("token_embd_norm.weight"),
                       self.w("token_embd_norm.bias"), self.eps)
        v_first = None
        for i in range(self.L):
            p = f"blk.{i}."
            a_in = layer_norm(x, self.w(p + "attn_norm.weight"), self.w(p + "attn_norm.bias"), self.eps)
            dx, v_first = self.time_mix(i, a_in, state, v_first)
            x = x + dx
            f_in = layer_norm(x, self.w(p + "attn_norm_2.weight"), self.w(p + "attn_norm_2.bias"), self.eps)
            x = x + self.channel_mix(i, f_in, state)
        x = layer_norm(x, self.w("output_norm.weight"), self.w("output_norm.bias"), self.eps)
        return self.w("output.weight") @ x

    def logits_for(self, tokens, state=None):
        """Returns [len(tokens), n_vocab] logits (row t = after token t) and the state."""
        state = self.zero_state() if state is None else state
        return np.stack([self.step(int(t), state) for t in tokens]), state


if __name__ == "__main__":
    model = NumpyRWKV7(sys.argv[1])
    ids = [int(t) for t in sys.argv[2:]] or [34, 105, 110]
    logits, _ = model.logits_for(ids)
    np.set_printoptions(precision=5, suppress=True)
    print(logits[-1])
