// Scalar half / bfloat16 conversions against the CPU's own conversion
// instructions (F16C vcvtph2ps / vcvtps2ph, AVX512-BF16 vcvtneps2bf16 on
// x86-64; FCVT on AArch64, the conversion the NEON kernels use).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "tensor/fp16.h"
#include "tensor/isa.h"

#if FLATLINE_ARCH_X86
#include <immintrin.h>
#elif FLATLINE_ARCH_ARM
#include <arm_neon.h>
#endif

namespace flatline {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#if FLATLINE_ARCH_X86
__attribute__((target("f16c"))) float hw_half_to_float(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t hw_float_to_half(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

bool cpu_has_avx512bf16() {
  return __builtin_cpu_supports("avx512bf16");
}

__attribute__((target("avx512bf16,avx512vl,avx512f"))) uint16_t hw_float_to_bf16(float f) {
  const __m128bh v = _mm_cvtneps_pbh(_mm_set1_ps(f));
  uint16_t out;
  std::memcpy(&out, &v, 2);
  return out;
}

// The hardware conversions are the reference here, so they must see
// denormals as denormals: compute threads run with FTZ/DAZ set
// (thread_pool.h) and the test thread may have dispatched work before.
struct PlainFloatingPoint {
  unsigned saved = _mm_getcsr();
  PlainFloatingPoint() { _mm_setcsr(saved & ~0x8040u); }
  ~PlainFloatingPoint() { _mm_setcsr(saved); }
};
#elif FLATLINE_ARCH_ARM
float hw_half_to_float(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
uint16_t hw_float_to_half(float f) { return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0); }

bool cpu_has_avx512bf16() { return false; }
uint16_t hw_float_to_bf16(float) { return 0; }

// As on x86: the reference conversions must see denormals (FPCR.FZ, bit 24,
// is set on compute threads by thread_pool.cpp).
uint64_t read_fpcr() {
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return v;
}
void write_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
struct PlainFloatingPoint {
  uint64_t saved = read_fpcr();
  PlainFloatingPoint() { write_fpcr(saved & ~(uint64_t{1} << 24)); }
  ~PlainFloatingPoint() { write_fpcr(saved); }
};
#else
float hw_half_to_float(uint16_t h) { return fp16_to_fp32(h); }
uint16_t hw_float_to_half(float f) { return fp32_to_fp16(f); }
bool cpu_has_avx512bf16() { return false; }
uint16_t hw_float_to_bf16(float) { return 0; }
struct PlainFloatingPoint {};
#endif

TEST(TensorFp16, AllHalvesMatchF16C) {
  PlainFloatingPoint plain;
  if (detected_isa() == Isa::Scalar) GTEST_SKIP() << "CPU without F16C: no hardware reference";
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    ASSERT_EQ(bits_of(fp16_to_fp32(half)), bits_of(hw_half_to_float(half))) << "half 0x" << std::hex << h;
  }
}

TEST(TensorFp16, FloatToHalfMatchesF16C) {
  PlainFloatingPoint plain;
  if (detected_isa() == Isa::Scalar) GTEST_SKIP() << "CPU without F16C: no hardware reference";
  // Every float bit pattern with a stride that walks through all exponents
  // and mantissa patterns, plus each half's exact value, midpoints between
  // neighbouring halves (ties to even) and their float neighbours.
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
    const float f = from_bits(static_cast<uint32_t>(u));
    ASSERT_EQ(fp32_to_fp16(f), hw_float_to_half(f)) << "float bits 0x" << std::hex << u;
  }
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = hw_half_to_float(static_cast<uint16_t>(h));
    const float hi = hw_half_to_float(static_cast<uint16_t>(h + 1));
    const float mid = (lo + hi) / 2;  // exact in float
    for (float f : {lo, mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e30f)}) {
      ASSERT_EQ(fp32_to_fp16(f), hw_float_to_half(f)) << "value " << f;
      ASSERT_EQ(fp32_to_fp16(-f), hw_float_to_half(-f)) << "value " << -f;
    }
  }
  for (float f : {65504.f, 65519.f, 65520.f, 1e10f, INFINITY, -INFINITY, 0.f, -0.f, 1e-10f, 5.96e-8f, 2.98e-8f})
    EXPECT_EQ(fp32_to_fp16(f), hw_float_to_half(f)) << f;
}

TEST(TensorFp16, Bf16ToFloatIsTheUpperHalf) {
  PlainFloatingPoint plain;
  for (uint32_t b = 0; b < 65536; ++b)
    ASSERT_EQ(bits_of(bf16_to_fp32(static_cast<uint16_t>(b))), b << 16) << std::hex << b;
}

TEST(TensorFp16, FloatToBf16MatchesAvx512Bf16) {
  PlainFloatingPoint plain;
  if (!cpu_has_avx512bf16()) GTEST_SKIP() << "CPU without AVX512-BF16: no hardware reference";
  // vcvtneps2bf16 rounds to nearest even like ggml and flatline, but treats
  // float denormals as zero and may pick a different NaN payload; those are
  // compared by class only.
  for (uint64_t u = 0; u < (1ull << 32); u += 257) {
    const float f = from_bits(static_cast<uint32_t>(u));
    const uint16_t mine = fp32_to_bf16(f), hw = hw_float_to_bf16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(mine)) && std::isnan(bf16_to_fp32(hw))) << std::hex << u;
    } else if (std::fpclassify(f) == FP_SUBNORMAL) {
      ASSERT_LE(std::fabs(bf16_to_fp32(mine)), 1.2e-38f) << std::hex << u;
    } else {
      ASSERT_EQ(mine, hw) << "float bits 0x" << std::hex << u;
    }
  }
  // Ties: 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7.
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.f, -8)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * std::ldexp(1.f, -8)), 0x3F82);
}

}  // namespace
}  // namespace flatline
