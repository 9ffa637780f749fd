// The AArch64 AdvSIMD (NEON) vector type of the ISA-neutral kernel bodies
// (see vec_scalar.h for the interface): four floats. Include only from
// *_neon.cpp / *_neon_dotprod.cpp files; internal linkage for the reason
// given in vec_avx2.h.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace flatline::simd {
namespace {

struct VecNeon {
  using V = float32x4_t;
  static constexpr int kWidth = 4;
  static constexpr const char* kName = "neon";

  static V zero() { return vdupq_n_f32(0.0f); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }   // a * b + c
  static V fnmadd(V a, V b, V c) { return vfmsq_f32(c, a, b); }  // c - a * b
  static V div(V a, V b) { return vdivq_f32(a, b); }
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static float hsum(V v) { return vaddvq_f32(v); }
  static float hmax(V v) { return vmaxvq_f32(v); }

  // exp(x) to about 2 ulp: the Cephes polynomial of VecAvx2::exp, with the
  // same clamp to [-87.3, 88.3] so that 2^n stays a normal float.
  static V exp(V x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3365f)), vdupq_n_f32(88.3762f));
    const V n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));  // round to nearest even
    V r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    V p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    const V r2 = vmulq_f32(r, r);
    const V y = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0f));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
  }

  // The first n (< kWidth) lanes; the rest read as / are left alone.
  static V load_partial(const float* p, int n) {
    float tmp[kWidth] = {};
    std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(float));
    return vld1q_f32(tmp);
  }
  static void store_partial(float* p, V v, int n) {
    float tmp[kWidth];
    vst1q_f32(tmp, v);
    std::memcpy(p, tmp, static_cast<size_t>(n) * sizeof(float));
  }
  static V load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static V load_bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
};

}  // namespace
}  // namespace flatline::simd
