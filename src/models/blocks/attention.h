// The attention block: q/k/v projections (optional biases, optional per-head
// QK RMSNorm), rotary embedding, K/V written into the conversation's KV part,
// softmax attention (causal with an optional sliding window, or
// bidirectional over the chunk), output projection.
#pragma once

#include <cstdint>
#include <vector>

#include "models/blocks/chunk.h"
#include "models/blocks/rope.h"
#include "tensor/kernels.h"

namespace flatline {

struct AttentionConfig {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t window = 0;    // 0: every earlier position; W: itself and the W - 1 before
  int rope = -1;         // index of the layer's RoPE among the model's; -1: none
  float scale = 0;       // multiplies q.k; 0 = 1 / sqrt(head_dim_k)
  bool qk_norm = false;
};

struct AttentionWeights {
  Matrix q, k, v, o;
  std::vector<float> bq, bk, bv, bo;  // empty when absent
  std::vector<float> q_norm, k_norm;  // [head_dim_k] when qk_norm
};

struct AttentionLayer {
  AttentionConfig config;
  AttentionWeights weights;
  const Rope* rope = nullptr;
};

// out[rows][n_embd] = attention of xn[rows][n_embd], under the mask's rules
// (models/model.h AttentionMask): causal rows append their K/V to their
// conversation's KV part; full-mask rows see all rows of their segment (and
// with `store_kv` also write their K/V into the state); cached rows rewrite
// their K/V inside the state and see every position it holds. `rope_cos` / `rope_sin` are the chunk's tables for layer.rope.
// `kv_layer` is the layer of the state's KV part this call reads and writes.
void attention_forward(const ChunkContext& ctx, const AttentionLayer& layer, int64_t kv_layer, AttentionMask mask,
                       float norm_eps, const float* rope_cos, const float* rope_sin, const float* xn, float* out);

// Scratch floats per row the block needs (for workspace estimates).
int64_t attention_floats_per_row(const AttentionConfig& c);

}  // namespace flatline
