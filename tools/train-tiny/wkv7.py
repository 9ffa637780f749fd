"""The RWKV-7 WKV recurrence in PyTorch: a step-by-step reference and a chunked
form that is fast enough to train on a CPU.

Per head, the state S is an N x N matrix indexed [value i][key j]. For each token
(all vectors are per head, length N):

    S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T
    y_t = S_t r_t

with w_t in (0, 1) the per-key decay and, in RWKV-7, a = -kk, b = kk * iclr.

Chunked form (derived here). Inside a chunk of C tokens starting from state S0,
let W_t = prod_{s<=t} w_s (per key) and write S_t = Sh_t diag(W_t). Then

    Sh_t = Sh_{t-1} + u_t bt_t^T + v_t kt_t^T,   u_t = Sh_{t-1} at_t
    at_t = a_t * W_{t-1},  bt_t = b_t / W_t,  kt_t = k_t / W_t,  rt_t = r_t * W_t

so u_t = S0 at_t + sum_{s<t} (at_t . bt_s) u_s + (at_t . kt_s) v_s, a unit lower
triangular system over the chunk: U = M^-1 (At S0^T + Lak V) with M = I - Lab.
Everything but the chunk-to-chunk state hand-over is batched matrix algebra:

    Y      = (Rt + Lrb A') S0^T + (Lrb U0 + Lrk V)     A' = M^-1 At, U0 = M^-1 Lak V
    S_next = S0 G + Hc,   G = diag(W_C) + A'^T Bh,  Hc = U0^T Bh + V^T Kh

where Lxy[t, s] = x_t . y_s (strictly lower for Lab/Lak, inclusive for Lrb/Lrk)
and Bh/Kh are b/k decayed from their step to the end of the chunk. The decay
is at least exp(-0.606531) per step, so 1/W stays below e^(0.61 C): C = 16 keeps
every factor far inside float32 range.
"""

import torch


def wkv7_sequential(r, logw, k, v, a, b, state):
    """Reference recurrence. r, logw, k, v, a, b: [B, T, H, N]; state [B, H, N, N]
    (value x key). Returns y [B, T, H, N] and the final state."""
    w = torch.exp(logw)
    S = state
    ys = []
    for t in range(r.shape[1]):
        sa = torch.einsum("bhij,bhj->bhi", S, a[:, t])
        S = S * w[:, t, :, None, :] + sa[..., None] * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        ys.append(torch.einsum("bhij,bhj->bhi", S, r[:, t]))
    return torch.stack(ys, dim=1), S


def _chunk_terms(r, logw, k, v, a, b):
    """Per-chunk quantities that do not depend on the incoming state.
    Inputs [B, H, NC, C, N]. Returns Q, Y0 (for the outputs) and G, Hc (for the state)."""
    C = r.shape[-2]
    cum = torch.cumsum(logw, dim=-2)           # log W_t (inclusive)
    cum_prev = cum - logw                      # log W_{t-1}
    cum_end = cum[..., -1:, :]                 # log W_C
    at = a * torch.exp(cum_prev)
    rt = r * torch.exp(cum)
    inv_w = torch.exp(-cum)
    bt = b * inv_w
    kt = k * inv_w
    to_end = torch.exp(cum_end - cum)          # decay from step t to the chunk's end, <= 1
    bh = b * to_end
    kh = k * to_end

    strict = torch.ones(C, C, dtype=torch.bool, device=r.device).tril(-1)
    incl = torch.ones(C, C, dtype=torch.bool, device=r.device).tril(0)
    lab = (at @ bt.transpose(-1, -2)).masked_fill(~strict, 0.0)
    lak = (at @ kt.transpose(-1, -2)).masked_fill(~strict, 0.0)
    lrb = (rt @ bt.transpose(-1, -2)).masked_fill(~incl, 0.0)
    lrk = (rt @ kt.transpose(-1, -2)).masked_fill(~incl, 0.0)

    eye = torch.eye(C, dtype=r.dtype, device=r.device)
    m = eye - lab
    a_prime = torch.linalg.solve_triangular(m, at, upper=False, unitriangular=True)
    u0 = torch.linalg.solve_triangular(m, lak @ v, upper=False, unitriangular=True)

    q = rt + lrb @ a_prime                                   # [.., C, Nk]
    y0 = lrb @ u0 + lrk @ v                                  # [.., C, Nv]
    g = torch.diag_embed(torch.exp(cum_end[..., 0, :])) + a_prime.transpose(-1, -2) @ bh   # [.., Nk, Nk]
    hc = u0.transpose(-1, -2) @ bh + v.transpose(-1, -2) @ kh                               # [.., Nv, Nk]
    return q, y0, g, hc


def _wkv7_chunked_exact(r, logw, k, v, a, b, state, chunk):
    B, T, H, N = r.shape
    nc = T // chunk

    def split(x):
        return x.reshape(B, nc, chunk, H, N).permute(0, 3, 1, 2, 4)  # [B, H, NC, C, N]

    q, y0, g, hc = _chunk_terms(*(split(x) for x in (r, logw, k, v, a, b)))
    # unbind (not indexing) so that autograd's backward stacks the chunk gradients
    # instead of scattering each one into a zero tensor of the full size.
    S = state
    starts = []
    for g_c, hc_c in zip(g.unbind(2), hc.unbind(2)):
        starts.append(S)
        S = S @ g_c + hc_c
    s_in = torch.stack(starts, dim=2)                              # [B, H, NC, Nv, Nk]
    y = q @ s_in.transpose(-1, -2) + y0                            # [B, H, NC, C, Nv]
    return y.permute(0, 2, 3, 1, 4).reshape(B, T, H, N), S


def wkv7_chunked(r, logw, k, v, a, b, state, chunk=16):
    """Same contract as wkv7_sequential. T need not be a multiple of chunk."""
    T = r.shape[1]
    main = T // chunk * chunk
    parts = []
    S = state
    if main:
        y, S = _wkv7_chunked_exact(*(x[:, :main] for x in (r, logw, k, v, a, b)), S, chunk)
        parts.append(y)
    if main < T:
        y, S = _wkv7_chunked_exact(*(x[:, main:] for x in (r, logw, k, v, a, b)), S, T - main)
        parts.append(y)
    return torch.cat(parts, dim=1), S
