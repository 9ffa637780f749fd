// WKV-7, avx512 variant (see wkv7.h): vectors of 16 values of i, j broadcast.
// Up to 16 vectors (n <= 256) of sa and y stay in registers or L1.
#include <immintrin.h>

#include "tensor/wkv7.h"

namespace flatline::kernels {

void wkv7_head_avx512(float* S, int64_t n, int64_t tokens, const Wkv7Inputs& in) {
  constexpr int W = 16;
  const int64_t nv = n / W;
  __m512 sa[256 / W], y[256 / W];
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t o = t * in.stride;
    const float *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o, *kk = in.kk + o, *a = in.a + o;
    for (int64_t c = 0; c < nv; ++c) sa[c] = y[c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const __m512 kkj = _mm512_set1_ps(kk[j]);
      const float* col = S + j * n;
      for (int64_t c = 0; c < nv; ++c) sa[c] = _mm512_fnmadd_ps(kkj, _mm512_loadu_ps(col + c * W), sa[c]);
    }
    for (int64_t j = 0; j < n; ++j) {
      const __m512 wj = _mm512_set1_ps(w[j]), kj = _mm512_set1_ps(k[j]), bj = _mm512_set1_ps(kk[j] * a[j]), rj = _mm512_set1_ps(r[j]);
      float* col = S + j * n;
      for (int64_t c = 0; c < nv; ++c) {
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(col + c * W), wj);
        s = _mm512_fmadd_ps(_mm512_loadu_ps(v + c * W), kj, s);
        s = _mm512_fmadd_ps(sa[c], bj, s);
        _mm512_storeu_ps(col + c * W, s);
        y[c] = _mm512_fmadd_ps(s, rj, y[c]);
      }
    }
    for (int64_t c = 0; c < nv; ++c) _mm512_storeu_ps(in.y + o + c * W, y[c]);
  }
}

}  // namespace flatline::kernels
