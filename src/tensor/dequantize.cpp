// Scalar dequantization of every computable type: the reference the SIMD
// versions and the dot kernels are tested against. Each function reads the
// block layout documented in quant_blocks.h.
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"
#include "util/error.h"

namespace flatline::kernels {

namespace {

using namespace blocks;

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void dequantize_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - 8);
      y[j + kQK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 0x0f) + m;
      y[j + kQK / 2] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

// 5-bit quant j of a Q5_0 / Q5_1 block (0..31).
int q5_value(const uint8_t* qs, uint32_t qh, int j) {
  int low = j < kQK / 2 ? (qs[j] & 0x0f) : (qs[j - kQK / 2] >> 4);
  return low | static_cast<int>((qh >> j) & 1) << 4;
}

void dequantize_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(q5_value(b[i].qs, qh, j) - 16);
  }
}

void dequantize_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(q5_value(b[i].qs, qh, j)) + m;
  }
}

void dequantize_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(b[i].qs[j]);
  }
}

void dequantize_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = b[i].qs + 32 * chunk;
      uint8_t sc_lo, m_lo, sc_hi, m_hi;
      k4_scale_min(2 * chunk, b[i].scales, sc_lo, m_lo);
      k4_scale_min(2 * chunk + 1, b[i].scales, sc_hi, m_hi);
      const float d_lo = d * sc_lo, min_lo = dmin * m_lo;
      const float d_hi = d * sc_hi, min_hi = dmin * m_hi;
      for (int l = 0; l < 32; ++l) y[l] = d_lo * static_cast<float>(q[l] & 0x0f) - min_lo;
      for (int l = 0; l < 32; ++l) y[32 + l] = d_hi * static_cast<float>(q[l] >> 4) - min_hi;
      y += 64;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = b[i].qs + 32 * chunk;
      const uint8_t bit_lo = static_cast<uint8_t>(1u << (2 * chunk));
      const uint8_t bit_hi = static_cast<uint8_t>(1u << (2 * chunk + 1));
      uint8_t sc_lo, m_lo, sc_hi, m_hi;
      k4_scale_min(2 * chunk, b[i].scales, sc_lo, m_lo);
      k4_scale_min(2 * chunk + 1, b[i].scales, sc_hi, m_hi);
      const float d_lo = d * sc_lo, min_lo = dmin * m_lo;
      const float d_hi = d * sc_hi, min_hi = dmin * m_hi;
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] & 0x0f) + ((b[i].qh[l] & bit_lo) ? 16 : 0);
        y[l] = d_lo * static_cast<float>(v) - min_lo;
      }
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> 4) + ((b[i].qh[l] & bit_hi) ? 16 : 0);
        y[32 + l] = d_hi * static_cast<float>(v) - min_hi;
      }
      y += 64;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b[i].ql + 64 * half;
      const uint8_t* qh = b[i].qh + 32 * half;
      const int8_t* sc = b[i].scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int q0 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q1 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        const int sub = l / 16;
        y[l] = d * static_cast<float>(sc[sub]) * static_cast<float>(q0);
        y[l + 32] = d * static_cast<float>(sc[sub + 2]) * static_cast<float>(q1);
        y[l + 64] = d * static_cast<float>(sc[sub + 4]) * static_cast<float>(q2);
        y[l + 96] = d * static_cast<float>(sc[sub + 6]) * static_cast<float>(q3);
      }
      y += 128;
    }
  }
}

}  // namespace

void dequantize_row_scalar(DType type, const void* src, float* dst, int64_t n) {
  const int64_t block = traits(type).block_size;
  if (n < 0 || n % block != 0)
    throw Error("dequantize " + std::string(dtype_name(type)) + ": row of " + std::to_string(n) +
                " elements is not a multiple of the block size " + std::to_string(block));
  const int64_t nb = n / block;
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
      return;
    }
    case DType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::Q4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::Q5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case DType::Q5_1: return dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case DType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
    case DType::Q5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
    case DType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
    default:
      throw Error("dequantize: tensor type " + std::string(dtype_name(type)) +
                  " is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
}

}  // namespace flatline::kernels
