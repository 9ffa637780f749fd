// The weight kernels every model uses: y = W x for one token (matvec) and
// Y = X W^T for a chunk of tokens (matmul), for every supported GGUF type,
// plus row dequantize / quantize. Implementations are picked at run time for
// the CPU (see isa.h); results match the scalar reference within rounding.
//
// Activation handling follows ggml so results stay close to llama.cpp: for
// Q4_0/Q5_0/Q8_0 weights x is quantized to Q8_0 blocks, for Q4_1/Q5_1 to
// Q8_1, for K-quants to Q8_K, exactly as ggml's x86 CPU backend does (same
// bytes), and the dot products sum the same integers; F32, F16 and BF16
// weights use f32 activations (ggml would round them to F16 / BF16 first).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/thread_pool.h"

namespace flatline {

// A 2-D weight: `rows` rows of `cols` elements; row r starts at
// data + r * row_stride bytes. For a GGUF tensor, cols = dims[0].
struct Matrix {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
  size_t bytes() const { return static_cast<size_t>(rows) * row_stride; }
};

// y[rows] = W x[cols]. x and y must not overlap. Rows are shared out over
// the pool's threads in chunks; must not be called from inside a task of the
// same pool. Allocates nothing once the per-thread scratch buffers have grown
// to the largest shape seen.
void matvec(const Matrix& w, const float* x, float* y, ThreadPool& pool);

// y[n][rows] = x[n][cols] * W^T  (x and y row-major, one row per token).
// The n activation rows are quantized once, then tiles of rows x tokens
// reuse every weight block loaded for several tokens: far cheaper per token
// than n matvecs. Results equal matvec's up to float rounding order.
void matmul(const Matrix& w, const float* x, int64_t n, float* y, ThreadPool& pool);

// Row conversions; n must be a multiple of the type's block size.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// Types quantize_row can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K, Q6_K. The quantized types follow ggml's reference
// quantizers (what llama-quantize writes without an importance matrix).
bool can_quantize(DType type);
void quantize_row(DType type, const float* src, void* dst, int64_t n);  // throws Error if !can_quantize

// The format ggml converts activations to for a dot product with a weight of
// this type: Q8_0, Q8_1, Q8_K, or F32 (for F32/F16/BF16 weights flatline keeps
// f32 activations, where ggml would round them to F16/BF16).
DType activation_type(DType weight);

}  // namespace flatline
