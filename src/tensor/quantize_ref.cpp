// Weight quantizers for writing model files. Each follows the algorithm of
// ggml's reference quantizer for the type (quantize_row_*_ref, i.e. what
// llama-quantize does without an importance matrix), step by step and in the
// same float evaluation order, so the bytes come out the same (checked
// byte for byte against ggml's output in tests/tensor_ggml_ref_test.cpp).
// Differences, all in inputs ggml would turn into garbage or crash on:
//  - non-finite inputs are rejected with an Error (ggml: undefined results);
//  - Q5_1 clamps quants to 31 (ggml could wrap a 32 to 0 after rounding).
// Compiled without FMA contraction (C++20 mode, no -mfma), like ggml's
// reference build; a ggml built with contraction may differ in rare ties.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "tensor/fp16.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"
#include "util/error.h"

namespace flatline {

namespace {

using namespace blocks;
using kernels::round_even;

// ggml's GROUP_MAX_EPS: groups whose largest magnitude is below this are zero.
constexpr float kGroupMaxEps = 1e-15f;

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Rounds like ggml's nearest_int, but never overflows: values outside
// +-2^22 (which ggml asserts against) are clamped before rounding.
int nearest(float v) {
  if (v > 4194303.f) v = 4194303.f;
  if (v < -4194303.f) v = -4194303.f;
  return round_even(v);
}

// C's float -> int conversion (truncation toward zero), as ggml's (int8_t)
// casts of values known to be in range.
int truncate_to_int(float v) { return static_cast<int>(v); }

// Largest-magnitude element (the first one on ties) and its magnitude.
void signed_absmax(const float* x, int n, float& max, float& amax) {
  max = 0;
  amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (amax < ax) {
      amax = ax;
      max = x[i];
    }
  }
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float max, amax;
    signed_absmax(x, kQK, max, amax);
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, truncate_to_int(x[j] * id + 8.5f));
      const int hi = std::min(15, truncate_to_int(x[j + kQK / 2] * id + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(lo | hi << 4);
    }
  }
}

void min_max(const float* x, int n, float& min, float& max) {
  min = 3.402823466e+38f;
  max = -3.402823466e+38f;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min, max;
    min_max(x, kQK, min, max);
    const float d = (max - min) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, truncate_to_int((x[j] - min) * id + 0.5f));
      const int hi = std::min(15, truncate_to_int((x[j + kQK / 2] - min) * id + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>(lo | hi << 4);
    }
  }
}

// Stores 5-bit quants q[0..31] into a Q5 block's qs / qh.
void pack_q5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | (q[j + kQK / 2] & 0x0f) << 4);
    qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q[j + kQK / 2] >> 4) & 1) << (j + kQK / 2);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float max, amax;
    signed_absmax(x, kQK, max, amax);
    const float d = max / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    int q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = std::min(31, truncate_to_int(x[j] * id + 16.5f));
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min, max;
    min_max(x, kQK, min, max);
    const float d = (max - min) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    int q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = std::min(31, truncate_to_int((x[j] - min) * id + 0.5f));
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

// ---- K-quants -------------------------------------------------------------

// Scale and min for one sub-block of n values quantized to 0..nmax, found by
// ggml's search (make_qkx2_quants): start from the min/max fit, then try
// nstep+1 scales around it and keep the weighted least-squares fit with the
// smallest weighted squared error. Returns the scale; *neg_min = -min >= 0.
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* neg_min,
                    uint8_t* L_try, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(clamp_int(l, 0, nmax));
    const float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest(iscale * (x[i] - min)), 0, nmax);
      L_try[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float lf = static_cast<float>(l);
      sum_l += w * lf;
      sum_l2 += w * lf * lf;
      sum_xl += w * lf * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * static_cast<float>(L_try[i]) + this_min - x[i];
        error += weights[i] * (diff * diff);
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = L_try[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// Shared part of Q4_K and Q5_K: per sub-block of 32 fit a scale and min,
// quantize those to 6 bits against the super-block maxima, then requantize
// every value with the final (rounded) scale and min into L[0..255].
void quantize_k_scales(const float* x, int nmax, float rmin, int nstep, half& d_out, half& dmin_out,
                       uint8_t* packed_scales, uint8_t* L) {
  float scales[8], mins[8], weights[32];
  uint8_t L_try[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], L_try, rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int into a uint8_t before clamping; values are in
    // [0, 63.5] so the narrowing never wraps.
    ls[j] = static_cast<uint8_t>(std::min(63, nearest(inv_scale * scales[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, nearest(inv_min * mins[j])));
  }
  k4_pack_scale_min(ls, lm, packed_scales);
  d_out = fp32_to_fp16(max_scale / 63.f);
  dmin_out = fp32_to_fp16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, packed_scales, sc, m);
    const float d = fp16_to_fp32(d_out) * static_cast<float>(sc);
    if (d == 0) continue;
    const float dm = fp16_to_fp32(dmin_out) * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) L[32 * j + l] = static_cast<uint8_t>(clamp_int(nearest((x[32 * j + l] + dm) / d), 0, nmax));
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_scales(x, 15, -1.f, 20, y[i].d, y[i].dmin, y[i].scales, L);
    for (int chunk = 0; chunk < 4; ++chunk)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * chunk + l] = static_cast<uint8_t>(L[64 * chunk + l] | L[64 * chunk + 32 + l] << 4);
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_scales(x, 31, -0.5f, 15, y[i].d, y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int chunk = 0; chunk < 4; ++chunk) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * chunk + l], hi = L[64 * chunk + 32 + l];
        y[i].qs[32 * chunk + l] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
        y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) & 1) << (2 * chunk) | ((hi >> 4) & 1) << (2 * chunk + 1));
      }
    }
  }
}

// Symmetric scale for n values quantized to -nmax..nmax-1 (stored with +nmax
// into L), ggml's make_qx_quants with rmse_type 1 (weights x^2): the plain
// absmax fit, then 18 nearby scales, keeping the best weighted fit.
float fit_symmetric_scale(int n, int nmax, const float* x, int8_t* L) {
  float max, amax;
  signed_absmax(x, n, max, amax);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto quant = [&](float iscale, int i) { return clamp_int(nearest(iscale * x[i]), -nmax, nmax - 1); };
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = quant(iscale, i);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    const float lf = static_cast<float>(l);
    sumlx += w * x[i] * lf;
    suml2 += w * lf * lf;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float lf = static_cast<float>(quant(iscale, i));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * lf;
      suml2 += w * lf * lf;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + quant(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = fit_symmetric_scale(16, 32, x + 16 * ib, L + 16 * ib);
      const float abs_scale = std::fabs(scales[ib]);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * static_cast<float>(y[i].scales[j]);
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<int8_t>(clamp_int(nearest(x[16 * j + l] / d), -32, 31) + 32);
    }
    for (int half = 0; half < 2; ++half) {
      uint8_t* ql = y[i].ql + 64 * half;
      uint8_t* qh = y[i].qh + 32 * half;
      const int8_t* Lh = L + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
        ql[l] = static_cast<uint8_t>((q0 & 0x0f) | (q2 & 0x0f) << 4);
        ql[l + 32] = static_cast<uint8_t>((q1 & 0x0f) | (q3 & 0x0f) << 4);
        qh[l] = static_cast<uint8_t>((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
      }
    }
  }
}

void require_finite(DType type, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(src[i]))
      throw Error("quantize " + std::string(dtype_name(type)) + ": element " + std::to_string(i) +
                  " is not a finite number (" + std::to_string(src[i]) + ")");
}

}  // namespace

bool can_quantize(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  if (!can_quantize(type))
    throw Error("quantize: cannot quantize to " + std::string(dtype_name(type)) +
                " (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  const int64_t block = traits(type).block_size;
  if (n < 0 || n % block != 0)
    throw Error("quantize " + std::string(dtype_name(type)) + ": row of " + std::to_string(n) +
                " elements is not a multiple of the block size " + std::to_string(block));
  const int64_t nb = n / block;
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case DType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
      return;
    }
    default: break;
  }
  require_finite(type, src, n);
  switch (type) {
    case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case DType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case DType::Q5_1: return quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case DType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
    case DType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
    case DType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
    default: break;
  }
}

}  // namespace flatline
