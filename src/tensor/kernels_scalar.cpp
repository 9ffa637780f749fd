// Portable scalar kernels: the reference every SIMD kernel is tested against
// and the fallback on CPUs without AVX2. Activations are kept in ggml's block
// layouts; each dot product follows ggml's generic C dot for the pair of
// types (integer sums per block, then float scales).
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"

namespace flatline::kernels {

namespace {

using namespace blocks;

// ---- dots of one weight row with one token ----------------------------------

float dot_f32(const void* w, const void* x, int64_t n) {
  const float* a = static_cast<const float*>(w);
  const float* b = static_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float dot_f16(const void* w, const void* x, int64_t n) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  const float* b = static_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32(a[i]) * b[i];
  return sum;
}

float dot_bf16(const void* w, const void* x, int64_t n) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  const float* b = static_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += bf16_to_fp32(a[i]) * b[i];
  return sum;
}

float dot_q4_0(const void* w, const void* x, int64_t n) {
  const BlockQ4_0* a = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
      isum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + kQK / 2];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
  }
  return sum;
}

float dot_q4_1(const void* w, const void* x, int64_t n) {
  const BlockQ4_1* a = static_cast<const BlockQ4_1*>(w);
  const BlockQ8_1* b = static_cast<const BlockQ8_1*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += (a[i].qs[j] & 0x0f) * b[i].qs[j];
      isum += (a[i].qs[j] >> 4) * b[i].qs[j + kQK / 2];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d)) +
           fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
  }
  return sum;
}

int q5_quant(const uint8_t* qs, const uint8_t* qh_bytes, int j) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const int low = j < kQK / 2 ? (qs[j] & 0x0f) : (qs[j - kQK / 2] >> 4);
  return low | static_cast<int>((qh >> j) & 1) << 4;
}

float dot_q5_0(const void* w, const void* x, int64_t n) {
  const BlockQ5_0* a = static_cast<const BlockQ5_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += (q5_quant(a[i].qs, a[i].qh, j) - 16) * b[i].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
  }
  return sum;
}

float dot_q5_1(const void* w, const void* x, int64_t n) {
  const BlockQ5_1* a = static_cast<const BlockQ5_1*>(w);
  const BlockQ8_1* b = static_cast<const BlockQ8_1*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += q5_quant(a[i].qs, a[i].qh, j) * b[i].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d)) +
           fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
  }
  return sum;
}

float dot_q8_0(const void* w, const void* x, int64_t n) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += a[i].qs[j] * b[i].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
  }
  return sum;
}

// Q4_K / Q5_K: value = d*sc[j]*q - dmin*m[j] per sub-block j of 32, so
// dot = d*dx*sum_j sc[j]*sum(q*x) - dmin*dx*sum_j m[j]*sum(x).
template <bool kFiveBit, typename Block>
float dot_k4(const Block* a, const BlockQ8_K* b, int64_t n) {
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int scaled = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      k4_scale_min(j, a[i].scales, sc, m);
      const uint8_t* q = a[i].qs + 32 * (j / 2);
      const int shift = (j & 1) ? 4 : 0;
      int isum = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0x0f;
        if constexpr (kFiveBit) v |= ((a[i].qh[l] >> j) & 1) << 4;
        isum += v * b[i].qs[32 * j + l];
      }
      scaled += sc * isum;
      mins += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(scaled) -
           fp16_to_fp32(a[i].dmin) * b[i].d * static_cast<float>(mins);
  }
  return sum;
}

float dot_q4_k(const void* w, const void* x, int64_t n) {
  return dot_k4<false>(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(x), n);
}

float dot_q5_k(const void* w, const void* x, int64_t n) {
  return dot_k4<true>(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(x), n);
}

float dot_q6_k(const void* w, const void* x, int64_t n) {
  const BlockQ6_K* a = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int scaled = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = a[i].ql + 64 * half;
      const uint8_t* qh = a[i].qh + 32 * half;
      const int8_t* xq = b[i].qs + 128 * half;
      const int8_t* sc = a[i].scales + 8 * half;
      for (int part = 0; part < 4; ++part) {  // elements 32*part .. 32*part+31 of the half
        const uint8_t* low = ql + (part & 1) * 32;
        const int low_shift = (part >> 1) * 4, high_shift = 2 * part;
        int isum[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const int q = (((low[l] >> low_shift) & 0x0f) | ((qh[l] >> high_shift) & 3) << 4) - 32;
          isum[l / 16] += q * xq[32 * part + l];
        }
        scaled += sc[2 * part] * isum[0] + sc[2 * part + 1] * isum[1];
      }
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(scaled);
  }
  return sum;
}

// ---- tile driver ------------------------------------------------------------

using DotFn = float (*)(const void* w, const void* x, int64_t n);

template <DotFn kDot>
void gemm(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t act_stride, int64_t n, float* y,
          size_t y_stride) {
  const uint8_t* a = static_cast<const uint8_t*>(act);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n; ++t) y[static_cast<size_t>(t) * y_stride + r] = kDot(w.row(r), a + t * act_stride, w.cols);
}

size_t bytes_q8_0(int64_t cols) { return static_cast<size_t>(cols / kQK) * sizeof(BlockQ8_0); }
size_t bytes_q8_1(int64_t cols) { return static_cast<size_t>(cols / kQK) * sizeof(BlockQ8_1); }
size_t bytes_q8_k(int64_t cols) { return static_cast<size_t>(cols / kQK_K) * sizeof(BlockQ8_K); }

const TypeKernels kF32{nullptr, nullptr, gemm<dot_f32>, nullptr};
const TypeKernels kF16{nullptr, nullptr, gemm<dot_f16>, nullptr};
const TypeKernels kBF16{nullptr, nullptr, gemm<dot_bf16>, nullptr};
const TypeKernels kQ4_0{bytes_q8_0, quantize_act_q8_0, gemm<dot_q4_0>, nullptr};
const TypeKernels kQ4_1{bytes_q8_1, quantize_act_q8_1, gemm<dot_q4_1>, nullptr};
const TypeKernels kQ5_0{bytes_q8_0, quantize_act_q8_0, gemm<dot_q5_0>, nullptr};
const TypeKernels kQ5_1{bytes_q8_1, quantize_act_q8_1, gemm<dot_q5_1>, nullptr};
const TypeKernels kQ8_0{bytes_q8_0, quantize_act_q8_0, gemm<dot_q8_0>, nullptr};
const TypeKernels kQ4_K{bytes_q8_k, quantize_act_q8_k, gemm<dot_q4_k>, nullptr};
const TypeKernels kQ5_K{bytes_q8_k, quantize_act_q8_k, gemm<dot_q5_k>, nullptr};
const TypeKernels kQ6_K{bytes_q8_k, quantize_act_q8_k, gemm<dot_q6_k>, nullptr};

}  // namespace

const TypeKernels* scalar_kernels(DType type) {
  switch (type) {
    case DType::F32: return &kF32;
    case DType::F16: return &kF16;
    case DType::BF16: return &kBF16;
    case DType::Q4_0: return &kQ4_0;
    case DType::Q4_1: return &kQ4_1;
    case DType::Q5_0: return &kQ5_0;
    case DType::Q5_1: return &kQ5_1;
    case DType::Q8_0: return &kQ8_0;
    case DType::Q4_K: return &kQ4_K;
    case DType::Q5_K: return &kQ5_K;
    case DType::Q6_K: return &kQ6_K;
    default: return nullptr;
  }
}

}  // namespace flatline::kernels
