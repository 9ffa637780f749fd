// WKV-7, NEON variant (see wkv7.h): vectors of 4 values of i, j broadcast,
// the loop of wkv7_avx2.cpp. Up to 64 vectors (n <= 256) of sa and y stay
// in registers or L1.
#include <arm_neon.h>

#include "tensor/wkv7.h"

namespace flatline::kernels {

void wkv7_head_neon(float* S, int64_t n, int64_t tokens, const Wkv7Inputs& in) {
  constexpr int W = 4;
  const int64_t nv = n / W;
  float32x4_t sa[256 / W], y[256 / W];
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t o = t * in.stride;
    const float *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o, *kk = in.kk + o, *a = in.a + o;
    for (int64_t c = 0; c < nv; ++c) sa[c] = y[c] = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float32x4_t kkj = vdupq_n_f32(kk[j]);
      const float* col = S + j * n;
      for (int64_t c = 0; c < nv; ++c) sa[c] = vfmsq_f32(sa[c], kkj, vld1q_f32(col + c * W));
    }
    for (int64_t j = 0; j < n; ++j) {
      const float32x4_t wj = vdupq_n_f32(w[j]), kj = vdupq_n_f32(k[j]), bj = vdupq_n_f32(kk[j] * a[j]),
                        rj = vdupq_n_f32(r[j]);
      float* col = S + j * n;
      for (int64_t c = 0; c < nv; ++c) {
        float32x4_t s = vmulq_f32(vld1q_f32(col + c * W), wj);
        s = vfmaq_f32(s, vld1q_f32(v + c * W), kj);
        s = vfmaq_f32(s, sa[c], bj);
        vst1q_f32(col + c * W, s);
        y[c] = vfmaq_f32(y[c], s, rj);
      }
    }
    for (int64_t c = 0; c < nv; ++c) vst1q_f32(in.y + o + c * W, y[c]);
  }
}

}  // namespace flatline::kernels
