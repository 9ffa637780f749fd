// The split-layout sizes and the portable split-layout quantizers
// (split_act.h), compiled for every architecture.
#include "tensor/split_act.h"

#include <cstring>

#include "tensor/fp16.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"

namespace flatline::kernels::split {

size_t bytes_q8_0(int64_t cols) { return q8_0(cols).bytes; }
size_t bytes_q8_1(int64_t cols) { return q8_1(cols).bytes; }
size_t bytes_q8_k(int64_t cols) { return q8_k(cols).bytes; }

namespace {

uint8_t* at(void* base, size_t offset) { return static_cast<uint8_t*>(base) + offset; }

}  // namespace

void quantize_q8_0_portable(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_0(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(at(dst, l.d_off));
  for (int64_t b = 0; b < cols / blocks::kQK; ++b) {
    blocks::BlockQ8_0 blk;
    quantize_act_q8_0(x + blocks::kQK * b, blocks::kQK, &blk);
    std::memcpy(q + blocks::kQK * b, blk.qs, blocks::kQK);
    d[b] = fp16_to_fp32(blk.d);
  }
}

void quantize_q8_1_portable(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_1(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(at(dst, l.d_off));
  float* s = reinterpret_cast<float*>(at(dst, l.s_off));
  for (int64_t b = 0; b < cols / blocks::kQK; ++b) {
    blocks::BlockQ8_1 blk;
    quantize_act_q8_1(x + blocks::kQK * b, blocks::kQK, &blk);
    std::memcpy(q + blocks::kQK * b, blk.qs, blocks::kQK);
    d[b] = fp16_to_fp32(blk.d);
    s[b] = fp16_to_fp32(blk.s);
  }
}

void quantize_q8_k_portable(const float* x, int64_t cols, void* dst) {
  const Layout l = q8_k(cols);
  int8_t* q = static_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(at(dst, l.d_off));
  int16_t* bsums = reinterpret_cast<int16_t*>(at(dst, l.s_off));
  for (int64_t sb = 0; sb < cols / blocks::kQK_K; ++sb) {
    blocks::BlockQ8_K blk;
    quantize_act_q8_k(x + blocks::kQK_K * sb, blocks::kQK_K, &blk);
    std::memcpy(q + blocks::kQK_K * sb, blk.qs, blocks::kQK_K);
    d[sb] = blk.d;
    std::memcpy(bsums + 16 * sb, blk.bsums, sizeof blk.bsums);
  }
}

}  // namespace flatline::kernels::split
