// NEON (Armv8.0 AdvSIMD) weight kernels: F32 / F16 / BF16 with f32
// activations here, the quantized types through kernels_neon_body.h with
// the widening-multiply integer dot. Chosen at run time (isa.h); the
// dot-product variant is kernels_neon_dotprod.cpp.
#include "tensor/kernels_neon_body.h"

namespace flatline::kernels {

namespace {

// acc + the 16 products a[i] * b[i], spread over four int32 lanes.
struct DotWidening {
  static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
  }
};

// ---- F32 / F16 / BF16 weights, f32 activations --------------------------------------

struct LoadF32 {
  static float32x4_t load4(const uint8_t* row, int64_t k) { return vld1q_f32(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

struct LoadF16 {
  static float32x4_t load4(const uint8_t* row, int64_t k) {
    return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(row + 2 * k)));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return half_to_float(h);
  }
};

struct LoadBF16 {
  static float32x4_t load4(const uint8_t* row, int64_t k) {
    return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(row + 2 * k)), 16));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

template <class Load>
struct FloatKernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    // A lone row x token (matvec) gets 4 accumulators so the FMA latency
    // does not bound a memory-bound loop.
    constexpr int U = R * T == 1 ? 4 : 1;
    const int64_t K = w.cols;
    const uint8_t* rows[R];
    const float* x[T];
    _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    _Pragma("GCC unroll 16") for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(act + t * stride);
    float32x4_t acc[U][R][T];
    _Pragma("GCC unroll 16") for (int u = 0; u < U; ++u)
      _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
        _Pragma("GCC unroll 16") for (int t = 0; t < T; ++t) acc[u][i][t] = vdupq_n_f32(0);
    int64_t k = 0;
    for (; k + 4 * U <= K; k += 4 * U) {
      _Pragma("GCC unroll 16") for (int u = 0; u < U; ++u) {
        float32x4_t wv[R];
        _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) wv[i] = Load::load4(rows[i], k + 4 * u);
        _Pragma("GCC unroll 16") for (int t = 0; t < T; ++t) {
          const float32x4_t xv = vld1q_f32(x[t] + k + 4 * u);
          _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) acc[u][i][t] = vfmaq_f32(acc[u][i][t], wv[i], xv);
        }
      }
    }
    for (; k + 4 <= K; k += 4) {
      float32x4_t wv[R];
      _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) wv[i] = Load::load4(rows[i], k);
      _Pragma("GCC unroll 16") for (int t = 0; t < T; ++t) {
        const float32x4_t xv = vld1q_f32(x[t] + k);
        _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) acc[0][i][t] = vfmaq_f32(acc[0][i][t], wv[i], xv);
      }
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
      _Pragma("GCC unroll 16") for (int t = 0; t < T; ++t) {
        float32x4_t v = acc[0][i][t];
        _Pragma("GCC unroll 16") for (int u = 1; u < U; ++u) v = vaddq_f32(v, acc[u][i][t]);
        float sum = vaddvq_f32(v);
        for (int64_t kk = k; kk < K; ++kk) sum += Load::load1(rows[i], kk) * x[t][kk];
        y[t * ys + r + i] = sum;
      }
  }
};

const TypeKernels kF32{nullptr, nullptr, gemm<FloatKernel<LoadF32>, 1, 4, 2>, nullptr};
const TypeKernels kF16{nullptr, nullptr, gemm<FloatKernel<LoadF16>, 1, 4, 2>, nullptr};
const TypeKernels kBF16{nullptr, nullptr, gemm<FloatKernel<LoadBF16>, 1, 4, 2>, nullptr};

}  // namespace

const TypeKernels* neon_kernels(DType type) {
  switch (type) {
    case DType::F32: return &kF32;
    case DType::F16: return &kF16;
    case DType::BF16: return &kBF16;
    default: return QuantTables<DotWidening>::get(type);
  }
}

}  // namespace flatline::kernels
