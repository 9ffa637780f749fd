// Random-weight models with the real shapes of published checkpoints, for
// benchmarks and tests that must not depend on downloads. The weights are
// scaled so activations stay finite over long sequences; the text they
// produce is meaningless.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/dtype.h"

namespace flatline {

struct Rwkv7Shape {
  int64_t n_embd = 2560;
  int64_t n_layer = 32;
  int64_t n_vocab = 65536;
  int64_t n_ffn = 0;  // 0: 4 * n_embd
  int64_t head_size = 64;
  int64_t rank_decay = 96, rank_iclr = 96, rank_value = 64, rank_gate = 320;
};

// Presets named like the published RWKV-7 World / G1 sizes: 0.1b, 0.4b, 1.5b, 2.9b, 7.2b.
Rwkv7Shape rwkv7_preset(const std::string& name);  // throws Error for unknown names

// Writes a random rwkv7 GGUF: matrices in `type` (falling back to Q8_0/F16
// when a row length does not fit the block size), vectors in F32. The file
// carries a byte-level RWKV tokenizer padded to n_vocab.
void write_synthetic_rwkv7(const std::string& path, const Rwkv7Shape& shape, DType type, uint64_t seed);

}  // namespace flatline
