// Nemotron-H as llama.cpp reads it (src/models/nemotron-h.cpp there): every
// block is x + mixer(rmsnorm(x)) with one mixer chosen by two per-layer
// arrays: Mamba-2 iff attention.head_count_kv and feed_forward_length are
// both 0, attention (no RoPE) iff only feed_forward_length is 0, otherwise a
// squared-ReLU MLP (down(relu(up x))^2), or, when the file has experts, a
// mixture of squared-ReLU experts with sigmoid gating, a selection bias
// (exp_probs_b), optional renormalisation and scale, optional latent
// projections, plus a shared squared-ReLU expert. The MTP draft head of
// Nemotron-3 files (layers past block_count) is not used.
#include "models/nemotron_h.h"

#include "models/decoder.h"
#include "models/weights.h"
#include "util/error.h"

namespace flatline {

namespace {

std::unique_ptr<Model> load(std::shared_ptr<const gguf::File> file, const LoadOptions& options, const std::string& arch) {
  const std::string k = arch + ".";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(*file, arch);
  c.n_embd = checked_size_key(*file, k + "embedding_length");
  c.n_ctx_train = checked_size_key(*file, k + "context_length", 0);
  c.norm_eps = static_cast<float>(
      file->get_float(k + "attention.layer_norm_rms_epsilon", file->get_float(k + "attention.layer_norm_epsilon", 1e-5)));
  c.n_vocab = file->tensor("token_embd.weight").rows();
  const std::vector<int64_t> n_head = per_layer_ints(*file, k + "attention.head_count", n_layer);
  const std::vector<int64_t> n_head_kv = per_layer_ints(*file, k + "attention.head_count_kv", n_layer);
  const std::vector<int64_t> n_ff = per_layer_ints(*file, k + "feed_forward_length", n_layer);
  const Mamba2Config mamba = read_mamba2_config(*file, arch);
  const MoeConfig moe = read_moe_config(*file, arch, MoeGating::Sigmoid, /*default_normalize=*/false);
  const std::vector<int64_t> n_used = file->has(k + "expert_used_count")
                                          ? per_layer_ints(*file, k + "expert_used_count", n_layer)
                                          : std::vector<int64_t>(n_layer, moe.n_used);
  const std::vector<int64_t> n_ff_expert = file->has(k + "expert_feed_forward_length")
                                               ? per_layer_ints(*file, k + "expert_feed_forward_length", n_layer)
                                               : std::vector<int64_t>(n_layer, 0);
  const int64_t n_ff_shared = checked_size_key(*file, k + "expert_shared_feed_forward_length", 0);
  const int64_t latent = checked_size_key(*file, k + "moe_latent_size", 0);
  const float attention_scale = static_cast<float>(file->get_float(k + "attention.scale", 0.0));
  for (int64_t l = 0; l < n_layer; ++l) {
    LayerSpec s;
    if (n_head_kv[l] == 0 && n_ff[l] == 0) {
      s.mixer = Mixer::Mamba2;
      s.mamba2 = mamba;
    } else if (n_ff[l] == 0) {
      s.mixer = Mixer::Attention;
      AttentionConfig& a = s.attention;
      a.n_head = n_head[l];
      a.n_head_kv = n_head_kv[l];
      if (a.n_head <= 0) throw Error(file->path() + ": layer " + std::to_string(l) + " is attention but has no heads");
      a.head_dim_k = checked_size_key(*file, k + "attention.key_length", c.n_embd / a.n_head);
      a.head_dim_v = checked_size_key(*file, k + "attention.value_length", a.head_dim_k);
      a.scale = attention_scale;
    } else {
      s.activation = Activation::Relu2;
      s.gated = false;
      if (moe.n_expert > 0) {
        s.ffn = FfnKind::Moe;
        s.moe = moe;
        s.moe.n_used = n_used[l];
        // Older files give only the total width: n_ff / n_used per expert.
        s.n_ff = n_ff_expert[l] > 0 ? n_ff_expert[l] : (n_used[l] > 0 ? n_ff[l] / n_used[l] : 0);
        s.n_ff_shared = n_ff_shared;
        s.moe_latent = latent;
      } else {
        s.ffn = FfnKind::Dense;
        s.n_ff = n_ff[l];
      }
    }
    c.layers.push_back(s);
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace

std::unique_ptr<Model> load_nemotron_h(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return load(std::move(file), options, "nemotron_h");
}

std::unique_ptr<Model> load_nemotron_h_moe(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return load(std::move(file), options, "nemotron_h_moe");
}

}  // namespace flatline
