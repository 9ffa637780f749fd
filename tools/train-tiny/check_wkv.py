#!/usr/bin/python3
"""Checks the chunked WKV used for training against the step-by-step recurrence
(float64 values and gradients, float32 values), including strong decays and a
length that is not a multiple of the chunk."""

import sys

import torch

from wkv7 import wkv7_chunked, wkv7_sequential


def random_inputs(B, T, H, N, decay_spread, dtype, gen):
    r = torch.randn(B, T, H, N, dtype=dtype, generator=gen)
    k = torch.randn(B, T, H, N, dtype=dtype, generator=gen) * 0.3
    v = torch.randn(B, T, H, N, dtype=dtype, generator=gen)
    logw = -0.606531 * torch.sigmoid(torch.randn(B, T, H, N, dtype=dtype, generator=gen) * decay_spread)
    kk = torch.nn.functional.normalize(torch.randn(B, T, H, N, dtype=dtype, generator=gen), dim=-1)
    iclr = torch.sigmoid(torch.randn(B, T, H, N, dtype=dtype, generator=gen) * decay_spread)
    state = torch.randn(B, H, N, N, dtype=dtype, generator=gen) * 0.1
    return [r, logw, k, v, -kk, kk * iclr, state]


def main():
    gen = torch.Generator().manual_seed(0)
    ok = True
    for spread, T, chunk in [(3.0, 53, 16), (100.0, 96, 32), (3.0, 130, 64)]:
        args = random_inputs(2, T, 2, 64, spread, torch.float64, gen)
        y_ref, s_ref = wkv7_sequential(*args)
        y, s = wkv7_chunked(*args, chunk=chunk)
        d64 = max((y - y_ref).abs().max().item(), (s - s_ref).abs().max().item())
        y32, _ = wkv7_chunked(*[a.float() for a in args], chunk=chunk)
        d32 = (y32.double() - y_ref).abs().max().item() / y_ref.abs().max().item()
        leaves = [a.clone().requires_grad_() for a in args]
        y, s = wkv7_chunked(*leaves, chunk=chunk)
        (y.sin().sum() + s.cos().sum()).backward()
        grads = [a.grad for a in leaves]
        leaves = [a.clone().requires_grad_() for a in args]
        y, s = wkv7_sequential(*leaves)
        (y.sin().sum() + s.cos().sum()).backward()
        dg = max((g - a.grad).abs().max().item() for g, a in zip(grads, leaves))
        good = d64 < 1e-10 and dg < 1e-9 and d32 < 1e-5
        ok &= good
        print(f"T={T} chunk={chunk} decay spread {spread}: f64 max diff {d64:.2e}, grad max diff {dg:.2e}, "
              f"f32 rel diff {d32:.2e} {'ok' if good else 'FAIL'}")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
