// AVX-512 kernels (F, BW, VL, DQ, VNNI; compiled with those flags only and
// chosen at run time). Activations use the split layout of split_act.h and
// are quantized by the AVX2 quantizers (same numbers on every path).
//
// Integer dots use VNNI's vpdpbusd (unsigned x signed bytes). For Q8_0-style
// weights the activations are made unsigned by flipping their sign bit
// (x + 128), and the surplus 128 * sum(w) is subtracted by starting the
// accumulator at -128 * sum(w), computed once per weight vector and reused
// for every token of the tile. A zmm covers two 32-element blocks.
//
// Tiles: matvec walks one row at a time (one sequential memory stream per
// thread measured about twice as fast as interleaving several rows); matmul
// uses 4 rows x 4 tokens, and for 8+ tokens each 4-row tile is first decoded
// into a per-thread buffer (gemm_packed) so the decoding is not repeated for
// every group of tokens.

// GCC 12 reports false "uninitialized" warnings from inside its own AVX-512
// intrinsic headers (their _mm512_undefined_* helpers).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdlib>
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
using split::Act;
using split::Layout;

// Row r of w. (Not Matrix::row: inline functions with external linkage must
// not be instantiated in ISA-specific files, see split_act.h.)
const uint8_t* row_ptr(const Matrix& w, int64_t r) { return w.data + static_cast<size_t>(r) * w.row_stride; }

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
    UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
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

// Row side of a Q8_0-style tile: for row i and block b (a pair b, b+1, or b
// alone at an odd end) the signed quants, -128 * their sum per lane (the
// surplus of using x + 128 with vpdpbusd), and the scales.
template <class Dec, int R>
struct DecodedRows {
  const uint8_t* rows[R];
  void get(int i, int64_t b, bool pair, __m512i& wq, __m512i& base, __m512& wd) const {
    wq = pair ? Dec::pair(rows[i], b, wd) : Dec::one(rows[i], b, wd);
    base = _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(0x80)), wq));
  }
};

// The same, decoded once per row tile into a buffer (kPackBytes per row and
// step of two blocks) and reused for every token group of the tile.
constexpr size_t kPackBytes = 192;

template <int R>
struct PackedRows {
  const uint8_t* buf;
  void get(int i, int64_t b, bool, __m512i& wq, __m512i& base, __m512& wd) const {
    const uint8_t* e = buf + (static_cast<size_t>(b / 2) * R + i) * kPackBytes;
    wq = _mm512_loadu_si512(e);
    base = _mm512_loadu_si512(e + 64);
    wd = _mm512_loadu_ps(e + 128);
  }
};

template <class Dec>
struct Q8_0Kernel {
  template <int R, int T, class Rows>
  static void run(const Rows& src, int64_t cols, const uint8_t* act, size_t stride, float* y, size_t ys, int64_t r) {
    const Layout layout = split::q8_0(cols);
    const int64_t nb = cols / 32;
    Act x[T];
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m512 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < nb; b += 2) {
      const bool pair = b + 1 < nb;  // else the odd last block: upper halves of w are zero and add 0
      __m512i xu[T];
      __m512 xd[T];
      UNROLL for (int t = 0; t < T; ++t) {
        if (pair) {
          xu[t] = _mm512_xor_si512(_mm512_loadu_si512(x[t].q + 32 * b), sign);
          xd[t] = pair_ps(x[t].d[b], x[t].d[b + 1]);
        } else {
          xu[t] = _mm512_xor_si512(_mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].q + 32 * b))), sign);
          xd[t] = _mm512_set1_ps(x[t].d[b]);
        }
      }
      UNROLL for (int i = 0; i < R; ++i) {
        __m512i wq, base;
        __m512 wd;
        src.get(i, b, pair, wq, base, wd);
        UNROLL for (int t = 0; t < T; ++t) {
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, xu[t], wq));
          acc[i][t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd, xd[t]), acc[i][t]);
        }
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = _mm512_reduce_add_ps(acc[i][t]);
  }

  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    DecodedRows<Dec, R> src;
    UNROLL for (int i = 0; i < R; ++i) src.rows[i] = row_ptr(w, r + i);
    run<R, T>(src, w.cols, act, stride, y, ys, r);
  }

  static size_t pack_bytes(int64_t cols, int R) { return static_cast<size_t>((cols / 32 + 1) / 2) * R * kPackBytes; }

  template <int R>
  static void pack(const Matrix& w, int64_t r, uint8_t* buf) {
    DecodedRows<Dec, R> src;
    UNROLL for (int i = 0; i < R; ++i) src.rows[i] = row_ptr(w, r + i);
    const int64_t nb = w.cols / 32;
    for (int64_t b = 0; b < nb; b += 2)
      UNROLL for (int i = 0; i < R; ++i) {
        __m512i wq, base;
        __m512 wd;
        src.get(i, b, b + 1 < nb, wq, base, wd);
        uint8_t* e = buf + (static_cast<size_t>(b / 2) * R + i) * kPackBytes;
        _mm512_storeu_si512(e, wq);
        _mm512_storeu_si512(e + 64, base);
        _mm512_storeu_ps(e + 128, wd);
      }
  }

  template <int R, int T>
  static void tile_packed(const Matrix& w, const uint8_t* buf, int64_t r, const uint8_t* act, size_t stride, float* y,
                          size_t ys) {
    run<R, T>(PackedRows<R>{buf}, w.cols, act, stride, y, ys, r);
  }
};

// matmul with row packing: each tile of R rows is decoded once into a
// thread-local buffer (grow-only) and then run against every token group.
// Below kPackMinTokens tokens decoding on the fly is cheaper.
constexpr int64_t kPackMinTokens = 8;

// Grow-only buffer (one per thread) for packed row tiles. Plain malloc: no
// standard-library templates are instantiated in ISA-specific files.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  // nullptr if the memory cannot be had (the caller then does without).
  uint8_t* get(size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      capacity_ = (bytes + 4095) / 4096 * 4096;
      data_ = static_cast<uint8_t*>(std::aligned_alloc(64, capacity_));
      if (!data_) capacity_ = 0;
    }
    return data_;
  }

 private:
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

template <class K, int RV, int R, int T>
void gemm_packed(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t stride, int64_t n, float* y,
                 size_t ys) {
  if (n < kPackMinTokens) {
    gemm<K, RV, R, T>(w, r0, r1, act, stride, n, y, ys);
    return;
  }
  thread_local PackBuffer buf;
  uint8_t* buf_data = buf.get(K::pack_bytes(w.cols, R));
  if (!buf_data) {
    gemm<K, RV, R, T>(w, r0, r1, act, stride, n, y, ys);
    return;
  }
  const uint8_t* a = static_cast<const uint8_t*>(act);
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    K::template pack<R>(w, r, buf_data);
    int64_t t = 0;
    for (; t + T <= n; t += T) K::template tile_packed<R, T>(w, buf_data, r, a + t * stride, stride, y + t * ys, ys);
    for (; t < n; ++t) K::template tile_packed<R, 1>(w, buf_data, r, a + t * stride, stride, y + t * ys, ys);
  }
  if (r < r1) drive<K, 1, T>(w, r, r1, act, stride, n, y, ys);
}

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
    UNROLL for (int i = 0; i < R; ++i) rows[i] = row_ptr(w, r + i);
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

// ---- Q4_K / Q5_K / Q6_K weights, Q8_K activations --------------------------------------
//
// Per super-block of 256 the integer part is accumulated exactly: maddubs
// (unsigned quant x signed activation -> int16 pairs, no saturation as
// quants are <= 63) then vpdpwssd with the sub-block scales as int16, and
// converted to float once per super-block. The constant part of each weight
// (Q4_K/Q5_K: -dmin*m per sub-block of 32; Q6_K: -32*d*sc per sub-block of
// 16) meets the activation group sums (bsums) in float: sum_j c_j * (dx *
// bsum_j), one FMA per tile entry and super-block.
//
// The row side of a tile comes from a "source": decoded on the fly (matvec,
// short matmuls) or from a packed row tile (long matmuls), same layout:
//   q[c]   chunk c of 64 quants as unsigned bytes (c = 0..3)
//   sc[c]  int16 scale per maddubs lane of chunk c
//   fm     float constants per bsum-group (8 for Q4_K/Q5_K, 16 for Q6_K)
//   d      super-block scale

struct KRow {
  __m512i q[4], sc[4];
  __m512 fm;  // Q4_K/Q5_K: lanes 0-7 used, upper zero
  float d;
};

// Lanes 0-15 = sc16 lane a, lanes 16-31 = lane b (maddubs output lanes 0-15
// cover bytes 0-31 of a 64-byte vector).
inline __m512i two_scales(__m512i sc16, int a, int b) {
  const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(a))),
                                         _mm256_set1_epi16(static_cast<short>(b)), 1);
  return _mm512_permutexvar_epi16(idx, sc16);
}

// Lanes 8q .. 8q+7 = sc16 lane first + q (four 16-element sub-blocks).
inline __m512i four_scales(__m512i sc16, int first) {
  const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12,
                                        11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i idx = _mm512_add_epi16(_mm512_set1_epi16(static_cast<short>(first)), _mm512_srli_epi16(lane, 3));
  return _mm512_permutexvar_epi16(idx, sc16);
}

template <bool kFiveBit>
struct K4Decode {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  static KRow row(const uint8_t* row_bytes, int64_t sb) {
    const Block& blk = reinterpret_cast<const Block*>(row_bytes)[sb];
    uint64_t sc, m;
    k4_unpack_scales(blk.scales, sc, m);
    KRow k;
    const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc))));
    const float dmin = half_to_float(blk.dmin);
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(m))));
    k.fm = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_set1_ps(-dmin), mins));
    k.d = half_to_float(blk.d);
    const __m256i qh = kFiveBit ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ5_K&>(blk).qh))
                                : _mm256_setzero_si256();
    UNROLL for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
      __m512i v = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1),
                                   _mm512_set1_epi8(0x0f));
      if constexpr (kFiveBit) {
        const __mmask64 lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * c))));
        const __mmask64 hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1))));
        v = _mm512_mask_add_epi8(v, lo | hi << 32, v, _mm512_set1_epi8(16));
      }
      k.q[c] = v;
      k.sc[c] = two_scales(sc16, 2 * c, 2 * c + 1);
    }
    return k;
  }
  // Token side: dx * (bsum[2j] + bsum[2j+1]), the activation sum of sub-block j.
  static __m512 group_sums(const int16_t* bsums, float dx) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
    const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)));
    return _mm512_zextps256_ps512(_mm256_mul_ps(s, _mm256_set1_ps(dx)));
  }
};

struct Q6KDecode {
  static KRow row(const uint8_t* row_bytes, int64_t sb) {
    const BlockQ6_K& blk = reinterpret_cast<const BlockQ6_K*>(row_bytes)[sb];
    const __m512i low4 = _mm512_set1_epi8(0x0f), low2 = _mm512_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
    const __m512i sc16z = _mm512_castsi256_si512(sc16);
    KRow k;
    k.d = half_to_float(blk.d);
    k.fm = _mm512_mul_ps(_mm512_set1_ps(-32.f * k.d), _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(sc16)));
    UNROLL for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
      const __m512i qh01 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
      const __m512i qh23 = _mm512_srli_epi16(qh01, 4);
      // elements 0-63 of the half: low nibbles | bits (0-1, 2-3); 64-127: high nibbles | bits (4-5, 6-7)
      k.q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(_mm512_and_si512(qh01, low2), 4));
      k.q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                       _mm512_slli_epi16(_mm512_and_si512(qh23, low2), 4));
      k.sc[2 * h] = four_scales(sc16z, 8 * h);
      k.sc[2 * h + 1] = four_scales(sc16z, 8 * h + 4);
    }
    return k;
  }
  // Token side: dx * bsum[j] for the 16 groups.
  static __m512 group_sums(const int16_t* bsums, float dx) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(bs)), _mm512_set1_ps(dx));
  }
};

// Packed row tile: per super-block and row, the KRow fields in this order.
constexpr size_t kKPackBytes = 4 * 64 + 4 * 64 + 64 + 64;

template <class Dec>
struct KKernel {
  template <int R, int T, class Rows>
  static void run(const Rows& src, int64_t cols, const uint8_t* act, size_t stride, float* y, size_t ys, int64_t r) {
    const Layout layout = split::q8_k(cols);
    const int64_t nsb = cols / 256;
    Act x[T];
    UNROLL for (int t = 0; t < T; ++t) x[t] = split::view(act + t * stride, layout);
    __m512 acc[R][T];
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      __m512 groups[T];
      UNROLL for (int t = 0; t < T; ++t) groups[t] = Dec::group_sums(x[t].bsums + 16 * sb, x[t].d[sb]);
      UNROLL for (int i = 0; i < R; ++i) {
        const typename Rows::Ref k = src.get(i, sb);
        __m512i isum[T];
        UNROLL for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        UNROLL for (int c = 0; c < 4; ++c) {
          const __m512i q = Rows::quants(k, c);
          const __m512i sc = Rows::scales(k, c);
          UNROLL for (int t = 0; t < T; ++t) {
            const __m512i xq = _mm512_loadu_si512(x[t].q + 256 * sb + 64 * c);
            isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(q, xq), sc);
          }
        }
        const __m512 fm = Rows::mins(k);
        const float d = Rows::scale(k);
        UNROLL for (int t = 0; t < T; ++t) {
          acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d * x[t].d[sb]), acc[i][t]);
          acc[i][t] = _mm512_fmadd_ps(fm, groups[t], acc[i][t]);
        }
      }
    }
    UNROLL for (int i = 0; i < R; ++i)
      UNROLL for (int t = 0; t < T; ++t) y[t * ys + r + i] = _mm512_reduce_add_ps(acc[i][t]);
  }

  template <int R>
  struct Decoded {
    using Ref = KRow;
    const uint8_t* rows[R];
    KRow get(int i, int64_t sb) const { return Dec::row(rows[i], sb); }
    static __m512i quants(const KRow& k, int c) { return k.q[c]; }
    static __m512i scales(const KRow& k, int c) { return k.sc[c]; }
    static __m512 mins(const KRow& k) { return k.fm; }
    static float scale(const KRow& k) { return k.d; }
  };

  template <int R>
  struct Packed {
    using Ref = const uint8_t*;
    const uint8_t* buf;
    const uint8_t* get(int i, int64_t sb) const { return buf + (static_cast<size_t>(sb) * R + i) * kKPackBytes; }
    static __m512i quants(const uint8_t* e, int c) { return _mm512_loadu_si512(e + 64 * c); }
    static __m512i scales(const uint8_t* e, int c) { return _mm512_loadu_si512(e + 256 + 64 * c); }
    static __m512 mins(const uint8_t* e) { return _mm512_loadu_ps(e + 512); }
    static float scale(const uint8_t* e) {
      float d;
      std::memcpy(&d, e + 576, 4);
      return d;
    }
  };

  template <int R, int T>
  static void tile(const Matrix& w, int64_t r, const uint8_t* act, size_t stride, float* y, size_t ys) {
    Decoded<R> src;
    UNROLL for (int i = 0; i < R; ++i) src.rows[i] = row_ptr(w, r + i);
    run<R, T>(src, w.cols, act, stride, y, ys, r);
  }

  static size_t pack_bytes(int64_t cols, int R) { return static_cast<size_t>(cols / 256) * R * kKPackBytes; }

  template <int R>
  static void pack(const Matrix& w, int64_t r, uint8_t* buf) {
    for (int64_t sb = 0; sb < w.cols / 256; ++sb)
      UNROLL for (int i = 0; i < R; ++i) {
        const KRow k = Dec::row(row_ptr(w, r + i), sb);
        uint8_t* e = buf + (static_cast<size_t>(sb) * R + i) * kKPackBytes;
        UNROLL for (int c = 0; c < 4; ++c) {
          _mm512_storeu_si512(e + 64 * c, k.q[c]);
          _mm512_storeu_si512(e + 256 + 64 * c, k.sc[c]);
        }
        _mm512_storeu_ps(e + 512, k.fm);
        std::memcpy(e + 576, &k.d, 4);
      }
  }

  template <int R, int T>
  static void tile_packed(const Matrix& w, const uint8_t* buf, int64_t r, const uint8_t* act, size_t stride, float* y,
                          size_t ys) {
    run<R, T>(Packed<R>{buf}, w.cols, act, stride, y, ys, r);
  }
};

const TypeKernels kF32{nullptr, nullptr, gemm<FloatKernel<LoadF32>, 1, 4, 4>, nullptr};
const TypeKernels kF16{nullptr, nullptr, gemm<FloatKernel<LoadF16>, 1, 4, 4>, nullptr};
const TypeKernels kBF16{nullptr, nullptr, gemm<FloatKernel<LoadBF16>, 1, 4, 4>, nullptr};
const TypeKernels kQ8_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm_packed<Q8_0Kernel<DecQ8_0>, 1, 4, 4>, nullptr};
// Q4_0 matvec: the AVX2 kernel decodes nibbles more cheaply one block at a
// time (measured ~8% faster here); both read the same activation layout.
void gemm_q4_0(const Matrix& w, int64_t r0, int64_t r1, const void* act, size_t stride, int64_t n, float* y,
               size_t ys) {
  if (n == 1) avx2_kernels(DType::Q4_0)->gemm(w, r0, r1, act, stride, n, y, ys);
  else gemm_packed<Q8_0Kernel<DecQ4_0>, 1, 4, 4>(w, r0, r1, act, stride, n, y, ys);
}

const TypeKernels kQ4_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm_q4_0, nullptr};
const TypeKernels kQ5_0{split::bytes_q8_0, split::quantize_q8_0_avx2, gemm_packed<Q8_0Kernel<DecQ5_0>, 1, 4, 4>, nullptr};
const TypeKernels kQ4_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ4_1>, 1, 4, 4>, nullptr};
const TypeKernels kQ5_1{split::bytes_q8_1, split::quantize_q8_1_avx2, gemm<Q8_1Kernel<DecQ5_1>, 1, 4, 4>, nullptr};
const TypeKernels kQ4_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm_packed<KKernel<K4Decode<false>>, 1, 4, 4>, nullptr};
const TypeKernels kQ5_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm_packed<KKernel<K4Decode<true>>, 1, 4, 4>, nullptr};
const TypeKernels kQ6_K{split::bytes_q8_k, split::quantize_q8_k_avx2, gemm_packed<KKernel<Q6KDecode>, 1, 4, 4>, nullptr};

}  // namespace

// Row dequantization is not hot (one embedding row per token); the AVX2
// versions are used as they are.
TypeKernels with_avx2_dequantizer(TypeKernels k, DType type) {
  k.dequantize = avx2_dequantizer(type);
  return k;
}

const TypeKernels* avx512_kernels(DType type) {
  static const TypeKernels f32 = with_avx2_dequantizer(kF32, DType::F32), f16 = with_avx2_dequantizer(kF16, DType::F16),
                           bf16 = with_avx2_dequantizer(kBF16, DType::BF16), q8_0 = with_avx2_dequantizer(kQ8_0, DType::Q8_0),
                           q4_0 = with_avx2_dequantizer(kQ4_0, DType::Q4_0), q5_0 = with_avx2_dequantizer(kQ5_0, DType::Q5_0),
                           q4_1 = with_avx2_dequantizer(kQ4_1, DType::Q4_1), q5_1 = with_avx2_dequantizer(kQ5_1, DType::Q5_1),
                           q4_k = with_avx2_dequantizer(kQ4_K, DType::Q4_K), q5_k = with_avx2_dequantizer(kQ5_K, DType::Q5_K),
                           q6_k = with_avx2_dequantizer(kQ6_K, DType::Q6_K);
  switch (type) {
    case DType::F32: return &f32;
    case DType::F16: return &f16;
    case DType::BF16: return &bf16;
    case DType::Q8_0: return &q8_0;
    case DType::Q4_0: return &q4_0;
    case DType::Q5_0: return &q5_0;
    case DType::Q4_1: return &q4_1;
    case DType::Q5_1: return &q5_1;
    case DType::Q4_K: return &q4_k;
    case DType::Q5_K: return &q5_k;
    case DType::Q6_K: return &q6_k;
    default: return nullptr;
  }
}
}  // namespace flatline::kernels
