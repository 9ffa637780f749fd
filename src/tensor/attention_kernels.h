// The inner loops of attention(), one table per instruction set. Internal to
// src/tensor/attention*.cpp; the scalar table is the reference the SIMD ones
// are tested against.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace flatline::attention_detail {

// ggml's Q8_0 block: 32 int8 values sharing one f16 scale.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

struct Kernels {
  // s[j] = dot(q, k + j * dim) over dim elements, for j < n.
  void (*dots)(const float* q, const float* k, int64_t n, int64_t dim, float* s);
  // x[j] = exp(x[j] - m) for j < n; returns the sum of the new x.
  float (*exp_sum)(float* x, int64_t n, float m);
  // acc = acc * c + sum_j p[j] * v[j * dim ...], over dim elements.
  void (*accumulate)(float* acc, float c, const float* p, const float* v, int64_t n, int64_t dim);
  // Blocks of query rows against a tile of keys (prompt processing):
  // s[r * s_stride + j] = dot(q + r * dk, column j of kt) for r < n_rows and
  // j < n_keys, where kt holds the keys transposed (kt[e * kt_stride + j]).
  // May also write entries up to j < round_up(n_keys, 16): both strides must
  // leave room for that.
  void (*scores_block)(const float* q, int64_t n_rows, int64_t dk, const float* kt, int64_t kt_stride,
                       int64_t n_keys, float* s, int64_t s_stride);
  // acc[r] = acc[r] * c[r] + sum_j p[r * p_stride + j] * v[j * dv ...] for r < n_rows.
  void (*accumulate_block)(float* acc, const float* c, int64_t n_rows, const float* p, int64_t p_stride,
                           const float* v, int64_t n_keys, int64_t dv);
  // dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols.
  void (*transpose)(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst,
                    int64_t dst_stride);
  // Row conversions for the KV storage types F32, F16, Q8_0.
  void (*to_f32)(DType type, const void* src, float* dst, int64_t n);
  void (*from_f32)(DType type, const float* src, void* dst, int64_t n);
};

// The AVX2 transpose, shared by the AVX-512 table.
void transpose_avx2(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst,
                    int64_t dst_stride);

const Kernels& scalar_kernels();
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();
const Kernels& neon_kernels();  // AArch64 builds only
const Kernels& active_kernels();  // picked from active_isa() at each call

}  // namespace flatline::attention_detail
