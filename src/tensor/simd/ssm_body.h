// ISA-neutral bodies of the state-space kernels (tensor/ssm.h), written once
// against a vector type (simd/vec_scalar.h); instantiated in ssm.cpp,
// ssm_avx2.cpp and ssm_avx512.cpp. Include after the vector type's header,
// inside no namespace.
#pragma once

#include <algorithm>
#include <cmath>

#include "tensor/ssm.h"

namespace flatline::simd {
namespace {

inline float softplus_f(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

template <class Vec>
struct SsmBody {
  using V = typename Vec::V;
  static constexpr int W = Vec::kWidth;

  static V silu(V x) {
    // x / (1 + e^-x)
    const V e = Vec::exp(Vec::sub(Vec::zero(), x));
    return Vec::div(x, Vec::add(Vec::set1(1.0f), e));
  }

  // One group of W channels starting at c (n lanes valid).
  static void conv_group(const Conv1dArgs& a, int64_t c, int n) {
    const int64_t K = a.d_conv, C = a.channels;
    auto ld = [&](const float* p) { return n == W ? Vec::load(p) : Vec::load_partial(p, n); };
    auto st = [&](float* p, V v) {
      if (n == W) Vec::store(p, v);
      else Vec::store_partial(p, v, n);
    };
    V taps[8];  // d_conv <= 8 (checked by the caller)
    for (int64_t k = 0; k < K; ++k) taps[k] = ld(a.taps + k * C + c);
    V hist[8];  // the last K - 1 inputs, oldest first
    for (int64_t k = 0; k + 1 < K; ++k) hist[k] = ld(a.window + k * C + c);
    const V bias = ld(a.bias + c);
    for (int64_t t = 0; t < a.tokens; ++t) {
      const V u = ld(a.x + t * a.x_stride + c);
      V acc = Vec::fmadd(taps[K - 1], u, bias);
      for (int64_t k = 0; k + 1 < K; ++k) acc = Vec::fmadd(taps[k], hist[k], acc);
      for (int64_t k = 0; k + 2 < K; ++k) hist[k] = hist[k + 1];
      if (K > 1) hist[K - 2] = u;
      st(a.y + t * a.y_stride + c, silu(acc));
    }
    for (int64_t k = 0; k + 1 < K; ++k) st(a.window + k * C + c, hist[k]);
  }

  static void conv1d_silu(const Conv1dArgs& a, int64_t c0, int64_t c1) {
    int64_t c = c0;
    for (; c + W <= c1; c += W) conv_group(a, c, W);
    if (c < c1) conv_group(a, c, static_cast<int>(c1 - c));
  }

  // Mamba-2: y accumulated in registers over the state rows n (head_dim <= 256).
  static void ssm2_scan_head(const Ssm2Args& a) {
    const int64_t P = a.head_dim, N = a.d_state;
    const int64_t nv = (P + W - 1) / W;
    const int tail = static_cast<int>(P - (nv - 1) * W);
    V y[256 / W > 0 ? 256 / W : 1], xv[256 / W > 0 ? 256 / W : 1];
    auto ld = [&](const float* p, int64_t i) { return i + 1 < nv || tail == W ? Vec::load(p) : Vec::load_partial(p, tail); };
    auto st = [&](float* p, int64_t i, V v) {
      if (i + 1 < nv || tail == W) Vec::store(p, v);
      else Vec::store_partial(p, v, tail);
    };
    for (int64_t t = 0; t < a.tokens; ++t) {
      const float dt = softplus_f(a.dt[t * a.dt_stride] + a.dt_bias);
      const V dA = Vec::set1(std::exp(dt * a.A));
      const float* x = a.x + t * a.x_stride;
      const float* B = a.B + t * a.bc_stride;
      const float* C = a.C + t * a.bc_stride;
      const V Dv = Vec::set1(a.D);
      for (int64_t i = 0; i < nv; ++i) {
        xv[i] = ld(x + i * W, i);
        y[i] = Vec::mul(Dv, xv[i]);
      }
      for (int64_t n = 0; n < N; ++n) {
        const V dtb = Vec::set1(dt * B[n]);
        const V c = Vec::set1(C[n]);
        float* h = a.h + n * P;
        for (int64_t i = 0; i < nv; ++i) {
          const V s = Vec::fmadd(ld(h + i * W, i), dA, Vec::mul(dtb, xv[i]));
          st(h + i * W, i, s);
          y[i] = Vec::fmadd(s, c, y[i]);
        }
      }
      float* out = a.y + t * a.y_stride;
      for (int64_t i = 0; i < nv; ++i) st(out + i * W, i, y[i]);
    }
  }

  // Mamba-1: channels in groups of W; per token and state row one exp per lane.
  static void ssm1_group(const Ssm1Args& a, int64_t c, int n) {
    const int64_t N = a.d_state, Ch = a.channels;
    auto ld = [&](const float* p) { return n == W ? Vec::load(p) : Vec::load_partial(p, n); };
    auto st = [&](float* p, V v) {
      if (n == W) Vec::store(p, v);
      else Vec::store_partial(p, v, n);
    };
    const V D = ld(a.D + c);
    for (int64_t t = 0; t < a.tokens; ++t) {
      float dt_s[W];
      const float* dt = a.dt + t * a.dt_stride + c;
      for (int i = 0; i < W; ++i) dt_s[i] = i < n ? softplus_f(dt[i]) : 0.0f;
      const V dtv = Vec::load(dt_s);
      const V x = ld(a.x + t * a.x_stride + c);
      const V dtx = Vec::mul(dtv, x);
      const float* B = a.B + t * a.bc_stride;
      const float* C = a.C + t * a.bc_stride;
      V y = Vec::mul(D, x);
      for (int64_t s = 0; s < N; ++s) {
        float* h = a.h + s * Ch + c;
        const V decay = Vec::exp(Vec::mul(dtv, ld(a.A + s * Ch + c)));
        const V hs = Vec::fmadd(ld(h), decay, Vec::mul(dtx, Vec::set1(B[s])));
        st(h, hs);
        y = Vec::fmadd(hs, Vec::set1(C[s]), y);
      }
      st(a.y + t * a.y_stride + c, y);
    }
  }

  static void ssm1_scan(const Ssm1Args& a, int64_t c0, int64_t c1) {
    int64_t c = c0;
    for (; c + W <= c1; c += W) ssm1_group(a, c, W);
    if (c < c1) ssm1_group(a, c, static_cast<int>(c1 - c));
  }

  static const kernels::SsmKernels& table() {
    static const kernels::SsmKernels k{conv1d_silu, ssm2_scan_head, ssm1_scan};
    return k;
  }
};

}  // namespace
}  // namespace flatline::simd
