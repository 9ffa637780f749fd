// Byte layouts of ggml's quantized block types, as stored in GGUF files.
// This header is the single truth for them: every kernel, quantizer and test
// reads blocks through these structs. Facts checked against ggml's
// ggml-common.h / ggml-quants.c (layouts only; the code here is ours).
//
// Conventions shared by all types:
//  - `d`, `m`, `dmin` fields marked "fp16" are IEEE half floats (uint16 bits),
//    little endian like everything else in GGUF.
//  - A row of n elements is n / kBlock consecutive blocks, no padding.
//
// Element order inside a block (the part that is easy to get wrong):
//  - Q4_0 / Q4_1: qs[j] holds element j in its low nibble and element j+16 in
//    its high nibble (j = 0..15).
//  - Q5_0 / Q5_1: as Q4, plus the 5th bit of element i in bit i of the
//    little-endian uint32 qh (i = 0..31).
//  - Q8_0 / Q8_1 / Q8_K: qs[i] is element i.
//  - Q4_K: 256 elements in 8 sub-blocks of 32 (scale + min each). qs is four
//    chunks of 32 bytes; chunk c holds sub-block 2c in the low nibbles and
//    sub-block 2c+1 in the high nibbles (element 64c + l low, 64c + 32 + l high).
//  - Q5_K: qs as Q4_K; the 5th bit of element 64c + l is bit 2c of qh[l], of
//    element 64c + 32 + l bit 2c+1 of qh[l] (l = 0..31).
//  - Q4_K / Q5_K scales[12]: eight 6-bit scales sc[j] and mins m[j]:
//      j < 4:  sc = scales[j] & 63,                 m = scales[j+4] & 63
//      j >= 4: sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
//              m  = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4
//    value = d * sc * q - dmin * m.
//  - Q6_K: 256 elements in two halves of 128; half h uses ql[64h..64h+63],
//    qh[32h..32h+31], scales[8h..8h+7]. Within a half, for l = 0..31:
//      element l      : low nibble of ql[l]      | bits 0-1 of qh[l] << 4
//      element l + 32 : low nibble of ql[l + 32] | bits 2-3 of qh[l] << 4
//      element l + 64 : high nibble of ql[l]     | bits 4-5 of qh[l] << 4
//      element l + 96 : high nibble of ql[l + 32]| bits 6-7 of qh[l] << 4
//    q is that 6-bit value - 32; sub-block of 16 elements e has scale
//    scales[e / 16] (signed int8); value = d * scale * q.
//
// Helpers are `static inline` (internal linkage) because ISA-specific files
// include this header: see split_act.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flatline::blocks {

constexpr int kQK = 32;    // elements of a Q4_0..Q8_1 block
constexpr int kQK_K = 256; // elements of a K-quant super-block

using half = uint16_t;  // IEEE binary16 bits
using bf16 = uint16_t;  // bfloat16 bits

struct BlockQ4_0 {
  half d;            // value = d * (q - 8)
  uint8_t qs[kQK / 2];
};

struct BlockQ4_1 {
  half d;            // value = d * q + m
  half m;
  uint8_t qs[kQK / 2];
};

struct BlockQ5_0 {
  half d;            // value = d * (q - 16)
  uint8_t qh[4];     // 5th bits, little-endian uint32
  uint8_t qs[kQK / 2];
};

struct BlockQ5_1 {
  half d;            // value = d * q + m
  half m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

struct BlockQ8_0 {
  half d;            // value = d * q
  int8_t qs[kQK];
};

// Activation format for Q4_1 / Q5_1 dot products.
struct BlockQ8_1 {
  half d;            // value = d * q
  half s;            // fp16(d * sum(qs)), d taken before rounding to fp16
  int8_t qs[kQK];
};

struct BlockQ4_K {
  half d;            // super-block scale of the 6-bit scales
  half dmin;         // super-block scale of the 6-bit mins
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};

struct BlockQ5_K {
  half d;
  half dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  half d;
};

// Activation format for K-quant dot products (never stored in files).
struct BlockQ8_K {
  float d;                     // value = d * q (a plain float, not fp16)
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];   // sum of each group of 16 quants
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ8_0) == 2 && alignof(BlockQ6_K) == 2);

// 6-bit scale and min j (0..7) of a Q4_K / Q5_K super-block.
static inline void k4_scale_min(int j, const uint8_t* scales, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// All eight scales and mins of a Q4_K / Q5_K super-block at once (the
// byte-parallel form of k4_scale_min): byte j of sc / m is scale / min j.
static inline void k4_unpack_scales(const uint8_t* scales, uint64_t& sc, uint64_t& m) {
  uint32_t a, b, c;  // bytes 0-3, 4-7, 8-11
  std::memcpy(&a, scales, 4);
  std::memcpy(&b, scales + 4, 4);
  std::memcpy(&c, scales + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3f, m_lo = b & 0x3f3f3f3f;
  const uint32_t sc_hi = (c & 0x0f0f0f0f) | ((a >> 6) & 0x03030303) << 4;
  const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0f) | ((b >> 6) & 0x03030303) << 4;
  sc = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
  m = m_lo | static_cast<uint64_t>(m_hi) << 32;
}

// Inverse of k4_scale_min: packs eight 6-bit scales and mins (each <= 63).
static inline void k4_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t* scales) {
  for (int j = 0; j < 12; ++j) scales[j] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = sc[j];
      scales[j + 4] = m[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((sc[j] & 0x0f) | ((m[j] & 0x0f) << 4));
      scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
}

}  // namespace flatline::blocks
