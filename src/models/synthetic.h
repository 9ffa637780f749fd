// The one random-weight GGUF writer: models of any supported architecture,
// in llama.cpp's layout, for benchmarks (real shapes, `flatline synth`) and
// tests (tiny shapes). The weights are scaled so activations stay finite
// over long sequences; the text they produce is meaningless.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace flatline {

struct SyntheticModel {
  std::string arch = "rwkv7";  // rwkv7, llama, gemma3, mamba, mamba2, granitehybrid, nemotron_h, nemotron_h_moe, jamba
  std::string name;            // general.name ("" = derived from the shape)
  int64_t n_embd = 2560;
  int64_t n_layer = 32;
  int64_t n_vocab = 65536;
  int64_t n_ff = 0;            // 0: 4 * n_embd
  // Attention models.
  int64_t n_head = 8, n_head_kv = 8, head_dim = 0;  // head_dim 0: n_embd / n_head
  int64_t n_ctx_train = 4096;
  double rope_base = 10000.0;
  double rope_factor = 0;      // linear RoPE scaling factor (0 = none)
  bool rope_freqs = false;     // write a rope_freqs tensor (Llama-3 style scaling)
  int64_t window = 0;          // gemma3: sliding window (0 = none)
  double rope_base_swa = 10000.0;
  std::vector<int32_t> window_pattern;  // gemma3: per-layer flags (empty: llama.cpp's period 6)
  float attention_scale = 0;
  float softcap = 0;
  bool tied_output = false;
  bool biases = false;         // attention and FFN biases
  // RWKV-7.
  int64_t head_size = 64;
  int64_t rank_decay = 96, rank_iclr = 96, rank_value = 64, rank_gate = 320;
  // Mamba / Mamba-2.
  int64_t d_inner = 0;         // 0: 2 * n_embd
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t dt_rank = 0;         // mamba: 0 = ceil(n_embd / 16)
  int64_t ssm_head_dim = 64;   // mamba2
  int64_t n_group = 1;         // mamba2
  // Hybrids: one letter per layer, M = Mamba (Mamba-2; Mamba-1 for jamba),
  // A = attention, F = feed-forward only (nemotron_h). "" = every 4th layer attention.
  std::string layer_pattern;
  std::string moe_pattern;     // jamba: '1' where the layer's FFN is a mixture of experts ("" = every other)
  int64_t n_expert = 0, n_expert_used = 0, n_ff_shared = 0, moe_latent = 0;
  float embedding_scale = 0, residual_scale = 0, logit_scale = 0;  // granitehybrid (0 = key absent)
  bool hybrid_rope = false;
  int64_t n_loops = 4;         // ouro: loops of the stack (ouro.num_loops)
  float exit_threshold = 1.0f; // ouro: ouro.early_exit_threshold    // granitehybrid: rope.scaling.finetuned true (attention layers use RoPE)
  // Vocabulary: the 256 byte tokens of a byte-level RWKV tokenizer padded to
  // n_vocab, or (printable) one token per printable ASCII character and "\n".
  bool printable_vocab = false;
  std::string chat_template;   // "" = none
  DType type = DType::F32;     // matrices (rows that do not fit the block size fall back to Q8_0, F16, F32)
  uint64_t seed = 1;
};

// Shapes named like published checkpoints: rwkv7 0.1b 0.4b 1.5b 2.9b 7.2b;
// llama 1b 3b (Llama 3.2); gemma3 1b 4b; mamba 2.8b; mamba2 1.3b 2.7b;
// ouro 1.4b 2.6b; granitehybrid micro (Granite-4.0-H-Micro, ~3B dense) tiny (Granite-4.0-H-Tiny,
// ~7B MoE, ~1B active); nemotron_h 9b; jamba mini-like "1.5b".
// Throws Error for unknown names.
SyntheticModel synthetic_preset(const std::string& arch, const std::string& preset);

// Writes the model (tensor by tensor: memory stays small for large shapes).
void write_synthetic_model(const std::string& path, const SyntheticModel& model);

}  // namespace flatline
