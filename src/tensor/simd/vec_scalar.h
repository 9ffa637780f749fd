// The vector types the ISA-neutral kernel bodies are written against. A body
// is a template over one of them; each instruction set's translation unit
// (*_avx2.cpp, *_avx512.cpp, later *_neon.cpp) instantiates it with its own
// type, and this one, one float wide, gives the portable fallback. Interface:
//   V, kWidth, kName; zero, set1, load, store, add, sub, mul, div,
//   fmadd(a, b, c) = a * b + c, fnmadd(a, b, c) = c - a * b, max, min,
//   hsum, hmax, exp, load_partial / store_partial (first n lanes),
//   load_f16 / load_bf16 (kWidth halves to floats).
// Internal linkage for the reason given in vec_avx2.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/fp16.h"

namespace flatline::simd {
namespace {

struct VecScalar {
  using V = float;
  static constexpr int kWidth = 1;
  static constexpr const char* kName = "scalar";

  static V zero() { return 0.0f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static V fnmadd(V a, V b, V c) { return c - a * b; }
  static V div(V a, V b) { return a / b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static float hsum(V v) { return v; }
  static float hmax(V v) { return v; }
  static V exp(V x) { return std::exp(x); }
  static V load_partial(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static void store_partial(float* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V load_f16(const uint16_t* p) { return fp16_to_fp32(*p); }
  static V load_bf16(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

}  // namespace
}  // namespace flatline::simd

