// The "split" layout of quantized activations used by the SIMD kernels: the
// same numbers as ggml's Q8_0 / Q8_1 / Q8_K blocks (kernels_impl.h), but the
// quants of a token are contiguous (one vector load covers several blocks)
// and scales are plain floats in their own arrays:
//   Q8_0: int8 q[cols] | float d[cols/32]                 (d = fp16-rounded)
//   Q8_1: int8 q[cols] | float d[cols/32] | float s[cols/32]
//   Q8_K: int8 q[cols] | float d[cols/256] | int16 bsums[cols/16]
// Each array starts on a 64-byte boundary of the token's buffer.
// The helpers here are `static inline` on purpose: this header is included
// by files compiled with AVX2 / AVX-512 flags, and an inline function with
// external linkage could have its AVX-512 copy picked by the linker for the
// whole program.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flatline::kernels::split {

static inline size_t align64(size_t v) { return (v + 63) / 64 * 64; }

struct Layout {
  size_t d_off = 0;  // float scales
  size_t s_off = 0;  // Q8_1: float s; Q8_K: int16 bsums
  size_t bytes = 0;
};

static inline Layout q8_0(int64_t cols) {
  Layout l;
  l.d_off = align64(static_cast<size_t>(cols));
  l.bytes = l.d_off + align64(static_cast<size_t>(cols / 32) * 4);
  return l;
}

static inline Layout q8_1(int64_t cols) {
  Layout l;
  l.d_off = align64(static_cast<size_t>(cols));
  l.s_off = l.d_off + align64(static_cast<size_t>(cols / 32) * 4);
  l.bytes = l.s_off + align64(static_cast<size_t>(cols / 32) * 4);
  return l;
}

static inline Layout q8_k(int64_t cols) {
  Layout l;
  l.d_off = align64(static_cast<size_t>(cols));
  l.s_off = l.d_off + align64(static_cast<size_t>(cols / 256) * 4);
  l.bytes = l.s_off + align64(static_cast<size_t>(cols / 16) * 2);
  return l;
}

// One token's activations in the split layout.
struct Act {
  const int8_t* q;
  const float* d;
  const float* s;         // Q8_1
  const int16_t* bsums;   // Q8_K
};

static inline Act view(const void* base, const Layout& l) {
  const uint8_t* p = static_cast<const uint8_t*>(base);
  return Act{reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + l.d_off),
             reinterpret_cast<const float*>(p + l.s_off), reinterpret_cast<const int16_t*>(p + l.s_off)};
}

size_t bytes_q8_0(int64_t cols);
size_t bytes_q8_1(int64_t cols);
size_t bytes_q8_k(int64_t cols);

// AVX2 quantizers into the split layout (kernels_avx2.cpp, x86-64 builds
// only); the AVX-512 kernels use them too. Same numbers as quantize_act_q8_*
// in kernels_impl.h.
void quantize_q8_0_avx2(const float* x, int64_t cols, void* dst);
void quantize_q8_1_avx2(const float* x, int64_t cols, void* dst);
void quantize_q8_k_avx2(const float* x, int64_t cols, void* dst);

// The same through the scalar ggml-layout quantizers, block by block
// (split_act.cpp, every build): what the NEON kernels use. Quantizing is
// O(cols) per token against the O(rows * cols) of the dot products, so it
// does not need vector code of its own.
void quantize_q8_0_portable(const float* x, int64_t cols, void* dst);
void quantize_q8_1_portable(const float* x, int64_t cols, void* dst);
void quantize_q8_k_portable(const float* x, int64_t cols, void* dst);

}  // namespace flatline::kernels::split
