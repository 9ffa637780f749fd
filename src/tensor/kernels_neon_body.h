// The NEON weight kernels (kernels_impl.h), written once over the integer
// dot product they use: kernels_neon.cpp instantiates them with the Armv8.0
// widening multiply (vmull_s8 + vpadalq_s16), kernels_neon_dotprod.cpp with
// the Armv8.2 SDOT instruction. Activations use the split layout of
// split_act.h, quantized by the portable quantizers.
//
// Tiles of R weight rows x T tokens as in kernels_avx2.cpp. Every weight
// quant fits int8 as a signed value (Q4_1/Q5_1 and the K-quants' unsigned
// 0..63, Q6_K's q - 32), so one signed dot serves all types; products of two
// int8 are at most 2^14 and the int16 pair sums of the vmull path cannot
// overflow.
//
// Everything is in an anonymous namespace: the two instantiations are
// compiled for different instruction sets and must never be merged.
#pragma once

#include <arm_neon.h>

#include <cstring>
#include <type_traits>

#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"
#include "tensor/split_act.h"
#include "tensor/tile_driver.h"

namespace flatline::kernels {
namespace {

#define NEON_UNROLL _Pragma("GCC unroll 16")

using namespace blocks;
using split::Act;
using split::Layout;

// One fcvt; the NEON conversion gives the bits fp16_to_fp32 gives.
inline float half_to_float(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return static_cast<float>(f);
}

// Row r of w (not Matrix::row: see split_act.h on inline functions).
inline const uint8_t* row_ptr(const Matrix& w, int64_t r) { return w.data + static_cast<size_t>(r) * w.row_stride; }

inline int8x16_t load_s8(const int8_t* p) { return vld1q_s8(p); }

// 0x10 in byte i of the result where bit (first + i) of `bits` is set, for
// the 16 bytes starting at element `first` (0 or 16): the 5th bit of Q5_0/Q5_1.
inline uint8x16_t fifth_bits(uint32_t bits, int first) {
  const uint8_t b0 = static_cast<uint8_t>(bits >> first), b1 = static_cast<uint8_t>(bits >> (first + 8));
  const uint8x16_t spread = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
  const uint8x16_t select = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  return vandq_u8(vtstq_u8(spread, select), vdupq_n_u8(0x10));
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}


// ---- Q4_0 / Q5_0 / Q8_0 weights, Q8_0 activations ------------------------------------

// Decoders: the 32 quants of block b of a row as two signed int8 vectors
// (elements 0-15, 16-31), and its scale.
struct DecQ8_0 {
  static void quants(const uint8_t* row, int64_t b, int8x16_t q[2], float& d) {
    const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
    d = half_to_float(blk.d);
    q[0] = vld1q_s8(blk.qs);
    q[1] = vld1q_s8(blk.qs + 16);
  }
};

struct DecQ4_0 {
  static void quants(const uint8_t* row, int64_t b, int8x16_t q[2], float& d) {
    const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
    d = half_to_float(blk.d);
    const uint8x16_t v = vld1q_u8(blk.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    q[0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), eight);
    q[1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
  }
};

struct DecQ5_0 {
  static void quants(const uint8_t* row, int64_t b, int8x16_t q[2], float& d) {
    const BlockQ5_0& blk = reinterpret_cast<const BlockQ5_0*>(row)[b];
    d = half_to_float(blk.d);
    const uint32_t qh = load_u32(blk.qh);
    const uint8x16_t v = vld1q_u8(blk.qs);
    const int8x16_t sixteen = vdupq_n_s8(16);
    q[0] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0f)), fifth_bits(qh, 0))), sixteen);
    q[1] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), fifth_bits(qh, 16))), sixteen);
  }
};

template <class Dot, class Dec>
struct Q8_0Kernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_0(w.cols);
    const int64_t nb = w.cols / 32;
    const uint8_t* rows[R];
    Act x[T];
    NEON_UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    NEON_UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    float32x4_t acc[R][T];
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) acc[i][t] = vdupq_n_f32(0);
    for (int64_t b = 0; b < nb; ++b) {
      int8x16_t xq[T][2];
      NEON_UNROLL for (int t = 0; t < T; ++t) {
        xq[t][0] = load_s8(x[t].q + 32 * b);
        xq[t][1] = load_s8(x[t].q + 32 * b + 16);
      }
      NEON_UNROLL for (int i = 0; i < R; ++i) {
        int8x16_t wq[2];
        float wd;
        Dec::quants(rows[i], b, wq, wd);
        NEON_UNROLL for (int t = 0; t < T; ++t) {
          const int32x4_t dot = Dot::dot(Dot::dot(vdupq_n_s32(0), wq[0], xq[t][0]), wq[1], xq[t][1]);
          acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(dot), wd * x[t].d[b]);
        }
      }
    }
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = vaddvq_f32(acc[i][t]);
  }
};

// ---- Q4_1 / Q5_1 weights, Q8_1 activations -------------------------------------------

// Decoders: the 32 quants of block b as int8 (0..31), scale and min.
struct DecQ4_1 {
  static void quants(const uint8_t* row, int64_t b, int8x16_t q[2], float& d, float& m) {
    const BlockQ4_1& blk = reinterpret_cast<const BlockQ4_1*>(row)[b];
    d = half_to_float(blk.d);
    m = half_to_float(blk.m);
    const uint8x16_t v = vld1q_u8(blk.qs);
    q[0] = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f)));
    q[1] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
  }
};

struct DecQ5_1 {
  static void quants(const uint8_t* row, int64_t b, int8x16_t q[2], float& d, float& m) {
    const BlockQ5_1& blk = reinterpret_cast<const BlockQ5_1*>(row)[b];
    d = half_to_float(blk.d);
    m = half_to_float(blk.m);
    const uint32_t qh = load_u32(blk.qh);
    const uint8x16_t v = vld1q_u8(blk.qs);
    q[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0f)), fifth_bits(qh, 0)));
    q[1] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), fifth_bits(qh, 16)));
  }
};

// dot = sum_b d_w*d_x*sum(q_w*q_x) + m_w*s_x  (s_x = d_x * sum(q_x))
template <class Dot, class Dec>
struct Q8_1Kernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_1(w.cols);
    const int64_t nb = w.cols / 32;
    const uint8_t* rows[R];
    Act x[T];
    NEON_UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    NEON_UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    float32x4_t acc[R][T];
    float mins[R][T] = {};
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) acc[i][t] = vdupq_n_f32(0);
    for (int64_t b = 0; b < nb; ++b) {
      int8x16_t xq[T][2];
      NEON_UNROLL for (int t = 0; t < T; ++t) {
        xq[t][0] = load_s8(x[t].q + 32 * b);
        xq[t][1] = load_s8(x[t].q + 32 * b + 16);
      }
      NEON_UNROLL for (int i = 0; i < R; ++i) {
        int8x16_t wq[2];
        float wd, wm;
        Dec::quants(rows[i], b, wq, wd, wm);
        NEON_UNROLL for (int t = 0; t < T; ++t) {
          const int32x4_t dot = Dot::dot(Dot::dot(vdupq_n_s32(0), wq[0], xq[t][0]), wq[1], xq[t][1]);
          acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(dot), wd * x[t].d[b]);
          mins[i][t] += wm * x[t].s[b];
        }
      }
    }
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = vaddvq_f32(acc[i][t]) + mins[i][t];
  }
};

// ---- Q4_K / Q5_K / Q6_K weights, Q8_K activations --------------------------------------
//
// Per super-block the integer dots of each sub-block are scaled by their
// 6-bit (Q4_K/Q5_K) or int8 (Q6_K) scale while still int32 vectors, and the
// total is converted to float once.

template <class Dot, bool kFiveBit>
struct K4Kernel {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;

  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_k(w.cols);
    const int64_t nsb = w.cols / 256;
    const Block* rows[R];
    Act x[T];
    NEON_UNROLL for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + i));
    NEON_UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    float32x4_t acc[R][T];
    float min_acc[R][T] = {};
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) acc[i][t] = vdupq_n_f32(0);
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      NEON_UNROLL for (int i = 0; i < R; ++i) {
        const Block& blk = rows[i][sb];
        uint64_t sc_bytes, m_bytes;
        k4_unpack_scales(blk.scales, sc_bytes, m_bytes);
        uint8_t sc[8];
        std::memcpy(sc, &sc_bytes, 8);
        const int16x8_t mins16 = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(m_bytes)));
        uint8x16_t qh[2];
        if constexpr (kFiveBit) {
          qh[0] = vld1q_u8(blk.qh);
          qh[1] = vld1q_u8(blk.qh + 16);
        }
        int32x4_t isum[T];
        NEON_UNROLL for (int t = 0; t < T; ++t) isum[t] = vdupq_n_s32(0);
        for (int c = 0; c < 4; ++c) {
          int8x16_t lo[2], hi[2];
          for (int h = 0; h < 2; ++h) {
            const uint8x16_t q = vld1q_u8(blk.qs + 32 * c + 16 * h);
            uint8x16_t l = vandq_u8(q, low4), u = vshrq_n_u8(q, 4);
            if constexpr (kFiveBit) {
              const uint8x16_t sixteen = vdupq_n_u8(16);
              l = vorrq_u8(l, vandq_u8(vtstq_u8(qh[h], vdupq_n_u8(static_cast<uint8_t>(1 << (2 * c)))), sixteen));
              u = vorrq_u8(u, vandq_u8(vtstq_u8(qh[h], vdupq_n_u8(static_cast<uint8_t>(2 << (2 * c)))), sixteen));
            }
            lo[h] = vreinterpretq_s8_u8(l);
            hi[h] = vreinterpretq_s8_u8(u);
          }
          NEON_UNROLL for (int t = 0; t < T; ++t) {
            const int8_t* xq = x[t].q + 256 * sb + 64 * c;
            const int32x4_t dlo = Dot::dot(Dot::dot(vdupq_n_s32(0), lo[0], load_s8(xq)), lo[1], load_s8(xq + 16));
            const int32x4_t dhi = Dot::dot(Dot::dot(vdupq_n_s32(0), hi[0], load_s8(xq + 32)), hi[1], load_s8(xq + 48));
            isum[t] = vmlaq_n_s32(vmlaq_n_s32(isum[t], dlo, sc[2 * c]), dhi, sc[2 * c + 1]);
          }
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        NEON_UNROLL for (int t = 0; t < T; ++t) {
          // bsums pairs are the sums of the eight 32-element sub-blocks.
          const int16_t* bs = x[t].bsums + 16 * sb;
          const int16x8_t sub_sums = vpaddq_s16(vld1q_s16(bs), vld1q_s16(bs + 8));
          const int32x4_t m = vmlal_high_s16(vmull_s16(vget_low_s16(mins16), vget_low_s16(sub_sums)), mins16, sub_sums);
          const float xd = x[t].d[sb];
          acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(isum[t]), d * xd);
          min_acc[i][t] += dmin * xd * static_cast<float>(vaddvq_s32(m));
        }
      }
    }
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = vaddvq_f32(acc[i][t]) - min_acc[i][t];
  }
};

// Q6_K: the four 32-element parts of each half of a super-block, as int8
// q - 32 (elements 32 part + l; l = 16 h + lane).
inline void q6k_half_quants(const BlockQ6_K& blk, int half, int8x16_t q[4][2]) {
  const uint8x16_t low4 = vdupq_n_u8(0x0f), low2 = vdupq_n_u8(3);
  const int8x16_t bias = vdupq_n_s8(32);
  for (int h = 0; h < 2; ++h) {
    const uint8x16_t ql0 = vld1q_u8(blk.ql + 64 * half + 16 * h);
    const uint8x16_t ql1 = vld1q_u8(blk.ql + 64 * half + 32 + 16 * h);
    const uint8x16_t qh = vld1q_u8(blk.qh + 32 * half + 16 * h);
    const uint8x16_t u[4] = {
        vorrq_u8(vandq_u8(ql0, low4), vshlq_n_u8(vandq_u8(qh, low2), 4)),
        vorrq_u8(vandq_u8(ql1, low4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), low2), 4)),
        vorrq_u8(vshrq_n_u8(ql0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), low2), 4)),
        vorrq_u8(vshrq_n_u8(ql1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4)),
    };
    for (int part = 0; part < 4; ++part) q[part][h] = vsubq_s8(vreinterpretq_s8_u8(u[part]), bias);
  }
}

template <class Dot>
struct Q6KKernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_k(w.cols);
    const int64_t nsb = w.cols / 256;
    const BlockQ6_K* rows[R];
    Act x[T];
    NEON_UNROLL for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const BlockQ6_K*>(row_ptr(w, r + i));
    NEON_UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    float32x4_t acc[R][T];
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) acc[i][t] = vdupq_n_f32(0);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      NEON_UNROLL for (int i = 0; i < R; ++i) {
        const BlockQ6_K& blk = rows[i][sb];
        int32x4_t isum[T];
        NEON_UNROLL for (int t = 0; t < T; ++t) isum[t] = vdupq_n_s32(0);
        for (int half = 0; half < 2; ++half) {
          int8x16_t q[4][2];
          q6k_half_quants(blk, half, q);
          NEON_UNROLL for (int part = 0; part < 4; ++part) {
            const int j = 8 * half + 2 * part;  // sub-blocks j (first 16 elements) and j + 1
            NEON_UNROLL for (int t = 0; t < T; ++t) {
              const int8_t* xq = x[t].q + 256 * sb + 128 * half + 32 * part;
              const int32x4_t d0 = Dot::dot(vdupq_n_s32(0), q[part][0], load_s8(xq));
              const int32x4_t d1 = Dot::dot(vdupq_n_s32(0), q[part][1], load_s8(xq + 16));
              isum[t] = vmlaq_n_s32(vmlaq_n_s32(isum[t], d0, blk.scales[j]), d1, blk.scales[j + 1]);
            }
          }
        }
        const float d = half_to_float(blk.d);
        NEON_UNROLL for (int t = 0; t < T; ++t)
          acc[i][t] = vfmaq_n_f32(acc[i][t], vcvtq_f32_s32(isum[t]), d * x[t].d[sb]);
      }
    }
    NEON_UNROLL for (int i = 0; i < R; ++i)
      NEON_UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = vaddvq_f32(acc[i][t]);
  }
};

// The quantized types' tables for one integer dot.
template <class Dot>
struct QuantTables {
  static constexpr TypeKernels kQ8_0{split::bytes_q8_0, split::quantize_q8_0_portable,
                                     gemm<Q8_0Kernel<Dot, DecQ8_0>, 1, 2, 4>, nullptr};
  static constexpr TypeKernels kQ4_0{split::bytes_q8_0, split::quantize_q8_0_portable,
                                     gemm<Q8_0Kernel<Dot, DecQ4_0>, 1, 2, 4>, nullptr};
  static constexpr TypeKernels kQ5_0{split::bytes_q8_0, split::quantize_q8_0_portable,
                                     gemm<Q8_0Kernel<Dot, DecQ5_0>, 1, 2, 4>, nullptr};
  static constexpr TypeKernels kQ4_1{split::bytes_q8_1, split::quantize_q8_1_portable,
                                     gemm<Q8_1Kernel<Dot, DecQ4_1>, 1, 2, 2>, nullptr};
  static constexpr TypeKernels kQ5_1{split::bytes_q8_1, split::quantize_q8_1_portable,
                                     gemm<Q8_1Kernel<Dot, DecQ5_1>, 1, 2, 2>, nullptr};
  static constexpr TypeKernels kQ4_K{split::bytes_q8_k, split::quantize_q8_k_portable,
                                     gemm<K4Kernel<Dot, false>, 1, 2, 4>, nullptr};
  static constexpr TypeKernels kQ5_K{split::bytes_q8_k, split::quantize_q8_k_portable,
                                     gemm<K4Kernel<Dot, true>, 1, 2, 4>, nullptr};
  static constexpr TypeKernels kQ6_K{split::bytes_q8_k, split::quantize_q8_k_portable,
                                     gemm<Q6KKernel<Dot>, 1, 2, 4>, nullptr};

  static const TypeKernels* get(DType type) {
    switch (type) {
      case DType::Q8_0: return &kQ8_0;
      case DType::Q4_0: return &kQ4_0;
      case DType::Q5_0: return &kQ5_0;
      case DType::Q4_1: return &kQ4_1;
      case DType::Q5_1: return &kQ5_1;
      case DType::Q4_K: return &kQ4_K;
      case DType::Q5_K: return &kQ5_K;
      case DType::Q6_K: return &kQ6_K;
      default: return nullptr;
    }
  }
};

#undef NEON_UNROLL

}  // namespace
}  // namespace flatline::kernels
