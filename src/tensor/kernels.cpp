// Public kernel entry points: validate, pick the implementation for the
// active instruction set, quantize the activations once into a scratch
// buffer owned by the calling thread, and split the output rows over the
// thread pool.
#include "tensor/kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "tensor/isa.h"
#include "tensor/kernels_impl.h"
#include "util/error.h"

namespace flatline {

namespace {

using kernels::TypeKernels;

// The best kernels the instruction set has for the type, falling back to the
// next lower set of its family and finally to the scalar ones.
const TypeKernels* pick_kernels(DType type, Isa isa) {
  using Table = const TypeKernels* (*)(DType);
  const Table order[] = {
      isa_includes(isa, Isa::Avx512) ? FLATLINE_X86_ONLY(&kernels::avx512_kernels) : nullptr,
      isa_includes(isa, Isa::Avx2) ? FLATLINE_X86_ONLY(&kernels::avx2_kernels) : nullptr,
      isa_includes(isa, Isa::NeonDotprod) ? FLATLINE_ARM_ONLY(&kernels::neon_dotprod_kernels) : nullptr,
      isa_includes(isa, Isa::Neon) ? FLATLINE_ARM_ONLY(&kernels::neon_kernels) : nullptr,
  };
  for (Table table : order)
    if (table)
      if (const TypeKernels* k = table(type)) return k;
  return kernels::scalar_kernels(type);
}

const TypeKernels& kernels_for(DType type) {
  const TypeKernels* k = pick_kernels(type, active_isa());
  if (!k)
    throw Error("matmul: weight type " + std::string(dtype_name(type)) +
                " has no kernels (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  return *k;
}

void check_matrix(const Matrix& w) {
  const DTypeTraits& t = traits(w.type);
  if (w.rows < 0 || w.cols < 0)
    throw Error("matmul: matrix has negative shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols));
  if (w.cols % t.block_size != 0)
    throw Error("matmul: " + std::string(t.name) + " matrix with " + std::to_string(w.cols) +
                " columns; expected a multiple of the block size " + std::to_string(t.block_size));
  const size_t need = row_bytes(w.type, w.cols);
  if (w.rows > 0 && w.row_stride < need)
    throw Error("matmul: row stride " + std::to_string(w.row_stride) + " bytes is smaller than a " + t.name +
                " row of " + std::to_string(w.cols) + " elements (" + std::to_string(need) + " bytes)");
  if (w.rows > 0 && w.cols > 0 && w.data == nullptr) throw Error("matmul: matrix has no data");
}

// Grow-only, 64-byte aligned buffer for the quantized activations. One per
// calling thread, so concurrent matmuls from different threads do not share.
class Scratch {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > capacity_) {
      size_t cap = std::max(bytes, capacity_ * 2);
      cap = (cap + 63) / 64 * 64;
      data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, cap)));
      if (!data_) throw std::bad_alloc();
      capacity_ = cap;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t capacity_ = 0;
};

thread_local Scratch t_scratch;

// Below this many multiply-adds the work runs on the calling thread only:
// waking the pool costs more than it saves.
constexpr int64_t kMinParallelWork = 1 << 16;
// Output rows are handed out in chunks that are a multiple of this (the tile
// height of the SIMD kernels), so tiles are not split between threads.
constexpr int64_t kRowGranule = 8;
// Weight bytes per chunk of rows: big enough that a thread streams long runs
// of memory, small enough to balance threads that run at unequal speed.
constexpr size_t kChunkBytes = 256 * 1024;
// Token chunk so the quantized activations a chunk reads stay in L2 (with
// room for the packed row tile the AVX-512 kernels keep beside them).
constexpr size_t kActChunkBytes = 1024 * 1024;

size_t align64(size_t v) { return (v + 63) / 64 * 64; }

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Rows per chunk handed to a thread.
int64_t row_grain(const Matrix& w, int64_t n, int threads) {
  const int64_t by_bytes = static_cast<int64_t>(kChunkBytes / std::max<size_t>(1, w.row_stride * std::min<int64_t>(n, 4)));
  const int64_t for_balance = (w.rows + 4 * threads - 1) / (4 * threads);  // at least ~4 chunks per thread
  return round_up(std::max<int64_t>(1, std::min(by_bytes, for_balance)), kRowGranule);
}

}  // namespace

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  const TypeKernels* k = pick_kernels(type, active_isa());
  if (k && k->dequantize) {
    const int64_t block = traits(type).block_size;
    if (n < 0 || n % block != 0)
      throw Error("dequantize " + std::string(dtype_name(type)) + ": row of " + std::to_string(n) +
                  " elements is not a multiple of the block size " + std::to_string(block));
    k->dequantize(src, dst, n);
    return;
  }
  kernels::dequantize_row_scalar(type, src, dst, n);
}

DType activation_type(DType weight) {
  switch (weight) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0: return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1: return DType::Q8_1;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return DType::Q8_K;
    default: return DType::F32;
  }
}

void matvec(const Matrix& w, const float* x, float* y, ThreadPool& pool) { matmul(w, x, 1, y, pool); }

void matmul(const Matrix& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  check_matrix(w);
  if (n < 0) throw Error("matmul: negative token count " + std::to_string(n));
  if (n == 0 || w.rows == 0) return;
  if (w.cols == 0) {
    std::fill(y, y + n * w.rows, 0.0f);
    return;
  }
  const TypeKernels& k = kernels_for(w.type);
  const int64_t work = w.rows * w.cols * n;
  const bool parallel = pool.size() > 1 && work >= kMinParallelWork;

  const void* act = x;
  size_t act_stride = static_cast<size_t>(w.cols) * sizeof(float);
  if (k.act_bytes) {
    act_stride = align64(k.act_bytes(w.cols));
    uint8_t* buf = t_scratch.get(act_stride * static_cast<size_t>(n));
    auto quantize = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) k.quantize_act(x + t * w.cols, w.cols, buf + t * act_stride);
    };
    if (parallel && n > 1) pool.parallel_chunks(n, std::max<int64_t>(1, (1 << 16) / w.cols), quantize);
    else quantize(0, n);
    act = buf;
  }

  const size_t y_stride = static_cast<size_t>(w.rows);
  const int64_t chunk = std::max<int64_t>(16, static_cast<int64_t>(kActChunkBytes / act_stride)) / 4 * 4;
  auto run_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t tn = std::min(chunk, n - t0);
      k.gemm(w, r0, r1, static_cast<const uint8_t*>(act) + t0 * act_stride, act_stride, tn, y + t0 * y_stride,
             y_stride);
    }
  };
  if (!parallel) run_rows(0, w.rows);
  else pool.parallel_chunks(w.rows, row_grain(w, n, pool.size()), run_rows);
}

}  // namespace flatline
