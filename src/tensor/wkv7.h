// The RWKV-7 WKV recurrence for one head over T tokens (FACTS.md §2.4),
// with a = -kk and b = kk * a:
//   sa_i = sum_j a_j S[i][j];  S[i][j] = S[i][j] w_j + v_i k_j + sa_i b_j;  y_i = sum_j S[i][j] r_j
// The state is stored key-major, S[j][i] at state[j * n + i], so every
// step is a vector operation over i with j broadcast (no horizontal sums).
// Scalar, AVX2, AVX-512 and NEON variants are chosen at run time (isa.h).
#pragma once

#include <cstdint>

namespace flatline {

struct Wkv7Inputs {
  // Token t's values for this head start at p + t * stride (n floats each).
  const float* r;
  const float* w;   // decay, in (0, 1)
  const float* k;   // key after the in-context-learning-rate adjustment
  const float* v;
  const float* kk;  // normalised key
  const float* a;   // in-context learning rate
  float* y;         // output
  int64_t stride;
};

constexpr int64_t kWkv7MaxHeadSize = 256;  // published RWKV-7 models use 64

// n (the head size) must be at most kWkv7MaxHeadSize.
void wkv7_head(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in);

namespace kernels {
// Variants; n must be a multiple of 8 (AVX2), 16 (AVX-512) or 4 (NEON).
void wkv7_head_scalar(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in);
void wkv7_head_avx2(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in);
void wkv7_head_avx512(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in);
void wkv7_head_neon(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in);
}  // namespace kernels

}  // namespace flatline
