// The tile driver every SIMD matmul shares: it runs a kernel's register tile
// K::tile<R, T> over rows [r0, r1) x tokens [0, n), with smaller tiles at the
// edges. It holds no intrinsics, so one copy serves the AVX2, AVX-512 and
// NEON translation units. It is in an unnamed namespace because each of them
// instantiates it with its own kernels, compiled with its own ISA flags
// (nothing here may be merged across them by the linker).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/kernels.h"

namespace flatline::kernels {
namespace {

// K::tile(w, r, act, stride, y, ys) writes y[t*ys + r + i].
template <class K, int R, int T>
void drive(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t stride, int64_t n, float* y,
           size_t ys) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    int64_t t = 0;
    for (; t + T <= n; t += T) K::template tile<R, T>(w, r, a + t * stride, stride, y + t * ys, ys);
    for (; t < n; ++t) K::template tile<R, 1>(w, r, a + t * stride, stride, y + t * ys, ys);
  }
  for (; r < r1; ++r) {
    int64_t t = 0;
    for (; t + T <= n; t += T) K::template tile<1, T>(w, r, a + t * stride, stride, y + t * ys, ys);
    for (; t < n; ++t) K::template tile<1, 1>(w, r, a + t * stride, stride, y + t * ys, ys);
  }
}

// matvec tiles: RV rows, one token; matmul tiles: RM rows x TM tokens.
template <class K, int RV, int RM, int TM>
void gemm(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t stride, int64_t n, float* y,
          size_t ys) {
  if (n == 1) drive<K, RV, 1>(w, r0, r1, act, stride, n, y, ys);
  else drive<K, RM, TM>(w, r0, r1, act, stride, n, y, ys);
}

}  // namespace
}  // namespace flatline::kernels
