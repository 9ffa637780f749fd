#include "tensor/wkv7.h"

#include "tensor/isa.h"

namespace flatline {

namespace kernels {

void wkv7_head_scalar(float* S, int64_t n, int64_t tokens, const Wkv7Inputs& in) {
  // sa and y are accumulated over j with i innermost, as the SIMD variants do.
  float sa[256], y[256];
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t o = t * in.stride;
    const float *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o, *kk = in.kk + o, *a = in.a + o;
    for (int64_t i = 0; i < n; ++i) sa[i] = y[i] = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i) sa[i] -= kk[j] * S[j * n + i];
    for (int64_t j = 0; j < n; ++j) {
      const float b = kk[j] * a[j];
      float* col = S + j * n;
      for (int64_t i = 0; i < n; ++i) {
        col[i] = col[i] * w[j] + v[i] * k[j] + sa[i] * b;
        y[i] += col[i] * r[j];
      }
    }
    for (int64_t i = 0; i < n; ++i) in.y[o + i] = y[i];
  }
}

}  // namespace kernels

void wkv7_head(float* state, int64_t n, int64_t tokens, const Wkv7Inputs& in) {
  const Isa isa = active_isa();
#if FLATLINE_ARCH_X86
  if (isa == Isa::Avx512 && n % 16 == 0) return kernels::wkv7_head_avx512(state, n, tokens, in);
  if (isa_includes(isa, Isa::Avx2) && n % 8 == 0) return kernels::wkv7_head_avx2(state, n, tokens, in);
#elif FLATLINE_ARCH_ARM
  if (isa_includes(isa, Isa::Neon) && n % 4 == 0) return kernels::wkv7_head_neon(state, n, tokens, in);
#endif
  kernels::wkv7_head_scalar(state, n, tokens, in);
}

}  // namespace flatline
