// Feed-forward blocks: the dense FFN (gated: down(act(gate x) * up x), as
// SwiGLU / GeGLU; or plain: down(act(up x)), e.g. Nemotron-H's squared
// ReLU), and the mixture of experts: a router picks n_used of n_expert
// expert FFNs per token (softmax or sigmoid gating, optional selection bias,
// optional renormalisation and scale), plus an optional always-on shared
// expert. Only the chosen experts are computed: rows are grouped by expert
// and each expert runs once over its rows.
#pragma once

#include <cstdint>
#include <vector>

#include "models/blocks/chunk.h"
#include "models/weights.h"

namespace flatline {

enum class Activation { Silu, GeluTanh, Relu2 };

struct FfnWeights {
  Matrix gate, up, down;  // gate.data == nullptr: plain FFN
  std::vector<float> b_gate, b_up, b_down;
  bool present() const { return up.data != nullptr; }
};

enum class MoeGating { Softmax, Sigmoid };

struct MoeConfig {
  int64_t n_expert = 0;
  int64_t n_used = 0;
  MoeGating gating = MoeGating::Softmax;
  bool normalize = false;  // selected weights divided by their sum
  float scale = 1.0f;      // selected weights multiplied by this
};

struct MoeWeights {
  Matrix router;                        // {n_embd, n_expert}
  std::vector<float> selection_bias;    // added to the probabilities for choosing only (exp_probs_b)
  ExpertMatrices gate, up, down;        // gate.all.data == nullptr: plain expert FFNs
  FfnWeights shared;                    // shared expert, when present
  // Nemotron-3 style latent experts: they work on latent_down(x) and their
  // weighted sum is brought back by latent_up (both absent: no latent).
  Matrix latent_down, latent_up;
};

// out[rows][n_embd] = FFN(xn).
void ffn_forward(const ChunkContext& ctx, const FfnWeights& w, Activation act, const float* xn, float* out);
void moe_forward(const ChunkContext& ctx, const MoeConfig& c, const MoeWeights& w, Activation act, const float* xn,
                 float* out);

// Applies the activation to n values; with a gate, g = act(g) * up.
void activate(Activation act, float* g, const float* up, int64_t n, ThreadPool& pool);

}  // namespace flatline
