// AVX2 + FMA + F16C kernels (compiled with those flags only; chosen at run
// time). Activations use the split layout of split_act.h.
//
// Every kernel computes a tile of R weight rows x T tokens over the whole row
// length, so each weight vector loaded is used T times and each activation
// vector R times. matvec uses one row and one token per tile: a single
// sequential memory stream per thread reads faster than several rows
// interleaved. Integer dots per 32-element
// block use the usual AVX2 idiom: maddubs(|w|, sign(x, w)) then madd with
// ones, exact because |w| <= 128 and |x| <= 127 keep the int16 pair sums
// below 2^15.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"
#include "tensor/split_act.h"
#include "tensor/tile_driver.h"

namespace flatline::kernels {

// Tile loops over R rows / T tokens must be fully unrolled so the
// accumulators live in registers (-O2 alone does not unroll them).
#define UNROLL _Pragma("GCC unroll 16")

namespace {

using namespace blocks;

// ---- small helpers ------------------------------------------------------------

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
inline float round_to_half(float f) { return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// Four vectors of 8 int32 (in [-128, 127] after rounding) -> 32 int8 in order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);   // a0-3 b0-3 a4-7 b4-7
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);  // a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 c4-7 d4-7
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// 0xFF in byte i where bit i of `bits` is set.
inline __m256i bytes_from_bits(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

// 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles.
inline __m256i unpack_nibbles(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- activation quantizers (split layout) -----------------------------------

// Quantizes 32 floats with multiplier id (round half to even, as cvtps2dq
// does in the default rounding mode) into dst; returns their int sum.
inline __m256i quantize32(const float* x, __m256 id, int8_t* dst) {
  const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), pack_i32_to_i8(a, b, c, d));
  return _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
}

inline float absmax32(const float* x) {
  __m256 m = abs_ps(_mm256_loadu_ps(x));
  m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8)));
  m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 16)));
  m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 24)));
  return hmax(m);
}

}  // namespace

namespace split {

void quantize_q8_0_avx2(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_0(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(static_cast<uint8_t*>(dst) + l.d_off);
  for (int64_t b = 0; b < cols / 32; ++b) {
    const float amax = absmax32(x + 32 * b);
    d[b] = round_to_half(amax / 127.f);
    quantize32(x + 32 * b, _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f), q + 32 * b);
  }
}

void quantize_q8_1_avx2(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_1(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(static_cast<uint8_t*>(dst) + l.d_off);
  float* s = reinterpret_cast<float*>(static_cast<uint8_t*>(dst) + l.s_off);
  for (int64_t b = 0; b < cols / 32; ++b) {
    const float amax = absmax32(x + 32 * b);
    const float scale = amax / 127.f;
    d[b] = round_to_half(scale);
    const __m256i sum = quantize32(x + 32 * b, _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f), q + 32 * b);
    s[b] = round_to_half(scale * static_cast<float>(hsum_i32(sum)));
  }
}

void quantize_q8_k_avx2(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_k(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(static_cast<uint8_t*>(dst) + l.d_off);
  int16_t* bsums = reinterpret_cast<int16_t*>(static_cast<uint8_t*>(dst) + l.s_off);
  for (int64_t sb = 0; sb < cols / 256; ++sb) {
    const float* xs = x + 256 * sb;
    int8_t* qs = q + 256 * sb;
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 256; j += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xs + j)));
    const float amax = hmax(m);
    if (amax == 0) {
      std::memset(qs, 0, 256);
      d[sb] = 0;
      std::memset(bsums + 16 * sb, 0, 32);
      continue;
    }
    float max = 0;  // the first element of largest magnitude decides the sign
    for (int j = 0; j < 256; ++j)
      if (xs[j] == amax || xs[j] == -amax) {
        max = xs[j];
        break;
      }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int j = 0; j < 256; j += 32) {
      const __m256i a = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xs + j), vs)), cap);
      const __m256i b = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xs + j + 8), vs)), cap);
      const __m256i c = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xs + j + 16), vs)), cap);
      const __m256i e = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xs + j + 24), vs)), cap);
      const __m256i packed = pack_i32_to_i8(a, b, c, e);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + j), packed);
      // Sums of the two groups of 16: widen to int16, add pairs, then quads.
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), packed);
      const __m256i quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));  // 8 sums of 4
      alignas(32) int32_t s4[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(s4), quads);
      bsums[16 * sb + j / 16] = static_cast<int16_t>(s4[0] + s4[1] + s4[2] + s4[3]);
      bsums[16 * sb + j / 16 + 1] = static_cast<int16_t>(s4[4] + s4[5] + s4[6] + s4[7]);
    }
    d[sb] = 1 / iscale;
  }
}

}  // namespace split

namespace {

using split::Act;
using split::Layout;

// Row r of w. (Not Matrix::row: inline functions with external linkage must
// not be instantiated in ISA-specific files, see split_act.h.)
const uint8_t* row_ptr(const Matrix& w, int64_t r) { return w.data + static_cast<size_t>(r) * w.row_stride; }


// ---- F32 / F16 / BF16 weights, f32 activations --------------------------------------

struct LoadF32 {
  static __m256 load8(const uint8_t* row, int64_t k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k); }
  static float load1(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

struct LoadF16 {
  static __m256 load8(const uint8_t* row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return half_to_float(h);
  }
};

struct LoadBF16 {
  static __m256 load8(const uint8_t* row, int64_t k) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static float load1(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    uint32_t bits = static_cast<uint32_t>(h) << 16;
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
    UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(act + t * stride);
    __m256 acc[U][R][T];
    UNROLL for (int u = 0; u < U; ++u)
      UNROLL for (int i = 0; i < R; ++i)
        UNROLL for (int t = 0; t < T; ++t) acc[u][i][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * U <= K; k += 8 * U) {
      UNROLL for (int u = 0; u < U; ++u) {
        __m256 wv[R];
        UNROLL for (int i = 0; i < R; ++i) wv[i] = Load::load8(rows[i], k + 8 * u);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m256 xv = _mm256_loadu_ps(x[t] + k + 8 * u);
          UNROLL for (int i = 0; i < R; ++i) acc[u][i][t] = _mm256_fmadd_ps(wv[i], xv, acc[u][i][t]);
        }
      }
    }
    for (; k + 8 <= K; k += 8) {
      __m256 wv[R];
      UNROLL for (int i = 0; i < R; ++i) wv[i] = Load::load8(rows[i], k);
      UNROLL for (int t = 0; t < T; ++t) {
        const __m256 xv = _mm256_loadu_ps(x[t] + k);
        UNROLL for (int i = 0; i < R; ++i) acc[0][i][t] = _mm256_fmadd_ps(wv[i], xv, acc[0][i][t]);
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) {
        __m256 v = acc[0][i][t];
        UNROLL for (int u = 1; u < U; ++u) v = _mm256_add_ps(v, acc[u][i][t]);
        float sum = hsum(v);
        for (int64_t kk = k; kk < K; ++kk) sum += Load::load1(rows[i], kk) * x[t][kk];
        y[t * ys + r + i] = sum;
      }
  }
};

// ---- Q4_0 / Q5_0 / Q8_0 weights, Q8_0 activations ------------------------------------

// Decoders: the 32 quants of block b of a row as signed int8, and its scale.
struct DecQ8_0 {
  static __m256i quants(const uint8_t* row, int64_t b, float& d) {
    const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
    d = half_to_float(blk.d);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
  }
};

struct DecQ4_0 {
  static __m256i quants(const uint8_t* row, int64_t b, float& d) {
    const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
    d = half_to_float(blk.d);
    return _mm256_sub_epi8(unpack_nibbles(blk.qs), _mm256_set1_epi8(8));
  }
};

struct DecQ5_0 {
  static __m256i quants(const uint8_t* row, int64_t b, float& d) {
    const BlockQ5_0& blk = reinterpret_cast<const BlockQ5_0*>(row)[b];
    d = half_to_float(blk.d);
    const __m256i high = _mm256_and_si256(bytes_from_bits(load_u32(blk.qh)), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(blk.qs), high), _mm256_set1_epi8(16));
  }
};

template <class Dec>
struct Q8_0Kernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_0(w.cols);
    const int64_t nb = w.cols / 32;
    const uint8_t* rows[R];
    Act x[T];
    UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m256 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
      __m256i xq[T];
      UNROLL for (int t = 0; t < T; ++t) xq[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].q + 32 * b));
      UNROLL for (int i = 0; i < R; ++i) {
        float wd;
        const __m256i wq = Dec::quants(rows[i], b, wd);
        const __m256i wabs = _mm256_sign_epi8(wq, wq);
        const __m256 wdv = _mm256_set1_ps(wd);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m256i pairs = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xq[t], wq));
          const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
          acc[i][t] = _mm256_fmadd_ps(dot, _mm256_mul_ps(wdv, _mm256_broadcast_ss(x[t].d + b)), acc[i][t]);
        }
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = hsum(acc[i][t]);
  }
};

// ---- Q4_1 / Q5_1 weights, Q8_1 activations -------------------------------------------

// Decoders: the 32 quants of block b as unsigned int8 (0..31), scale and min.
struct DecQ4_1 {
  static __m256i quants(const uint8_t* row, int64_t b, float& d, float& m) {
    const BlockQ4_1& blk = reinterpret_cast<const BlockQ4_1*>(row)[b];
    d = half_to_float(blk.d);
    m = half_to_float(blk.m);
    return unpack_nibbles(blk.qs);
  }
};

struct DecQ5_1 {
  static __m256i quants(const uint8_t* row, int64_t b, float& d, float& m) {
    const BlockQ5_1& blk = reinterpret_cast<const BlockQ5_1*>(row)[b];
    d = half_to_float(blk.d);
    m = half_to_float(blk.m);
    const __m256i high = _mm256_and_si256(bytes_from_bits(load_u32(blk.qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles(blk.qs), high);
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
    UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m256 acc[R][T];
    float mins[R][T] = {};
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
      __m256i xq[T];
      UNROLL for (int t = 0; t < T; ++t) xq[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].q + 32 * b));
      UNROLL for (int i = 0; i < R; ++i) {
        float wd, wm;
        const __m256i wq = Dec::quants(rows[i], b, wd, wm);
        const __m256 wdv = _mm256_set1_ps(wd);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m256i pairs = _mm256_maddubs_epi16(wq, xq[t]);  // wq <= 31: no saturation
          const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
          acc[i][t] = _mm256_fmadd_ps(dot, _mm256_mul_ps(wdv, _mm256_broadcast_ss(x[t].d + b)), acc[i][t]);
          mins[i][t] += wm * x[t].s[b];
        }
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = hsum(acc[i][t]) + mins[i][t];
  }
};

// ---- Q4_K / Q5_K / Q6_K weights, Q8_K activations --------------------------------------
//
// One ymm covers a 32-element sub-block (Q4_K/Q5_K) or two 16-element ones
// (Q6_K). maddubs(unsigned quant, signed activation) gives exact int16 pair
// sums (quants <= 63), madd with the int16 sub-block scale gives int32, and
// the super-block's integer total is converted to float once.

template <bool kFiveBit>
struct K4Kernel {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;

  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_k(w.cols);
    const int64_t nsb = w.cols / 256;
    const Block* rows[R];
    Act x[T];
    UNROLL for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + i));
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m256 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      UNROLL for (int i = 0; i < R; ++i) {
        const Block& blk = rows[i][sb];
        uint64_t sc, m;
        k4_unpack_scales(blk.scales, sc, m);
        const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m)));
        const __m256i mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        __m256i isum[T];
        UNROLL for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; ++c) {
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
          __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
          if constexpr (kFiveBit) {
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
            const __m256i bit_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
            const __m256i bit_hi = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1)));
            const __m256i sixteen = _mm256_set1_epi8(16);
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen));
          }
          const __m256i sc_lo = _mm256_set1_epi16(static_cast<short>((sc >> (16 * c)) & 0xff));
          const __m256i sc_hi = _mm256_set1_epi16(static_cast<short>((sc >> (16 * c + 8)) & 0xff));
          UNROLL for (int t = 0; t < T; ++t) {
            const int8_t* xq = x[t].q + 256 * sb + 64 * c;
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32)));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(plo, sc_lo), _mm256_madd_epi16(phi, sc_hi)));
          }
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].bsums + 16 * sb));
          const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bs));
          const float xd = x[t].d[sb];
          acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * xd), acc[i][t]);
          acc[i][t] = _mm256_fnmadd_ps(mins, _mm256_set1_ps(dmin * xd), acc[i][t]);
        }
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = hsum(acc[i][t]);
  }
};

// Q6_K: q = 6-bit unsigned - 32 with int8 scales per 16 elements; the -32
// goes through the activation group sums: sum(sc*(q-32)*x) = sum(sc*q*x) -
// 32*sum(sc*bsum).
struct Q6KKernel {
  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    const Layout layout = split::q8_k(w.cols);
    const int64_t nsb = w.cols / 256;
    const BlockQ6_K* rows[R];
    Act x[T];
    UNROLL for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const BlockQ6_K*>(row_ptr(w, r + i));
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m256 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(3);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      UNROLL for (int i = 0; i < R; ++i) {
        const BlockQ6_K& blk = rows[i][sb];
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
        __m256i isum[T];
        UNROLL for (int t = 0; t < T; ++t) {
          const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].bsums + 16 * sb));
          isum[t] = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(sc16, bs)), 5);
        }
        for (int h = 0; h < 2; ++h) {
          const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h));
          const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32));
          const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
              _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)),
          };
          UNROLL for (int part = 0; part < 4; ++part) {
            // elements 32*part .. +31 of the half: sub-blocks 8h + 2part, +1
            const int j = 8 * h + 2 * part;
            const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(blk.scales[j + 1]), _mm_set1_epi16(blk.scales[j]));
            UNROLL for (int t = 0; t < T; ++t) {
              const int8_t* xq = x[t].q + 256 * sb + 128 * h + 32 * part;
              const __m256i p = _mm256_maddubs_epi16(q[part], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
              isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
            }
          }
        }
        const float d = half_to_float(blk.d);
        UNROLL for (int t = 0; t < T; ++t)
          acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * x[t].d[sb]), acc[i][t]);
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = hsum(acc[i][t]);
  }
};


// ---- dequantization ----------------------------------------------------------------
// Same arithmetic as the scalar reference (dequantize.cpp), operation for
// operation (separate multiply and subtract, no FMA), so results are equal.

inline void store_bytes_as_floats(const __m256i q, __m256 scale, float* y) {  // y[i] = scale * int8 q[i]
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(y, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

// y[i] = scale * q[i] - min for 32 unsigned bytes q
inline void store_ubytes_scaled(const __m256i q, __m256 scale, __m256 min, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int k = 0; k < 4; ++k)
    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]))), min));
}

void dequantize_f16(const void* src, float* y, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, LoadF16::load8(p, i));
  for (; i < n; ++i) y[i] = LoadF16::load1(p, i);
}

void dequantize_bf16(const void* src, float* y, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, LoadBF16::load8(p, i));
  for (; i < n; ++i) y[i] = LoadBF16::load1(p, i);
}

void dequantize_q8_0(const void* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    float d;
    const __m256i q = DecQ8_0::quants(static_cast<const uint8_t*>(src), b, d);
    store_bytes_as_floats(q, _mm256_set1_ps(d), y + 32 * b);
  }
}

void dequantize_q4_0(const void* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    float d;
    const __m256i q = DecQ4_0::quants(static_cast<const uint8_t*>(src), b, d);
    store_bytes_as_floats(q, _mm256_set1_ps(d), y + 32 * b);
  }
}

template <bool kFiveBit>
void dequantize_k4(const void* src, float* y, int64_t n) {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  const Block* blocks = static_cast<const Block*>(src);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int64_t i = 0; i < n / 256; ++i, y += 256) {
    const Block& blk = blocks[i];
    const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
    for (int c = 0; c < 4; ++c) {
      uint8_t sc_lo, m_lo, sc_hi, m_hi;
      k4_scale_min(2 * c, blk.scales, sc_lo, m_lo);
      k4_scale_min(2 * c + 1, blk.scales, sc_hi, m_hi);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      if constexpr (kFiveBit) {
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        const __m256i bit_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
        const __m256i bit_hi = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1)));
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), _mm256_set1_epi8(16)));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), _mm256_set1_epi8(16)));
      }
      store_ubytes_scaled(lo, _mm256_set1_ps(d * sc_lo), _mm256_set1_ps(dmin * m_lo), y + 64 * c);
      store_ubytes_scaled(hi, _mm256_set1_ps(d * sc_hi), _mm256_set1_ps(dmin * m_hi), y + 64 * c + 32);
    }
  }
}

void dequantize_q6_k(const void* src, float* y, int64_t n) {
  const BlockQ6_K* blocks = static_cast<const BlockQ6_K*>(src);
  const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(3), bias = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < n / 256; ++i, y += 256) {
    const BlockQ6_K& blk = blocks[i];
    const float d = half_to_float(blk.d);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)),
      };
      for (int part = 0; part < 4; ++part) {
        const int j = 8 * h + 2 * part;  // sub-blocks j (first 16 elements) and j + 1
        const __m256i v = _mm256_sub_epi8(q[part], bias);
        float* out = y + 128 * h + 32 * part;
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        const __m256 s0 = _mm256_set1_ps(d * static_cast<float>(blk.scales[j]));
        const __m256 s1 = _mm256_set1_ps(d * static_cast<float>(blk.scales[j + 1]));
        _mm256_storeu_ps(out, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(out + 8, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(out + 16, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(out + 24, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
      }
    }
  }
}

const TypeKernels kF32{nullptr, nullptr, gemm<FloatKernel<LoadF32>, 1, 4, 2>, nullptr};
const TypeKernels kF16{nullptr, nullptr, gemm<FloatKernel<LoadF16>, 1, 4, 2>, dequantize_f16};
const TypeKernels kBF16{nullptr, nullptr, gemm<FloatKernel<LoadBF16>, 1, 4, 2>, dequantize_bf16};
const TypeKernels kQ8_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ8_0>, 1, 2, 4>, dequantize_q8_0};
const TypeKernels kQ4_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ4_0>, 1, 2, 4>, dequantize_q4_0};
const TypeKernels kQ5_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm<Q8_0Kernel<DecQ5_0>, 1, 2, 4>, nullptr};
const TypeKernels kQ4_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ4_1>, 1, 2, 2>, nullptr};
const TypeKernels kQ5_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ5_1>, 1, 2, 2>, nullptr};
const TypeKernels kQ4_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm<K4Kernel<false>, 1, 2, 4>, dequantize_k4<false>};
const TypeKernels kQ5_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm<K4Kernel<true>, 1, 2, 4>, dequantize_k4<true>};
const TypeKernels kQ6_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm<Q6KKernel, 1, 2, 4>, dequantize_q6_k};

}  // namespace

DequantizeFn avx2_dequantizer(DType type) {
  const TypeKernels* k = avx2_kernels(type);
  return k ? k->dequantize : nullptr;
}

const TypeKernels* avx2_kernels(DType type) {
  switch (type) {
    case DType::F32: return &kF32;
    case DType::F16: return &kF16;
    case DType::BF16: return &kBF16;
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

}  // namespace flatline::kernels
