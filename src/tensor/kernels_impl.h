// Internal interface between the public kernel API (kernels.cpp) and the
// per-instruction-set implementations (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp). Not for use outside src/tensor and the tests.
//
// Each implementation provides, per weight type, an activation quantizer and
// a tile kernel ("gemm"). The activation buffer format is private to the
// implementation (the scalar one uses ggml's block structs, the SIMD ones a
// split layout that is friendlier to vector loads), but every implementation
// quantizes to the same numbers, so results differ only by float rounding
// order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/kernels.h"

namespace flatline::kernels {

// Bytes one token's activations take for a weight of `cols` columns (0 when
// the kernel reads the f32 activations directly).
using ActBytesFn = size_t (*)(int64_t cols);
// Converts one token: x[cols] -> dst (act_bytes(cols) bytes).
using QuantizeActFn = void (*)(const float* x, int64_t cols, void* dst);
// y[t * y_stride + r] = dot(row r of w, activations of token t) for r in
// [r0, r1), t in [0, n). `act` holds n tokens, `act_stride` bytes apart (for
// f32 activations: the x rows themselves).
using GemmFn = void (*)(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n,
                        float* y, size_t y_stride);
using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);

struct TypeKernels {
  ActBytesFn act_bytes = nullptr;     // nullptr: f32 activations
  QuantizeActFn quantize_act = nullptr;
  GemmFn gemm = nullptr;
  DequantizeFn dequantize = nullptr;  // nullptr: use the scalar one
};

// Kernels of one instruction set for a weight type; nullptr if that set has
// none for the type (the caller falls back to a lower set).
const TypeKernels* scalar_kernels(DType type);
const TypeKernels* avx2_kernels(DType type);
const TypeKernels* avx512_kernels(DType type);
const TypeKernels* neon_kernels(DType type);          // AArch64 builds only
const TypeKernels* neon_dotprod_kernels(DType type);  // AArch64 builds only
// The AVX2 dequantizer of a type (the AVX-512 kernels reuse them), or nullptr.
DequantizeFn avx2_dequantizer(DType type);

// Scalar reference pieces shared by the implementations and the tests.
void dequantize_row_scalar(DType type, const void* src, float* dst, int64_t n);

// ggml's activation quantizers for dot products, in ggml's block layouts
// (BlockQ8_0 / BlockQ8_1 / BlockQ8_K), matching ggml's x86 CPU backend:
// Q8_0 / Q8_1 scale by 127/amax and round half to even; Q8_K as ggml's
// quantize_row_q8_K_ref.
void quantize_act_q8_0(const float* x, int64_t n, void* dst);
void quantize_act_q8_1(const float* x, int64_t n, void* dst);
void quantize_act_q8_k(const float* x, int64_t n, void* dst);

// Round to nearest, ties to even (the default FP mode): what ggml's
// nearest_int and _mm256_round_ps(_MM_ROUND_NEAREST) compute.
int round_even(float v);

}  // namespace flatline::kernels
