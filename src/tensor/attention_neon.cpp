// NEON inner loops of attention() (only called when active_isa() is Neon or
// NeonDotprod): the blocking of attention_avx2.cpp with four-float vectors.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "tensor/attention_kernels.h"
#include "tensor/fp16.h"
#include "tensor/simd/vec_neon.h"

namespace flatline::attention_detail {

namespace {

using Vec = simd::VecNeon;

// As in attention_avx2.cpp: the small register arrays below are indexed in
// loops with constant bounds that GCC leaves rolled at -O2 unless told.

float dot_one(const float* q, const float* k, int64_t dim) {
  float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    a0 = vfmaq_f32(a0, vld1q_f32(q + d), vld1q_f32(k + d));
    a1 = vfmaq_f32(a1, vld1q_f32(q + d + 4), vld1q_f32(k + d + 4));
  }
  for (; d + 4 <= dim; d += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + d), vld1q_f32(k + d));
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; d < dim; ++d) s += q[d] * k[d];
  return s;
}

void dots(const float* q, const float* k, int64_t n, int64_t dim, float* s) {
  int64_t j = 0;
  if (dim % 4 == 0) {
    for (; j + 4 <= n; j += 4) {
      const float* k0 = k + j * dim;
      float32x4_t acc[4];
      #pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) acc[i] = vdupq_n_f32(0);
      for (int64_t d = 0; d < dim; d += 4) {
        const float32x4_t qv = vld1q_f32(q + d);
        #pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) acc[i] = vfmaq_f32(acc[i], qv, vld1q_f32(k0 + i * dim + d));
      }
      #pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) s[j + i] = vaddvq_f32(acc[i]);
    }
  }
  for (; j < n; ++j) s[j] = dot_one(q, k + j * dim, dim);
}

float exp_sum(float* x, int64_t n, float m) {
  const float32x4_t mv = vdupq_n_f32(m);
  float32x4_t sum = vdupq_n_f32(0);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float32x4_t e = Vec::exp(vsubq_f32(vld1q_f32(x + j), mv));
    vst1q_f32(x + j, e);
    sum = vaddq_f32(sum, e);
  }
  float total = vaddvq_f32(sum);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    total += x[j];
  }
  return total;
}

void accumulate(float* acc, float c, const float* p, const float* v, int64_t n, int64_t dim) {
  const float32x4_t cv = vdupq_n_f32(c);
  int64_t d = 0;
  for (; d + 16 <= dim; d += 16) {
    float32x4_t a[4];
    #pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) a[u] = vmulq_f32(vld1q_f32(acc + d + 4 * u), cv);
    for (int64_t j = 0; j < n; ++j) {
      const float32x4_t pj = vdupq_n_f32(p[j]);
      const float* vj = v + j * dim + d;
      #pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) a[u] = vfmaq_f32(a[u], pj, vld1q_f32(vj + 4 * u));
    }
    #pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) vst1q_f32(acc + d + 4 * u, a[u]);
  }
  for (; d + 4 <= dim; d += 4) {
    float32x4_t a = vmulq_f32(vld1q_f32(acc + d), cv);
    for (int64_t j = 0; j < n; ++j) a = vfmaq_f32(a, vdupq_n_f32(p[j]), vld1q_f32(v + j * dim + d));
    vst1q_f32(acc + d, a);
  }
  for (; d < dim; ++d) {
    float a = acc[d] * c;
    for (int64_t j = 0; j < n; ++j) a += p[j] * v[j * dim + d];
    acc[d] = a;
  }
}

// RB query rows x 16 keys (four vectors), accumulated in registers over dk.
template <int RB>
void scores_tile(const float* q, int64_t dk, const float* kt, int64_t kt_stride, float* s, int64_t s_stride) {
  float32x4_t acc[RB][4];
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
    #pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) acc[r][u] = vdupq_n_f32(0);
  for (int64_t e = 0; e < dk; ++e) {
    float32x4_t kv[4];
    #pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) kv[u] = vld1q_f32(kt + e * kt_stride + 4 * u);
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const float32x4_t qr = vdupq_n_f32(q[r * dk + e]);
      #pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) acc[r][u] = vfmaq_f32(acc[r][u], qr, kv[u]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
    #pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) vst1q_f32(s + r * s_stride + 4 * u, acc[r][u]);
}

void scores_block(const float* q, int64_t n_rows, int64_t dk, const float* kt, int64_t kt_stride, int64_t n_keys,
                  float* s, int64_t s_stride) {
  // Whole 16-key tiles, possibly past n_keys (the caller leaves room).
  for (int64_t j = 0; j < n_keys; j += 16) {
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) scores_tile<4>(q + r * dk, dk, kt + j, kt_stride, s + r * s_stride + j, s_stride);
    for (; r < n_rows; ++r) scores_tile<1>(q + r * dk, dk, kt + j, kt_stride, s + r * s_stride + j, s_stride);
  }
}

template <int RB>
void accumulate_rows(float* acc, const float* c, const float* p, int64_t p_stride, const float* v, int64_t n_keys,
                     int64_t dv) {
  int64_t d = 0;
  for (; d + 8 <= dv; d += 8) {
    float32x4_t a[RB][2];
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const float32x4_t cr = vdupq_n_f32(c[r]);
      a[r][0] = vmulq_f32(vld1q_f32(acc + r * dv + d), cr);
      a[r][1] = vmulq_f32(vld1q_f32(acc + r * dv + d + 4), cr);
    }
    for (int64_t j = 0; j < n_keys; ++j) {
      const float32x4_t v0 = vld1q_f32(v + j * dv + d);
      const float32x4_t v1 = vld1q_f32(v + j * dv + d + 4);
      #pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        const float32x4_t pr = vdupq_n_f32(p[r * p_stride + j]);
        a[r][0] = vfmaq_f32(a[r][0], pr, v0);
        a[r][1] = vfmaq_f32(a[r][1], pr, v1);
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      vst1q_f32(acc + r * dv + d, a[r][0]);
      vst1q_f32(acc + r * dv + d + 4, a[r][1]);
    }
  }
  for (; d < dv; ++d)
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      float x = acc[r * dv + d] * c[r];
      for (int64_t j = 0; j < n_keys; ++j) x += p[r * p_stride + j] * v[j * dv + d];
      acc[r * dv + d] = x;
    }
}

void accumulate_block(float* acc, const float* c, int64_t n_rows, const float* p, int64_t p_stride, const float* v,
                      int64_t n_keys, int64_t dv) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4)
    accumulate_rows<4>(acc + r * dv, c + r, p + r * p_stride, p_stride, v, n_keys, dv);
  for (; r < n_rows; ++r) accumulate_rows<1>(acc + r * dv, c + r, p + r * p_stride, p_stride, v, n_keys, dv);
}

// One 4 x 4 block: pairs of lanes swapped by trn1/trn2 on 32-bit, then on
// 64-bit elements.
void transpose4x4(const float* src, int64_t ss, float* dst, int64_t ds) {
  const float32x4_t r0 = vld1q_f32(src), r1 = vld1q_f32(src + ss), r2 = vld1q_f32(src + 2 * ss),
                    r3 = vld1q_f32(src + 3 * ss);
  const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1)), t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));
  const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3)), t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
  vst1q_f32(dst, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
  vst1q_f32(dst + ds, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
  vst1q_f32(dst + 2 * ds, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
  vst1q_f32(dst + 3 * ds, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
}

void transpose(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst, int64_t dst_stride) {
  const int64_t r4 = rows / 4 * 4, c4 = cols / 4 * 4;
  for (int64_t r = 0; r < r4; r += 4)
    for (int64_t c = 0; c < c4; c += 4) transpose4x4(src + r * src_stride + c, src_stride, dst + c * dst_stride + r, dst_stride);
  for (int64_t r = 0; r < rows; ++r)  // the edges outside whole 4 x 4 blocks
    for (int64_t c = r < r4 ? c4 : 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

void to_f32(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, Vec::load_f16(h + i));
      for (; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        const float32x4_t d = vdupq_n_f32(fp16_to_fp32(b[i].d));
        for (int part = 0; part < 4; ++part) {
          const int16x8_t q16 = vmovl_s8(vld1_s8(b[i].qs + part * 8));
          float* out = dst + i * 32 + part * 8;
          vst1q_f32(out, vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(q16)))));
          vst1q_f32(out + 4, vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(q16))));
        }
      }
      return;
    }
    default: scalar_kernels().to_f32(type, src, dst, n);
  }
}

void from_f32(DType type, const float* src, void* dst, int64_t n) {
  if (type != DType::F16) {  // Q8_0 quantization is per token and cheap; the scalar path is fine
    scalar_kernels().from_f32(type, src, dst, n);
    return;
  }
  uint16_t* h = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(h + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
  for (; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

}  // namespace

const Kernels& neon_kernels() {
  static const Kernels k{dots, exp_sum, accumulate, scores_block, accumulate_block, transpose, to_f32, from_f32};
  return k;
}

}  // namespace flatline::attention_detail
