// Activation quantizers for the integer dot products, in ggml's block
// layouts. They reproduce what ggml's x86 CPU backend computes (the numbers
// llama.cpp's logits are made of), which is not quite the reference
// quantizers used for weights:
//  - Q8_0 / Q8_1 (quantize_row_q8_0 / _q8_1 with AVX): d = amax / 127,
//    q = round_half_even(x * (127 / amax)); Q8_1 adds s = fp16(d * sum(q)).
//    (The weight quantizer for Q8_0 instead multiplies by 1/d and rounds half
//    away from zero.)
//  - Q8_K (quantize_row_q8_K_ref on every platform): iscale = -127 / max,
//    where max is the signed largest-magnitude value, q = round_half_even(
//    iscale * x) capped at 127, d = 1 / iscale as a plain float, bsums = sums
//    of 16 quants.
#include <cmath>
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"

namespace flatline::kernels {

using namespace blocks;

int round_even(float v) { return static_cast<int>(std::nearbyint(v)); }

namespace {

// x86's float -> int8 path: round half to even, saturate; NaN (the
// "integer indefinite" result of cvtps2dq) ends up as -128.
int8_t to_int8(float v) {
  const float r = std::nearbyint(v);
  if (!(r >= -128.f)) return -128;
  if (r > 127.f) return 127;
  return static_cast<int8_t>(r);
}

float block_absmax(const float* x, int n) {
  float amax = 0;
  for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  return amax;
}

}  // namespace

void quantize_act_q8_0(const float* x, int64_t n, void* dst) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float amax = block_absmax(x, kQK);
    y[i].d = fp32_to_fp16(amax / 127.f);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = to_int8(x[j] * id);
  }
}

void quantize_act_q8_1(const float* x, int64_t n, void* dst) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float amax = block_absmax(x, kQK);
    const float d = amax / 127.f;
    y[i].d = fp32_to_fp16(d);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = to_int8(x[j] * id);
      sum += y[i].qs[j];
    }
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

void quantize_act_q8_k(const float* x, int64_t n, void* dst) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = round_even(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v > 127 ? 127 : v);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * g + j];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace flatline::kernels
