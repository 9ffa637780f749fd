// AVX2 + FMA + F16C inner loops of attention() (only called when
// active_isa() is Avx2 or better).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "tensor/attention_kernels.h"
#include "tensor/fp16.h"

namespace flatline::attention_detail {

namespace {

// The register-blocked kernels below index small __m512/__m256 arrays in
// loops with constant bounds; at -O2 GCC leaves those loops rolled and the
// arrays in memory, so each one carries `#pragma GCC unroll`.

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) to about 2 ulp (Cephes polynomial); inputs are clamped to
// [-87.3, 88.3] so that 2^n stays a normal float.
__m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365f)), _mm256_set1_ps(88.3762f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  // 2^n built in the exponent field; n lies in [-126, 127] after the clamp.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

float dot_one(const float* q, const float* k, int64_t dim) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 16 <= dim; d += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(k + d + 8), a1);
  }
  for (; d + 8 <= dim; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a0);
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; d < dim; ++d) s += q[d] * k[d];
  return s;
}

void dots(const float* q, const float* k, int64_t n, int64_t dim, float* s) {
  int64_t j = 0;
  if (dim % 8 == 0) {
    for (; j + 4 <= n; j += 4) {
      const float* k0 = k + j * dim;
      const float* k1 = k0 + dim;
      const float* k2 = k1 + dim;
      const float* k3 = k2 + dim;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps();
      for (int64_t d = 0; d < dim; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + d), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + d), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + d), a3);
      }
      s[j] = hsum(a0);
      s[j + 1] = hsum(a1);
      s[j + 2] = hsum(a2);
      s[j + 3] = hsum(a3);
    }
  }
  for (; j < n; ++j) s[j] = dot_one(q, k + j * dim, dim);
}

float exp_sum(float* x, int64_t n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));
    _mm256_storeu_ps(x + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum(sum);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    total += x[j];
  }
  return total;
}

void accumulate(float* acc, float c, const float* p, const float* v, int64_t n, int64_t dim) {
  const __m256 cv = _mm256_set1_ps(c);
  int64_t d = 0;
  for (; d + 32 <= dim; d += 32) {
    __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(acc + d), cv);
    __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(acc + d + 8), cv);
    __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(acc + d + 16), cv);
    __m256 a3 = _mm256_mul_ps(_mm256_loadu_ps(acc + d + 24), cv);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const float* vj = v + j * dim + d;
      a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj), a0);
      a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8), a1);
      a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 16), a2);
      a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 24), a3);
    }
    _mm256_storeu_ps(acc + d, a0);
    _mm256_storeu_ps(acc + d + 8, a1);
    _mm256_storeu_ps(acc + d + 16, a2);
    _mm256_storeu_ps(acc + d + 24, a3);
  }
  for (; d + 8 <= dim; d += 8) {
    __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc + d), cv);
    for (int64_t j = 0; j < n; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * dim + d), a);
    _mm256_storeu_ps(acc + d, a);
  }
  for (; d < dim; ++d) {
    float a = acc[d] * c;
    for (int64_t j = 0; j < n; ++j) a += p[j] * v[j * dim + d];
    acc[d] = a;
  }
}

// 4 query rows x 16 keys (two vectors), accumulated in registers over dk.
template <int RB>
void scores_tile(const float* q, int64_t dk, const float* kt, int64_t kt_stride, float* s, int64_t s_stride) {
  __m256 acc[RB][2];
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t e = 0; e < dk; ++e) {
    const __m256 k0 = _mm256_loadu_ps(kt + e * kt_stride);
    const __m256 k1 = _mm256_loadu_ps(kt + e * kt_stride + 8);
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m256 qr = _mm256_broadcast_ss(q + r * dk + e);
      acc[r][0] = _mm256_fmadd_ps(qr, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qr, k1, acc[r][1]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
    _mm256_storeu_ps(s + r * s_stride, acc[r][0]);
    _mm256_storeu_ps(s + r * s_stride + 8, acc[r][1]);
  }
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
  for (; d + 16 <= dv; d += 16) {
    __m256 a[RB][2];
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m256 cr = _mm256_set1_ps(c[r]);
      a[r][0] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * dv + d), cr);
      a[r][1] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * dv + d + 8), cr);
    }
    for (int64_t j = 0; j < n_keys; ++j) {
      const __m256 v0 = _mm256_loadu_ps(v + j * dv + d);
      const __m256 v1 = _mm256_loadu_ps(v + j * dv + d + 8);
      #pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        const __m256 pr = _mm256_broadcast_ss(p + r * p_stride + j);
        a[r][0] = _mm256_fmadd_ps(pr, v0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(pr, v1, a[r][1]);
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      _mm256_storeu_ps(acc + r * dv + d, a[r][0]);
      _mm256_storeu_ps(acc + r * dv + d + 8, a[r][1]);
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

// One 8 x 8 block: the classic unpack / shuffle / lane-permute sequence.
void transpose8x8(const float* src, int64_t ss, float* dst, int64_t ds) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss), r2 = _mm256_loadu_ps(src + 2 * ss),
               r3 = _mm256_loadu_ps(src + 3 * ss), r4 = _mm256_loadu_ps(src + 4 * ss),
               r5 = _mm256_loadu_ps(src + 5 * ss), r6 = _mm256_loadu_ps(src + 6 * ss),
               r7 = _mm256_loadu_ps(src + 7 * ss);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + ds, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(s3, s7, 0x31));
}

void to_f32(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
      for (; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
        for (int part = 0; part < 4; ++part) {
          const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].qs + part * 8));
          _mm256_storeu_ps(dst + i * 32 + part * 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
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
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

}  // namespace

void transpose_avx2(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst,
                    int64_t dst_stride) {
  const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
  for (int64_t r = 0; r < r8; r += 8)
    for (int64_t c = 0; c < c8; c += 8) transpose8x8(src + r * src_stride + c, src_stride, dst + c * dst_stride + r, dst_stride);
  for (int64_t r = 0; r < rows; ++r)  // the edges outside whole 8 x 8 blocks
    for (int64_t c = r < r8 ? c8 : 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

const Kernels& avx2_kernels() {
  static const Kernels k{dots, exp_sum, accumulate, scores_block, accumulate_block, transpose_avx2, to_f32, from_f32};
  return k;
}

}  // namespace flatline::attention_detail
