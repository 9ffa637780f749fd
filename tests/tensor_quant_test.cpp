// Block layouts and quantizers. The known-value tests build blocks by hand
// from ggml's format description (byte offsets, nibble order, the 6-bit
// scale packing of Q4_K/Q5_K, Q6_K's ql/qh order) and check the values
// computed here by hand, not flatline's own output; quantize -> dequantize
// round trips are checked against error bounds derived from each format.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/split_act.h"
#include "tensor/thread_pool.h"
#include "tensor_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::IsaGuard;

// Dequantizes with every ISA and checks all agree with `expect`.
void expect_dequantized(DType type, const std::vector<uint8_t>& bytes, const std::vector<float>& expect) {
  IsaGuard guard;
  for (Isa isa : test::available_isas()) {
    set_active_isa(isa);
    std::vector<float> got(expect.size());
    dequantize_row(type, bytes.data(), got.data(), static_cast<int64_t>(expect.size()));
    for (size_t i = 0; i < expect.size(); ++i)
      ASSERT_FLOAT_EQ(got[i], expect[i]) << dtype_name(type) << " element " << i << " on " << isa_name(isa);
  }
}

// Checks matvec of a one-row matrix against dot(expect, x) for a one-hot x
// at a few positions: the dot kernels read the layout like dequantize does.
void expect_dots(DType type, const std::vector<uint8_t>& bytes, const std::vector<float>& expect) {
  IsaGuard guard;
  ThreadPool pool(1);
  const int64_t n = static_cast<int64_t>(expect.size());
  Matrix m{type, 1, n, bytes.data(), bytes.size()};
  for (Isa isa : test::available_isas()) {
    set_active_isa(isa);
    for (int64_t pos : {int64_t{0}, int64_t{5}, n / 2 + 3, n - 1}) {
      std::vector<float> x(static_cast<size_t>(n), 0.f);
      x[pos] = 1.0f;
      float y = 0;
      matvec(m, x.data(), &y, pool);
      // A lone 1.0 quantizes to 127 * fp16(1/127): exact up to ~2^-11.
      EXPECT_NEAR(y, expect[pos], 1e-3f * std::fabs(expect[pos]) + 1e-6f)
          << dtype_name(type) << " position " << pos << " on " << isa_name(isa);
    }
  }
}

void expect_layout(DType type, const std::vector<uint8_t>& bytes, const std::vector<float>& expect) {
  ASSERT_EQ(bytes.size(), row_bytes(type, static_cast<int64_t>(expect.size())));
  expect_dequantized(type, bytes, expect);
  expect_dots(type, bytes, expect);
}

TEST(TensorLayout, Q4_0) {
  // d = 0.5 (fp16 0x3800); qs[j] = j | (15 - j) << 4.
  std::vector<uint8_t> b = {0x00, 0x38};
  for (int j = 0; j < 16; ++j) b.push_back(static_cast<uint8_t>(j | (15 - j) << 4));
  std::vector<float> e(32);
  for (int j = 0; j < 16; ++j) {
    e[j] = 0.5f * (j - 8);            // low nibble -> element j
    e[j + 16] = 0.5f * ((15 - j) - 8);  // high nibble -> element j + 16
  }
  expect_layout(DType::Q4_0, b, e);
}

TEST(TensorLayout, Q4_1) {
  // d = 0.25 (0x3400), m = -1 (0xBC00): value = q / 4 - 1.
  std::vector<uint8_t> b = {0x00, 0x34, 0x00, 0xBC};
  for (int j = 0; j < 16; ++j) b.push_back(static_cast<uint8_t>((j * 3 % 16) | j << 4));
  std::vector<float> e(32);
  for (int j = 0; j < 16; ++j) {
    e[j] = 0.25f * (j * 3 % 16) - 1;
    e[j + 16] = 0.25f * j - 1;
  }
  expect_layout(DType::Q4_1, b, e);
}

TEST(TensorLayout, Q5_0) {
  // d = 1 (0x3C00); qh = 0x80000001 (little endian): 5th bit of elements 0
  // and 31; every qs byte 0x21: low nibble 1, high nibble 2.
  std::vector<uint8_t> b = {0x00, 0x3C, 0x01, 0x00, 0x00, 0x80};
  for (int j = 0; j < 16; ++j) b.push_back(0x21);
  std::vector<float> e(32);
  for (int j = 0; j < 16; ++j) e[j] = 1 - 16;
  for (int j = 16; j < 32; ++j) e[j] = 2 - 16;
  e[0] = (1 + 16) - 16;
  e[31] = (2 + 16) - 16;
  expect_layout(DType::Q5_0, b, e);
}

TEST(TensorLayout, Q5_1) {
  // d = 2 (0x4000), m = 1 (0x3C00); qh = 0x0000FF00 -> elements 8..15 get +16.
  std::vector<uint8_t> b = {0x00, 0x40, 0x00, 0x3C, 0x00, 0xFF, 0x00, 0x00};
  for (int j = 0; j < 16; ++j) b.push_back(static_cast<uint8_t>(j | 0xF0));
  std::vector<float> e(32);
  for (int j = 0; j < 16; ++j) {
    e[j] = 2.f * (j + (j >= 8 ? 16 : 0)) + 1;
    e[j + 16] = 2.f * 15 + 1;
  }
  expect_layout(DType::Q5_1, b, e);
}

TEST(TensorLayout, Q8_0) {
  // Two blocks: d = 0.125 (0x3000) with qs[i] = i - 16, d = -2 (0xC000) with qs[i] = 127 - 8i.
  std::vector<uint8_t> b = {0x00, 0x30};
  for (int i = 0; i < 32; ++i) b.push_back(static_cast<uint8_t>(static_cast<int8_t>(i - 16)));
  b.push_back(0x00);
  b.push_back(0xC0);
  for (int i = 0; i < 32; ++i) b.push_back(static_cast<uint8_t>(static_cast<int8_t>(127 - 8 * i)));
  std::vector<float> e(64);
  for (int i = 0; i < 32; ++i) {
    e[i] = 0.125f * (i - 16);
    e[32 + i] = -2.f * static_cast<int8_t>(127 - 8 * i);
  }
  expect_layout(DType::Q8_0, b, e);
}

// Q4_K / Q5_K: the 12 scale bytes below encode, by ggml's 6-bit packing,
//   sc = {1, 2, 3, 4, 17, 33, 50, 63},  m = {0, 5, 10, 63, 20, 40, 16, 1}
// (bytes 0-3: sc[0..3] | (sc[4..7] >> 4) << 6; bytes 4-7: m[0..3] |
// (m[4..7] >> 4) << 6; bytes 8-11: (sc[4..7] & 15) | (m[4..7] & 15) << 4),
// worked out by hand.
const uint8_t kKScales[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x85, 0x4A, 0x3F, 0x41, 0x81, 0x02, 0x1F};
const int kKSc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
const int kKMin[8] = {0, 5, 10, 63, 20, 40, 16, 1};

TEST(TensorLayout, Q4_K) {
  // d = 1 (0x3C00), dmin = 0.5 (0x3800); qs[32c + l] = (l & 15) | (15 - (l & 15)) << 4.
  std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0x38};
  b.insert(b.end(), kKScales, kKScales + 12);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>((l & 15) | (15 - (l & 15)) << 4));
  std::vector<float> e(256);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      // chunk c: low nibbles are sub-block 2c (elements 64c + l), high
      // nibbles sub-block 2c + 1 (elements 64c + 32 + l).
      e[64 * c + l] = 1.f * kKSc[2 * c] * (l & 15) - 0.5f * kKMin[2 * c];
      e[64 * c + 32 + l] = 1.f * kKSc[2 * c + 1] * (15 - (l & 15)) - 0.5f * kKMin[2 * c + 1];
    }
  expect_layout(DType::Q4_K, b, e);
}

TEST(TensorLayout, Q5_K) {
  // d = 0.5 (0x3800), dmin = 0.25 (0x3400); qh[l] = 0xA5 for even l, 0x5A
  // for odd l; qs[32c + l] = l & 15 (low) | 3 << 4 (high).
  std::vector<uint8_t> b = {0x00, 0x38, 0x00, 0x34};
  b.insert(b.end(), kKScales, kKScales + 12);
  for (int l = 0; l < 32; ++l) b.push_back(l % 2 == 0 ? 0xA5 : 0x5A);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>((l & 15) | 3 << 4));
  std::vector<float> e(256);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int qh = l % 2 == 0 ? 0xA5 : 0x5A;
      // 5th bit of element 64c + l is bit 2c of qh[l]; of 64c + 32 + l bit 2c + 1.
      const int lo = (l & 15) + (((qh >> (2 * c)) & 1) ? 16 : 0);
      const int hi = 3 + (((qh >> (2 * c + 1)) & 1) ? 16 : 0);
      e[64 * c + l] = 0.5f * kKSc[2 * c] * lo - 0.25f * kKMin[2 * c];
      e[64 * c + 32 + l] = 0.5f * kKSc[2 * c + 1] * hi - 0.25f * kKMin[2 * c + 1];
    }
  expect_layout(DType::Q5_K, b, e);
}

TEST(TensorLayout, Q6_K) {
  // ql[128] | qh[64] | scales[16] | d. All quant bits zero (q = 0 - 32)
  // except the bytes set below; scales[i] = i - 8, but scales[15] = -128;
  // d = 0.5 (0x3800).
  std::vector<uint8_t> b(210, 0);
  b[0] = 0x21;        // ql[0]: element 0 low nibble 1, element 64 low nibble 2
  b[32 + 5] = 0x43;   // ql[37]: element 37 low nibble 3, element 101 low nibble 4
  b[128 + 5] = 0xE4;  // qh[5]: element 5 bits 00, 37 bits 01, 69 bits 10, 101 bits 11
  b[64] = 0x0F;       // ql[64]: second half, element 128 low nibble 15
  b[128 + 32] = 0x03; // qh[32]: second half, element 128 high bits 11
  b[128 + 31] = 0x80; // qh[31]: element 127 (bits 6-7 of qh[31]) high bits 10
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 8));
  b[192 + 15] = 0x80;
  b[208] = 0x00;
  b[209] = 0x38;
  auto scale = [](int e) { return e / 16 == 15 ? -128 : e / 16 - 8; };
  std::vector<float> e(256);
  for (int i = 0; i < 256; ++i) e[i] = 0.5f * scale(i) * (0 - 32);
  e[0] = 0.5f * scale(0) * (1 - 32);
  e[64] = 0.5f * scale(64) * (2 - 32);
  e[37] = 0.5f * scale(37) * ((3 | 1 << 4) - 32);
  e[69] = 0.5f * scale(69) * ((0 | 2 << 4) - 32);
  e[101] = 0.5f * scale(101) * ((4 | 3 << 4) - 32);
  e[128] = 0.5f * scale(128) * ((15 | 3 << 4) - 32);
  e[127] = 0.5f * scale(127) * ((0 | 2 << 4) - 32);
  expect_layout(DType::Q6_K, b, e);
}

TEST(TensorLayout, F16AndBF16) {
  std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0xFF, 0x7B};  // 1, -2, 2^-24, 65504
  expect_dequantized(DType::F16, f16, {1.f, -2.f, std::ldexp(1.f, -24), 65504.f});
  std::vector<uint8_t> bf = {0x80, 0x3F, 0x40, 0xC0, 0x49, 0x40};  // 1, -3, 3.140625
  expect_dequantized(DType::BF16, bf, {1.f, -3.f, 3.140625f});
}

// ---- quantizers ------------------------------------------------------------------

TEST(TensorQuantize, Q8_0ReferenceRoundsHalfAwayFromZero) {
  // amax = 127 -> d = 1, id = 1: 2.5 -> 3 and -3.5 -> -4 (roundf), unlike
  // the activation quantizer which rounds ties to even.
  std::vector<float> x(32, 0.f);
  x[0] = 127.f;
  x[1] = 2.5f;
  x[2] = -3.5f;
  x[3] = 0.5f;
  std::vector<uint8_t> q(34);
  quantize_row(DType::Q8_0, x.data(), q.data(), 32);
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[1], 0x3C);  // d = 1.0
  EXPECT_EQ(static_cast<int8_t>(q[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(q[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(q[4]), -4);
  EXPECT_EQ(static_cast<int8_t>(q[5]), 1);
}

TEST(TensorQuantize, Q4_0ScaleComesFromSignedMaximum) {
  // max magnitude element is -4 -> d = -4 / -8 = 0.5; q = trunc(x / d + 8.5)
  // capped at 15: -4 -> 0, 4 -> 16 -> 15, 1 -> 10, 0 -> 8.
  std::vector<float> x(32, 0.f);
  x[0] = -4.f;
  x[1] = 4.f;
  x[16] = 1.f;
  std::vector<uint8_t> q(18);
  quantize_row(DType::Q4_0, x.data(), q.data(), 32);
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[1], 0x38);                           // 0.5
  EXPECT_EQ(q[2], static_cast<uint8_t>(0 | 10 << 4));  // element 0 low, element 16 high
  EXPECT_EQ(q[3], static_cast<uint8_t>(15 | 8 << 4));
  EXPECT_EQ(q[4], static_cast<uint8_t>(8 | 8 << 4));
}

TEST(TensorQuantize, Q4_1UsesMinAndRange) {
  // min = -1, max = 2 -> d = 3/15 = 0.2, m = -1; q = trunc((x + 1) / 0.2 + 0.5).
  std::vector<float> x(32, 0.5f);
  x[0] = -1.f;
  x[1] = 2.f;
  std::vector<uint8_t> q(20);
  quantize_row(DType::Q4_1, x.data(), q.data(), 32);
  EXPECT_EQ(fp16_to_fp32(static_cast<uint16_t>(q[0] | q[1] << 8)), fp16_to_fp32(fp32_to_fp16(0.2f)));
  EXPECT_EQ(fp16_to_fp32(static_cast<uint16_t>(q[2] | q[3] << 8)), -1.f);
  EXPECT_EQ(q[4] & 0x0f, 0);    // -1
  EXPECT_EQ(q[5] & 0x0f, 15);   // 2
  EXPECT_EQ(q[6] & 0x0f, 8);    // 0.5: 1.5 / 0.2 = 7.5 (+0.5 -> 8)
}

struct Bound {
  DType type;
  double max_rel_rmse;  // RMS error / RMS of the data, for N(0, 1) data
};

// Error bounds from each format's step size for N(0,1) data: a uniform
// rounding error of step/sqrt(12), with step = block range / levels, plus
// headroom for the 6-bit scale rounding of K-quants and fp16 scales.
TEST(TensorQuantize, RoundTripErrorWithinFormatBounds) {
  std::mt19937 rng(17);
  const int64_t n = 256 * 16;
  std::vector<float> x = test::random_floats(n, rng);
  double rms = 0;
  for (float v : x) rms += double(v) * v;
  rms = std::sqrt(rms / n);
  // step ~ 2*2.1/levels for 32-element blocks (E max|x| ~ 2.1 sigma).
  const std::vector<Bound> bounds = {
      {DType::Q8_0, 1.5 * (4.2 / 255) / std::sqrt(12.0)}, {DType::Q4_0, 1.5 * (4.2 / 15) / std::sqrt(12.0)},
      {DType::Q4_1, 1.5 * (4.2 / 15) / std::sqrt(12.0)},  {DType::Q5_0, 1.5 * (4.2 / 31) / std::sqrt(12.0)},
      {DType::Q5_1, 1.5 * (4.2 / 31) / std::sqrt(12.0)},  {DType::Q4_K, 1.5 * (4.2 / 15) / std::sqrt(12.0)},
      {DType::Q5_K, 1.5 * (4.2 / 31) / std::sqrt(12.0)},  {DType::Q6_K, 1.5 * (4.0 / 63) / std::sqrt(12.0)},
      {DType::F16, 1e-3},                                 {DType::BF16, 4e-3},
  };
  for (const Bound& b : bounds) {
    std::vector<uint8_t> q(row_bytes(b.type, n));
    quantize_row(b.type, x.data(), q.data(), n);
    std::vector<float> back(n);
    dequantize_row(b.type, q.data(), back.data(), n);
    double err = 0;
    for (int64_t i = 0; i < n; ++i) err += (double(back[i]) - x[i]) * (double(back[i]) - x[i]);
    const double rel = std::sqrt(err / n) / rms;
    EXPECT_LT(rel, b.max_rel_rmse) << dtype_name(b.type);
    EXPECT_GT(rel, 0.0) << dtype_name(b.type) << " round trip was exact: suspicious";
  }
}

TEST(TensorQuantize, PerElementErrorOfBlockFormats) {
  // Q8_0: |err| <= d/2 plus fp16 rounding of d (127 * d * 2^-11).
  // Q4_0 / Q5_0: one step at most (the clamp of the extreme opposite value).
  std::mt19937 rng(19);
  const int64_t n = 32 * 64;
  std::vector<float> x = test::random_floats(n, rng, 3.0f);
  for (DType type : {DType::Q8_0, DType::Q4_0, DType::Q5_0}) {
    std::vector<uint8_t> q(row_bytes(type, n));
    quantize_row(type, x.data(), q.data(), n);
    std::vector<float> back(n);
    dequantize_row(type, q.data(), back.data(), n);
    const int levels = type == DType::Q8_0 ? 127 : type == DType::Q4_0 ? 8 : 16;
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
      const float step = amax / levels;
      const float bound = type == DType::Q8_0 ? 0.5f * step + 127 * step / 2048 : 1.01f * step;
      for (int j = 0; j < 32; ++j)
        ASSERT_LE(std::fabs(back[32 * b + j] - x[32 * b + j]), bound) << dtype_name(type) << " element " << 32 * b + j;
    }
  }
}

TEST(TensorQuantize, AllZeroBlocksStayZero) {
  for (DType type : test::computable_types()) {
    const int64_t n = 256;
    std::vector<float> x(n, 0.f), back(n, 1.f);
    std::vector<uint8_t> q(row_bytes(type, n), 0xCD);
    quantize_row(type, x.data(), q.data(), n);
    dequantize_row(type, q.data(), back.data(), n);
    for (float v : back) ASSERT_EQ(v, 0.f) << dtype_name(type);
  }
}

TEST(TensorQuantize, RejectsBadInput) {
  std::vector<float> x(256, 1.f);
  std::vector<uint8_t> q(1024);
  EXPECT_FALSE(can_quantize(DType::Q2_K));
  EXPECT_THROW(quantize_row(DType::Q2_K, x.data(), q.data(), 256), Error);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 255), Error);
  x[7] = std::nanf("");
  EXPECT_THROW(quantize_row(DType::Q8_0, x.data(), q.data(), 32), Error);
  x[7] = INFINITY;
  try {
    quantize_row(DType::Q6_K, x.data(), q.data(), 256);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("element 7"), std::string::npos) << e.what();
  }
}

// ---- activation quantizers (what the integer dots multiply with) -----------------

TEST(TensorActivations, Q8_0RoundsHalfToEvenLikeGgmlX86) {
  std::vector<float> x(32, 0.f);
  x[0] = -127.f;  // amax 127 -> multiplier 127/127 = 1
  x[1] = 2.5f;
  x[2] = -3.5f;
  x[3] = 0.5f;
  x[4] = 1.5f;
  blocks::BlockQ8_0 b;
  kernels::quantize_act_q8_0(x.data(), 32, &b);
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], -4);
  EXPECT_EQ(b.qs[3], 0);
  EXPECT_EQ(b.qs[4], 2);
}

TEST(TensorActivations, Q8_1CarriesScaledSum) {
  std::vector<float> x(32, 0.f);
  x[0] = 254.f;  // d = 2, multiplier 0.5
  x[5] = 5.f;    // 2.5 -> 2
  x[6] = -7.f;   // -3.5 -> -4
  blocks::BlockQ8_1 b;
  kernels::quantize_act_q8_1(x.data(), 32, &b);
  EXPECT_EQ(fp16_to_fp32(b.d), 2.f);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[5], 2);
  EXPECT_EQ(b.qs[6], -4);
  EXPECT_EQ(fp16_to_fp32(b.s), 2.f * (127 + 2 - 4));
}

TEST(TensorActivations, Q8_KUsesSignedMaximumAndGroupSums) {
  std::vector<float> x(256, 0.f);
  x[3] = -254.f;  // largest magnitude, negative: iscale = -127 / -254 = 0.5
  x[4] = 254.f;   // same magnitude later: does not change the sign choice
  x[20] = 5.f;    // 2.5 -> 2 (ties to even)
  x[21] = 3.f;    // 1.5 -> 2
  x[255] = -1.f;  // -0.5 -> -0
  blocks::BlockQ8_K b;
  kernels::quantize_act_q8_k(x.data(), 256, &b);
  EXPECT_EQ(b.d, 2.f);
  EXPECT_EQ(b.qs[3], -127);
  EXPECT_EQ(b.qs[4], 127);
  EXPECT_EQ(b.qs[20], 2);
  EXPECT_EQ(b.qs[21], 2);
  EXPECT_EQ(b.qs[255], 0);
  EXPECT_EQ(b.bsums[0], 0);
  EXPECT_EQ(b.bsums[1], 4);
  for (int g = 2; g < 16; ++g) EXPECT_EQ(b.bsums[g], 0);

  x[3] = 254.f;  // now the first largest is positive: iscale = -0.5
  kernels::quantize_act_q8_k(x.data(), 256, &b);
  EXPECT_EQ(b.d, -2.f);
  EXPECT_EQ(b.qs[3], -127);
  EXPECT_EQ(b.qs[20], -2);
}

// The SIMD kernels quantize into their own split layout; the numbers must be
// the ones of the scalar (ggml-layout) quantizers, bit for bit.
struct SplitQuantizers {
  const char* name;
  Isa needs;
  kernels::QuantizeActFn q8_0, q8_1, q8_k;
};

const SplitQuantizers kSplitQuantizers[] = {
#if FLATLINE_ARCH_X86
    {"avx2", Isa::Avx2, kernels::split::quantize_q8_0_avx2, kernels::split::quantize_q8_1_avx2,
     kernels::split::quantize_q8_k_avx2},
#endif
    {"portable", Isa::Scalar, kernels::split::quantize_q8_0_portable, kernels::split::quantize_q8_1_portable,
     kernels::split::quantize_q8_k_portable},
};

void split_quantizers_match_scalar(const SplitQuantizers& quantizers) {
  std::mt19937 rng(23);
  const int64_t n = 256 * 5;
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<float> x = test::random_floats(n, rng, trial == 3 ? 1e-3f : 2.0f);
    for (int64_t i = 0; i < n; i += 97) x[i] = std::round(x[i] * 4) / 4;  // exact ties after scaling happen too
    std::fill(x.begin() + 256, x.begin() + 512, 0.f);                      // an all-zero super-block
    {
      std::vector<blocks::BlockQ8_0> ref(n / 32);
      kernels::quantize_act_q8_0(x.data(), n, ref.data());
      std::vector<uint8_t> buf(kernels::split::bytes_q8_0(n));
      quantizers.q8_0(x.data(), n, buf.data());
      const auto act = kernels::split::view(buf.data(), kernels::split::q8_0(n));
      for (int64_t b = 0; b < n / 32; ++b) {
        ASSERT_EQ(act.d[b], fp16_to_fp32(ref[b].d)) << "block " << b;
        for (int j = 0; j < 32; ++j) ASSERT_EQ(act.q[32 * b + j], ref[b].qs[j]) << "block " << b << " quant " << j;
      }
    }
    {
      std::vector<blocks::BlockQ8_1> ref(n / 32);
      kernels::quantize_act_q8_1(x.data(), n, ref.data());
      std::vector<uint8_t> buf(kernels::split::bytes_q8_1(n));
      quantizers.q8_1(x.data(), n, buf.data());
      const auto act = kernels::split::view(buf.data(), kernels::split::q8_1(n));
      for (int64_t b = 0; b < n / 32; ++b) {
        ASSERT_EQ(act.d[b], fp16_to_fp32(ref[b].d));
        ASSERT_EQ(act.s[b], fp16_to_fp32(ref[b].s));
        for (int j = 0; j < 32; ++j) ASSERT_EQ(act.q[32 * b + j], ref[b].qs[j]);
      }
    }
    {
      std::vector<blocks::BlockQ8_K> ref(n / 256);
      kernels::quantize_act_q8_k(x.data(), n, ref.data());
      std::vector<uint8_t> buf(kernels::split::bytes_q8_k(n));
      quantizers.q8_k(x.data(), n, buf.data());
      const auto act = kernels::split::view(buf.data(), kernels::split::q8_k(n));
      for (int64_t b = 0; b < n / 256; ++b) {
        ASSERT_EQ(act.d[b], ref[b].d) << "super-block " << b;
        for (int j = 0; j < 256; ++j) ASSERT_EQ(act.q[256 * b + j], ref[b].qs[j]);
        for (int g = 0; g < 16; ++g) ASSERT_EQ(act.bsums[16 * b + g], ref[b].bsums[g]);
      }
    }
  }
}

TEST(TensorActivations, SplitLayoutQuantizersMatchScalar) {
  for (const SplitQuantizers& quantizers : kSplitQuantizers) {
    SCOPED_TRACE(quantizers.name);
    if (isa_includes(detected_isa(), quantizers.needs)) split_quantizers_match_scalar(quantizers);
  }
}


}  // namespace
}  // namespace flatline
