// AVX-512 kernels (F, BW, VL, DQ, VNNI; compiled with those flags only and
// chosen at run time). Activations use the split layout of split_act.h and
// are quantized by the AVX2 quantizers (same numbers on every path).
//
// Integer dots use VNNI's vpdpbusd (unsigned x signed bytes). For Q8_0-style
// weights the activations are made unsigned by flipping their sign bit
// (x + 128), and the surplus 128 * sum(w) is subtracted by starting the
// accumulator at -128 * sum(w), computed once per weight vector and reused
// for every token of the tile. A zmm covers two 32-element blocks.
#include <immintrin.h>

#include <cstring>

#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"
#include "tensor/split_act.h"

namespace flatline::kernels {

// Tile loops over R rows / T tokens must be fully unrolled so the
// accumulators live in registers (-O2 alone does not unroll them).
#define UNROLL _Pragma("GCC unroll 16")

namespace {

using namespace blocks;
using split::Act;
using split::Layout;

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// 16 floats: lanes 0-7 = a, lanes 8-15 = b.
inline __m512 pair_ps(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

inline __m512 pair_halves(uint16_t a, uint16_t b) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<short>(a))),
                                            _mm_set1_epi16(static_cast<short>(b)), 1);
  return _mm512_cvtph_ps(h);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Nibbles of two 16-byte quant arrays -> 64 bytes in element order:
// [a low, a high, b low, b high].
inline __m512i unpack_nibbles_pair(const uint8_t* a, const uint8_t* b) {
  const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
  return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0f));
}

// Single-block variant: [low, high] in the lower half, zeros above.
inline __m512i unpack_nibbles_one(const uint8_t* a) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m256i m = _mm256_set1_epi8(0x0f);
  const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m);
  return _mm512_zextsi256_si512(v);
}

// ---- tile driver (as in kernels_avx2.cpp) ------------------------------------------

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

template <class K, int RV, int RM, int TM>
void gemm(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t stride, int64_t n, float* y,
          size_t ys) {
  if (n == 1) drive<K, RV, 1>(w, r0, r1, act, stride, n, y, ys);
  else drive<K, RM, TM>(w, r0, r1, act, stride, n, y, ys);
}

// ---- F32 / F16 / BF16 weights, f32 activations --------------------------------------

struct LoadF32 {
  static __m512 load16(const uint8_t* row, int64_t k) { return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k); }
  static __m512 load_partial(const uint8_t* row, int64_t k, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k);
  }
};

struct LoadF16 {
  static __m512 load16(const uint8_t* row, int64_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k)));
  }
  static __m512 load_partial(const uint8_t* row, int64_t k, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * k));
  }
};

struct LoadBF16 {
  static __m512 widen(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
  static __m512 load16(const uint8_t* row, int64_t k) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k)));
  }
  static __m512 load_partial(const uint8_t* row, int64_t k, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, row + 2 * k));
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
    UNROLL for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(act + t * stride);
    __m512 acc[U][R][T];
    UNROLL for (int u = 0; u < U; ++u)
      UNROLL for (int i = 0; i < R; ++i)
        UNROLL for (int t = 0; t < T; ++t) acc[u][i][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * U <= K; k += 16 * U) {
      UNROLL for (int u = 0; u < U; ++u) {
        __m512 wv[R];
        UNROLL for (int i = 0; i < R; ++i) wv[i] = Load::load16(rows[i], k + 16 * u);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m512 xv = _mm512_loadu_ps(x[t] + k + 16 * u);
          UNROLL for (int i = 0; i < R; ++i) acc[u][i][t] = _mm512_fmadd_ps(wv[i], xv, acc[u][i][t]);
        }
      }
    }
    for (; k < K; k += 16) {  // the rest, the last vector masked: lanes past the end load as zero
      const __mmask16 m = K - k >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (K - k)) - 1);
      __m512 wv[R];
      UNROLL for (int i = 0; i < R; ++i) wv[i] = Load::load_partial(rows[i], k, m);
      UNROLL for (int t = 0; t < T; ++t) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x[t] + k);
        UNROLL for (int i = 0; i < R; ++i) acc[0][i][t] = _mm512_fmadd_ps(wv[i], xv, acc[0][i][t]);
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) {
        __m512 sum = acc[0][i][t];
        UNROLL for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][i][t]);
        y[t * ys + r + i] = _mm512_reduce_add_ps(sum);
      }
  }
};

// ---- Q4_0 / Q5_0 / Q8_0 weights, Q8_0 activations ------------------------------------

// Decoders: quants of blocks b and b+1 as 64 signed int8 with their scales
// (lanes 0-7 / 8-15), or of block b alone in the lower half (upper zero).
struct DecQ8_0 {
  static __m512i pair(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
    d = pair_halves(blk[0].d, blk[1].d);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[0].qs))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[1].qs)), 1);
  }
  static __m512i one(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
    d = _mm512_set1_ps(half_to_float(blk->d));
    return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs)));
  }
};

struct DecQ4_0 {
  static __m512i pair(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ4_0* blk = reinterpret_cast<const BlockQ4_0*>(row) + b;
    d = pair_halves(blk[0].d, blk[1].d);
    return _mm512_sub_epi8(unpack_nibbles_pair(blk[0].qs, blk[1].qs), _mm512_set1_epi8(8));
  }
  static __m512i one(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ4_0* blk = reinterpret_cast<const BlockQ4_0*>(row) + b;
    d = _mm512_set1_ps(half_to_float(blk->d));
    const __m512i q = _mm512_sub_epi8(unpack_nibbles_one(blk->qs), _mm512_set1_epi8(8));
    return _mm512_maskz_mov_epi8(0xffffffffull, q);  // keep the upper half zero
  }
};

struct DecQ5_0 {
  // value = (nibble | bit << 4) - 16
  static __m512i pair(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ5_0* blk = reinterpret_cast<const BlockQ5_0*>(row) + b;
    d = pair_halves(blk[0].d, blk[1].d);
    const __mmask64 high = static_cast<__mmask64>(load_u32(blk[0].qh)) | static_cast<__mmask64>(load_u32(blk[1].qh)) << 32;
    const __m512i v = _mm512_sub_epi8(unpack_nibbles_pair(blk[0].qs, blk[1].qs), _mm512_set1_epi8(16));
    return _mm512_mask_add_epi8(v, high, v, _mm512_set1_epi8(16));
  }
  static __m512i one(const uint8_t* row, int64_t b, __m512& d) {
    const BlockQ5_0* blk = reinterpret_cast<const BlockQ5_0*>(row) + b;
    d = _mm512_set1_ps(half_to_float(blk->d));
    const __mmask64 high = load_u32(blk->qh);
    const __m512i v = _mm512_sub_epi8(unpack_nibbles_one(blk->qs), _mm512_set1_epi8(16));
    return _mm512_maskz_mov_epi8(0xffffffffull, _mm512_mask_add_epi8(v, high, v, _mm512_set1_epi8(16)));
  }
};

template <class Dec>
struct Q8_0Kernel {
  // acc += (w . x) * (dw * dx) for one zmm of quants (one or two blocks).
  template <int R, int T>
  static void step(const __m512i (&xu)[T], const __m512 (&xd)[T], __m512i wq, __m512 wd, __m512 (&acc)[T]) {
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    // -128 * sum(w) per lane: the surplus of using x + 128 below.
    const __m512i base = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), sign, wq));
    UNROLL for (int t = 0; t < T; ++t) {
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, xu[t], wq));
      acc[t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd, xd[t]), acc[t]);
    }
  }

  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_0(w.cols);
    const int64_t nb = w.cols / 32;
    const uint8_t* rows[R];
    Act x[T];
    UNROLL for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m512 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      __m512i xu[T];
      __m512 xd[T];
      UNROLL for (int t = 0; t < T; ++t) {
        xu[t] = _mm512_xor_si512(_mm512_loadu_si512(x[t].q + 32 * b), sign);
        xd[t] = pair_ps(x[t].d[b], x[t].d[b + 1]);
      }
      UNROLL for (int i = 0; i < R; ++i) {
        __m512 wd;
        const __m512i wq = Dec::pair(rows[i], b, wd);
        step<R, T>(xu, xd, wq, wd, acc[i]);
      }
    }
    if (b < nb) {  // odd last block: upper halves are zero in w, so they add 0
      __m512i xu[T];
      __m512 xd[T];
      UNROLL for (int t = 0; t < T; ++t) {
        xu[t] = _mm512_xor_si512(_mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].q + 32 * b))), sign);
        xd[t] = _mm512_set1_ps(x[t].d[b]);
      }
      UNROLL for (int i = 0; i < R; ++i) {
        __m512 wd;
        const __m512i wq = Dec::one(rows[i], b, wd);
        step<R, T>(xu, xd, wq, wd, acc[i]);
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = _mm512_reduce_add_ps(acc[i][t]);
  }
};

// ---- Q4_1 / Q5_1 weights, Q8_1 activations -------------------------------------------

// Decoders: unsigned quants (0..31) of blocks b, b+1 (or b alone), scales and
// mins; the mins vector has m_b in lane 0 and m_b+1 in lane 8, zero elsewhere.
struct DecQ4_1 {
  static __m512i pair(const uint8_t* row, int64_t b, __m512& d, __m512& m) {
    const BlockQ4_1* blk = reinterpret_cast<const BlockQ4_1*>(row) + b;
    d = pair_halves(blk[0].d, blk[1].d);
    m = _mm512_maskz_mov_ps(0x0101, pair_halves(blk[0].m, blk[1].m));
    return unpack_nibbles_pair(blk[0].qs, blk[1].qs);
  }
  static __m512i one(const uint8_t* row, int64_t b, __m512& d, __m512& m) {
    const BlockQ4_1* blk = reinterpret_cast<const BlockQ4_1*>(row) + b;
    d = _mm512_set1_ps(half_to_float(blk->d));
    m = _mm512_maskz_mov_ps(0x0001, _mm512_set1_ps(half_to_float(blk->m)));
    return unpack_nibbles_one(blk->qs);
  }
};

struct DecQ5_1 {
  static __m512i pair(const uint8_t* row, int64_t b, __m512& d, __m512& m) {
    const BlockQ5_1* blk = reinterpret_cast<const BlockQ5_1*>(row) + b;
    d = pair_halves(blk[0].d, blk[1].d);
    m = _mm512_maskz_mov_ps(0x0101, pair_halves(blk[0].m, blk[1].m));
    const __mmask64 high = static_cast<__mmask64>(load_u32(blk[0].qh)) | static_cast<__mmask64>(load_u32(blk[1].qh)) << 32;
    const __m512i v = unpack_nibbles_pair(blk[0].qs, blk[1].qs);
    return _mm512_mask_add_epi8(v, high, v, _mm512_set1_epi8(16));
  }
  static __m512i one(const uint8_t* row, int64_t b, __m512& d, __m512& m) {
    const BlockQ5_1* blk = reinterpret_cast<const BlockQ5_1*>(row) + b;
    d = _mm512_set1_ps(half_to_float(blk->d));
    m = _mm512_maskz_mov_ps(0x0001, _mm512_set1_ps(half_to_float(blk->m)));
    const __mmask64 high = load_u32(blk->qh);
    const __m512i v = unpack_nibbles_one(blk->qs);
    return _mm512_mask_add_epi8(v, high, v, _mm512_set1_epi8(16));
  }
};

// dot = sum_b d_w*d_x*sum(q_w*q_x) + m_w*s_x  (s_x = d_x * sum(q_x))
template <class Dec>
struct Q8_1Kernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_1(w.cols);
    const int64_t nb = w.cols / 32;
    const uint8_t* rows[R];
    Act x[T];
    UNROLL for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m512 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
    int64_t b = 0;
    auto body = [&](const __m512i(&xq)[T], const __m512(&xd)[T], const __m512(&xs)[T], bool two) {
      UNROLL for (int i = 0; i < R; ++i) {
        __m512 wd, wm;
        const __m512i wq = two ? Dec::pair(rows[i], b, wd, wm) : Dec::one(rows[i], b, wd, wm);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq[t]));
          acc[i][t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd, xd[t]), _mm512_fmadd_ps(wm, xs[t], acc[i][t]));
        }
      }
    };
    for (; b + 2 <= nb; b += 2) {
      __m512i xq[T];
      __m512 xd[T], xs[T];
      UNROLL for (int t = 0; t < T; ++t) {
        xq[t] = _mm512_loadu_si512(x[t].q + 32 * b);
        xd[t] = pair_ps(x[t].d[b], x[t].d[b + 1]);
        xs[t] = pair_ps(x[t].s[b], x[t].s[b + 1]);
      }
      body(xq, xd, xs, true);
    }
    if (b < nb) {
      __m512i xq[T];
      __m512 xd[T], xs[T];
      UNROLL for (int t = 0; t < T; ++t) {
        xq[t] = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].q + 32 * b)));
        xd[t] = _mm512_set1_ps(x[t].d[b]);
        xs[t] = _mm512_set1_ps(x[t].s[b]);
      }
      body(xq, xd, xs, false);
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = _mm512_reduce_add_ps(acc[i][t]);
  }
};

const TypeKernels kF32{nullptr, nullptr, gemm<FloatKernel<LoadF32>, 1, 4, 4>, nullptr};
const TypeKernels kF16{nullptr, nullptr, gemm<FloatKernel<LoadF16>, 1, 4, 4>, nullptr};
const TypeKernels kBF16{nullptr, nullptr, gemm<FloatKernel<LoadBF16>, 1, 4, 4>, nullptr};
const TypeKernels kQ8_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ8_0>, 1, 4, 4>, nullptr};
const TypeKernels kQ4_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ4_0>, 1, 4, 4>, nullptr};
const TypeKernels kQ5_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ5_0>, 1, 4, 4>, nullptr};
const TypeKernels kQ4_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ4_1>, 1, 4, 4>, nullptr};
const TypeKernels kQ5_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ5_1>, 1, 4, 4>, nullptr};

}  // namespace

const TypeKernels* avx512_kernels(DType type) {
  switch (type) {
    case DType::F32: return &kF32;
    case DType::F16: return &kF16;
    case DType::BF16: return &kBF16;
    case DType::Q8_0: return &kQ8_0;
    case DType::Q4_0: return &kQ4_0;
    case DType::Q5_0: return &kQ5_0;
    case DType::Q4_1: return &kQ4_1;
    case DType::Q5_1: return &kQ5_1;
    default: return nullptr;
  }
}

}  // namespace flatline::kernels
