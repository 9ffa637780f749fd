// The time-mixing kernels of Mamba-style state-space layers: the causal
// depthwise convolution and the selective scans of Mamba-1 (a decay per
// channel and state entry) and Mamba-2 (one scalar decay per head). They
// run token by token within a chunk with the state in registers or L1: on a
// CPU this costs fewer operations than the chunked matmul form ("SSD") that
// GPUs use, and the scans are a small share of a layer's time next to the
// projections. Scalar, AVX2 and AVX-512 variants of one body (simd/ssm_body.h)
// are picked at run time (isa.h).
#pragma once

#include <cstdint>

namespace flatline {

// y[t][c] = silu(bias[c] + sum_k taps[k][c] * u[t + k - (d_conv - 1)][c]),
// where u[t] = x[t] for t >= 0 and u[-1 - i] = window[d_conv - 2 - i]. On
// return `window` holds the last d_conv - 1 inputs (oldest first).
struct Conv1dArgs {
  float* window;          // [d_conv - 1][channels]
  const float* x;         // row t at x + t * x_stride
  int64_t x_stride;
  float* y;               // row t at y + t * y_stride
  int64_t y_stride;
  int64_t tokens, channels, d_conv;
  const float* taps;      // [d_conv][channels]
  const float* bias;      // [channels]
};
// Channels [c0, c1) only, so callers can split the channels over threads.
void conv1d_silu(const Conv1dArgs& a, int64_t c0, int64_t c1);

// Mamba-2, one head: dt' = softplus(dt + dt_bias), dA = exp(dt' A);
//   h[n][p] = h[n][p] dA + dt' B[n] x[p];  y[p] = sum_n h[n][p] C[n] + D x[p]
struct Ssm2Args {
  float* h;                    // [d_state][head_dim], the head's state
  int64_t d_state, head_dim, tokens;
  const float* x; int64_t x_stride;        // head_dim values per token
  const float* B; const float* C; int64_t bc_stride;  // d_state values per token
  const float* dt; int64_t dt_stride;      // one value per token
  float dt_bias, A, D;
  float* y; int64_t y_stride;
};
void ssm2_scan_head(const Ssm2Args& a);

// Mamba-1, channels [c0, c1): dt'[c] = softplus(dt[c]);
//   h[n][c] = h[n][c] exp(dt'[c] A[n][c]) + dt'[c] B[n] x[c]
//   y[c] = sum_n h[n][c] C[n] + D[c] x[c]
struct Ssm1Args {
  float* h;                    // [d_state][channels], the layer's state
  int64_t d_state, channels, tokens;
  const float* x; int64_t x_stride;
  const float* dt; int64_t dt_stride;      // per channel, bias already added
  const float* B; const float* C; int64_t bc_stride;
  const float* A;              // [d_state][channels]
  const float* D;              // [channels]
  float* y; int64_t y_stride;
};
void ssm1_scan(const Ssm1Args& a, int64_t c0, int64_t c1);

namespace kernels {
// The variants, for tests.
struct SsmKernels {
  void (*conv1d_silu)(const Conv1dArgs&, int64_t, int64_t);
  void (*ssm2_scan_head)(const Ssm2Args&);
  void (*ssm1_scan)(const Ssm1Args&, int64_t, int64_t);
};
const SsmKernels& ssm_scalar();
const SsmKernels& ssm_avx2();
const SsmKernels& ssm_avx512();
const SsmKernels& ssm_neon();
}  // namespace kernels

}  // namespace flatline
