// The decoder-only transformer shared by the Llama and Gemma 3 families:
// pre-norm blocks of RoPE attention with a KV cache and a gated FFN. Each
// architecture file (llama.cpp, gemma3.cpp) reads its GGUF keys into a
// TransformerConfig; everything else (tensor checks, forward pass, states)
// lives here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace flatline {

enum class RopeStyle {
  Norm,  // llama.cpp rope type 0: rotates adjacent pairs (x[2i], x[2i+1])
  Neox,  // rotates x[i] with x[i + n_rot/2]
};

enum class FfnActivation { Silu, GeluTanh };  // gate activation of the gated FFN

struct TransformerLayerConfig {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t window = 0;       // 0: full causal attention; W: sees itself and the W - 1 previous tokens
  double rope_base = 10000.0;
  double rope_scale = 1.0;  // positions are multiplied by this (linear RoPE scaling = 1 / factor)
};

struct TransformerConfig {
  std::string arch;
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_ff = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t n_rot = 0;  // leading dims of each head that RoPE rotates
  int64_t n_ctx_train = 0;
  std::vector<TransformerLayerConfig> layers;
  float rms_eps = 1e-5f;
  RopeStyle rope_style = RopeStyle::Norm;
  FfnActivation activation = FfnActivation::Silu;
  float attention_scale = 0;        // multiplies q.k; 0 means 1/sqrt(head_dim_k)
  float embedding_scale = 1;        // multiplies the input embeddings
  float final_logit_softcap = 0;    // logits = c * tanh(logits / c) when > 0
  bool qk_norm = false;             // per-head RMSNorm of q and k (attn_q_norm, attn_k_norm)
  bool post_norms = false;          // RMSNorm of the attention and FFN outputs before the residual add
};

// Builds the model from a parsed config; checks every tensor's presence,
// shape and type against it (throws Error naming the tensor).
std::unique_ptr<Model> make_transformer(std::shared_ptr<const gguf::File> file, const LoadOptions& options,
                                        TransformerConfig config);

// Reads the keys every llama.cpp-style transformer shares (<arch>.block_count,
// embedding_length, feed_forward_length, attention.head_count(_kv),
// key/value_length, rope.*, layer_norm_rms_epsilon, context_length,
// attention.scale, final_logit_softcapping) and n_vocab from token_embd.
TransformerConfig read_base_config(const gguf::File& file, const std::string& arch);

// Reads an integer key that may be a scalar or a per-layer array.
std::vector<int64_t> per_layer_ints(const gguf::File& file, const std::string& key, int64_t n_layer);

// Wall time a transformer model spent in forward() since load (or the last
// reset), split into weight matmuls and attention; the rest is norms, RoPE,
// activations and KV writes. For benchmarks; throws Error for other models.
struct ForwardTimes {
  double total = 0, matmul = 0, attention = 0;  // seconds
  int64_t tokens = 0;
};
ForwardTimes forward_times(const Model& model, bool reset = false);

// Benchmarks only: makes `state` look as if n_tokens had been processed, with
// random keys and values, so decoding at depth can be timed without a long
// prompt. Throws Error if the state is not a transformer state or too small.
void fill_state_for_benchmark(ModelState& state, int64_t n_tokens, uint64_t seed);

}  // namespace flatline
