// The layer stack shared by every architecture that is a stack of pre-norm
// residual blocks: Llama, Gemma 3, Mamba, Mamba-2, the hybrids (Granite 4.0-H,
// Nemotron-H, Jamba), LLaDA and Dream. Each layer is one plan entry: a mixer
// (attention, Mamba-1, Mamba-2 or none) and a feed-forward part (dense, a
// mixture of experts, or none):
//   h = x + rs * post_norm(mixer(mixer_norm(x)))
//   x = h + rs * post_norm(ffn(ffn_norm(h)))
// An architecture file only reads its GGUF keys into a DecoderConfig; the
// tensors are read here under llama.cpp's standard names (blk.N.attn_q,
// blk.N.ssm_in, blk.N.ffn_up_exps, ...), shape-checked against the config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/blocks/attention.h"
#include "models/blocks/ffn.h"
#include "models/blocks/mamba.h"
#include "models/blocks/rope.h"
#include "models/model.h"

namespace flatline {

enum class Mixer { None, Attention, Mamba1, Mamba2 };
enum class FfnKind { None, Dense, Moe };

struct LayerSpec {
  Mixer mixer = Mixer::None;
  AttentionConfig attention;
  Mamba1Config mamba1;
  Mamba2Config mamba2;

  FfnKind ffn = FfnKind::None;
  Activation activation = Activation::Silu;
  int64_t n_ff = 0;            // Dense: hidden width; Moe: width of one expert
  bool gated = true;           // Dense / experts: a gate matrix (SwiGLU, GeGLU) or a plain up -> act -> down
  MoeConfig moe;
  int64_t n_ff_shared = 0;     // Moe: width of the shared expert (0 = none)
  int64_t moe_latent = 0;      // Moe: width the experts work in (0 = n_embd; latent_down / latent_up)
};

struct DecoderConfig {
  std::string arch;
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  float embedding_scale = 1.0f;  // multiplies the input embeddings
  float residual_scale = 1.0f;   // multiplies each block's output before the residual add (Granite)
  float logit_divisor = 1.0f;    // logits are divided by it (Granite's logit_scale)
  float final_softcap = 0.0f;    // logits = c * tanh(logits / c) when > 0
  bool post_norms = false;       // RMSNorm of mixer and FFN outputs (post_attention_norm, post_ffw_norm)
  bool causal = true;            // false: bidirectional attention, masked-diffusion generation
  std::vector<RopeSpec> ropes;
  std::vector<LayerSpec> layers;

  // Looped models (Ouro): the whole stack runs n_loops times over the same
  // weights; after each loop output_norm is applied and the next loop starts
  // from the normed state. Each (loop, attention layer) has its own KV slot,
  // unless kv_share_last. An exit gate sigmoid(w . h_t + b) decides per token
  // after which loop its output is taken (see LoopExit).
  int64_t n_loops = 1;
  std::vector<float> exit_gate_weight;  // [n_embd]; empty: no gate
  float exit_gate_bias = 0;
  LoopExit exit;
  bool kv_share_last = false;  // one KV slot per layer, holding the last computed loop's K/V
};

// Builds the model; checks every tensor against the config (throws Error
// naming the tensor).
std::unique_ptr<Model> make_decoder(std::shared_ptr<const gguf::File> file, const LoadOptions& options,
                                    DecoderConfig config);

// The keys every llama.cpp-style attention model shares (<arch>.block_count,
// embedding_length, feed_forward_length, attention.head_count(_kv),
// key/value_length, rope.*, layer_norm_rms_epsilon, context_length,
// attention.scale, final_logit_softcapping), read into attention layers with
// a dense gated FFN, and n_vocab from token_embd.
DecoderConfig read_transformer_config(const gguf::File& file, const std::string& arch);

// The SSM keys of llama.cpp's Mamba layouts (<arch>.ssm.conv_kernel,
// inner_size, state_size, time_step_rank, group_count).
Mamba1Config read_mamba1_config(const gguf::File& file, const std::string& arch);
Mamba2Config read_mamba2_config(const gguf::File& file, const std::string& arch);

// The mixture-of-experts keys (<arch>.expert_count, expert_used_count,
// expert_weights_norm, expert_weights_scale, expert_gating_func) with the
// defaults an architecture gives; n_expert 0 means no experts.
MoeConfig read_moe_config(const gguf::File& file, const std::string& arch, MoeGating default_gating,
                          bool default_normalize);

}  // namespace flatline
