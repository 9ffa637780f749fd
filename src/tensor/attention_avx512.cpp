// AVX-512 inner loops of attention() (compiled with -mavx512f etc.; only
// called when active_isa() is Avx512).
// GCC 12 warns about the deliberately undefined lanes inside its own
// avx512fintrin.h (_mm512_undefined_ps) when reductions are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "tensor/attention_kernels.h"
#include "tensor/fp16.h"
#include "util/error.h"

namespace flatline::attention_detail {

namespace {

// The register-blocked kernels below index small __m512/__m256 arrays in
// loops with constant bounds; at -O2 GCC leaves those loops rolled and the
// arrays in memory, so each one carries `#pragma GCC unroll`.

__mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

// exp(x) to about 2 ulp (Cephes polynomial on [-ln2/2, ln2/2]); inputs
// below -87.3 give values near the smallest normal float.
__m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3365f)), _mm512_set1_ps(88.3762f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

float dot_one(const float* q, const float* k, int64_t dim) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + 32 <= dim; d += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(k + d + 16), a1);
  }
  for (; d < dim; d += 16) {
    const __mmask16 m = dim - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - d);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, k + d), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

void dots(const float* q, const float* k, int64_t n, int64_t dim, float* s) {
  int64_t j = 0;
  if (dim % 16 == 0) {
    // Four keys at a time: each q vector is loaded once for four FMAs.
    for (; j + 4 <= n; j += 4) {
      const float* k0 = k + j * dim;
      const float* k1 = k0 + dim;
      const float* k2 = k1 + dim;
      const float* k3 = k2 + dim;
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
             a3 = _mm512_setzero_ps();
      for (int64_t d = 0; d < dim; d += 16) {
        const __m512 qv = _mm512_loadu_ps(q + d);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + d), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + d), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + d), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + d), a3);
      }
      s[j] = _mm512_reduce_add_ps(a0);
      s[j + 1] = _mm512_reduce_add_ps(a1);
      s[j + 2] = _mm512_reduce_add_ps(a2);
      s[j + 3] = _mm512_reduce_add_ps(a3);
    }
  }
  for (; j < n; ++j) s[j] = dot_one(q, k + j * dim, dim);
}

float exp_sum(float* x, int64_t n, float m) {
  const __m512 mv = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), mv));
    _mm512_storeu_ps(x + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < n) {
    const __mmask16 mask = tail_mask(n - j);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + j), mv));
    _mm512_mask_storeu_ps(x + j, mask, e);
    sum = _mm512_mask_add_ps(sum, mask, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

void accumulate(float* acc, float c, const float* p, const float* v, int64_t n, int64_t dim) {
  const __m512 cv = _mm512_set1_ps(c);
  int64_t d = 0;
  // 64 output columns stay in registers while all n value rows stream by.
  for (; d + 64 <= dim; d += 64) {
    __m512 a0 = _mm512_mul_ps(_mm512_loadu_ps(acc + d), cv);
    __m512 a1 = _mm512_mul_ps(_mm512_loadu_ps(acc + d + 16), cv);
    __m512 a2 = _mm512_mul_ps(_mm512_loadu_ps(acc + d + 32), cv);
    __m512 a3 = _mm512_mul_ps(_mm512_loadu_ps(acc + d + 48), cv);
    for (int64_t j = 0; j < n; ++j) {
      const __m512 pj = _mm512_set1_ps(p[j]);
      const float* vj = v + j * dim + d;
      a0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj), a0);
      a1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16), a1);
      a2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 32), a2);
      a3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 48), a3);
    }
    _mm512_storeu_ps(acc + d, a0);
    _mm512_storeu_ps(acc + d + 16, a1);
    _mm512_storeu_ps(acc + d + 32, a2);
    _mm512_storeu_ps(acc + d + 48, a3);
  }
  for (; d < dim; d += 16) {
    const __mmask16 mask = dim - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - d);
    __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, acc + d), cv);
    for (int64_t j = 0; j < n; ++j)
      a = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(mask, v + j * dim + d), a);
    _mm512_mask_storeu_ps(acc + d, mask, a);
  }
}

// RB query rows x NC chunks of 16 keys, accumulated in registers over dk.
template <int RB, int NC>
void scores_tile(const float* q, int64_t dk, const float* kt, int64_t kt_stride, float* s, int64_t s_stride) {
  __m512 acc[RB][NC];
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t e = 0; e < dk; ++e) {
    __m512 k[NC];
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) k[c] = _mm512_loadu_ps(kt + e * kt_stride + 16 * c);
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m512 qr = _mm512_set1_ps(q[r * dk + e]);
      #pragma GCC unroll 16
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(qr, k[c], acc[r][c]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(s + r * s_stride + 16 * c, acc[r][c]);
}

template <int RB>
void scores_rows(const float* q, int64_t dk, const float* kt, int64_t kt_stride, int64_t n_keys, float* s,
                 int64_t s_stride) {
  int64_t j = 0;
  for (; j + 48 < n_keys; j += 64) scores_tile<RB, 4>(q, dk, kt + j, kt_stride, s + j, s_stride);
  switch ((n_keys - j + 15) / 16) {  // 0 to 3 chunks of 16 keys remain
    case 3: scores_tile<RB, 3>(q, dk, kt + j, kt_stride, s + j, s_stride); break;
    case 2: scores_tile<RB, 2>(q, dk, kt + j, kt_stride, s + j, s_stride); break;
    case 1: scores_tile<RB, 1>(q, dk, kt + j, kt_stride, s + j, s_stride); break;
    default: break;
  }
}

void scores_block(const float* q, int64_t n_rows, int64_t dk, const float* kt, int64_t kt_stride, int64_t n_keys,
                  float* s, int64_t s_stride) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) scores_rows<4>(q + r * dk, dk, kt, kt_stride, n_keys, s + r * s_stride, s_stride);
  for (; r < n_rows; ++r) scores_rows<1>(q + r * dk, dk, kt, kt_stride, n_keys, s + r * s_stride, s_stride);
}

// RB rows of acc, 64 columns at a time in registers while the value rows stream by.
template <int RB>
void accumulate_rows(float* acc, const float* c, const float* p, int64_t p_stride, const float* v, int64_t n_keys,
                     int64_t dv) {
  int64_t d = 0;
  for (; d + 64 <= dv; d += 64) {
    __m512 a[RB][4];
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m512 cr = _mm512_set1_ps(c[r]);
      #pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) a[r][k] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * dv + d + 16 * k), cr);
    }
    for (int64_t j = 0; j < n_keys; ++j) {
      __m512 vj[4];
      #pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) vj[k] = _mm512_loadu_ps(v + j * dv + d + 16 * k);
      #pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) {
        const __m512 pr = _mm512_set1_ps(p[r * p_stride + j]);
        #pragma GCC unroll 16
        for (int k = 0; k < 4; ++k) a[r][k] = _mm512_fmadd_ps(pr, vj[k], a[r][k]);
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r)
      #pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) _mm512_storeu_ps(acc + r * dv + d + 16 * k, a[r][k]);
  }
  for (; d < dv; d += 16) {
    const __mmask16 mask = dv - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dv - d);
    __m512 a[RB];
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r)
      a[r] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, acc + r * dv + d), _mm512_set1_ps(c[r]));
    for (int64_t j = 0; j < n_keys; ++j) {
      const __m512 vj = _mm512_maskz_loadu_ps(mask, v + j * dv + d);
      #pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * p_stride + j]), vj, a[r]);
    }
    #pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) _mm512_mask_storeu_ps(acc + r * dv + d, mask, a[r]);
  }
}

void accumulate_block(float* acc, const float* c, int64_t n_rows, const float* p, int64_t p_stride, const float* v,
                      int64_t n_keys, int64_t dv) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4)
    accumulate_rows<4>(acc + r * dv, c + r, p + r * p_stride, p_stride, v, n_keys, dv);
  for (; r < n_rows; ++r) accumulate_rows<1>(acc + r * dv, c + r, p + r * p_stride, p_stride, v, n_keys, dv);
}

void to_f32(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
      for (; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(b[i].d));
        const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
        const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 16));
        _mm512_storeu_ps(dst + i * 32, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
        _mm512_storeu_ps(dst + i * 32 + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
      }
      return;
    }
    default: scalar_kernels().to_f32(type, src, dst, n);
  }
}

void from_f32(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::F16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      int64_t i = 0;
      for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
      for (; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case DType::Q8_0: {
      BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
      const __m512 sign_off = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
      for (int64_t i = 0; i < n / 32; ++i) {
        const __m512 x0 = _mm512_loadu_ps(src + i * 32);
        const __m512 x1 = _mm512_loadu_ps(src + i * 32 + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, sign_off), _mm512_and_ps(x1, sign_off)));
        const float d = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        b[i].d = fp32_to_fp16(d);
        // cvtps rounds to nearest even, as the scalar path's nearbyint.
        _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16),
                         _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id))));
      }
      return;
    }
    default: scalar_kernels().from_f32(type, src, dst, n);
  }
}

}  // namespace

const Kernels& avx512_kernels() {
  static const Kernels k{dots, exp_sum, accumulate, scores_block, accumulate_block, transpose_avx2, to_f32, from_f32};
  return k;
}

}  // namespace flatline::attention_detail
