// Granite 4.0-H as llama.cpp reads it (src/models/granite-hybrid.cpp there):
// a layer is Mamba-2 iff its attention.head_count_kv entry is 0, attention
// otherwise (RoPE of type NORM only when rope.scaling.finetuned, which
// defaults to true; the released hybrids set it false and use none). Every
// block adds residual_scale * its output; the embeddings are multiplied by
// embedding_scale, q.k by attention.scale, the logits divided by
// logit_scale. FFNs are SwiGLU, or a mixture of experts (softmax gating,
// weights renormalised) with an optional shared expert.
#include "models/granite_hybrid.h"

#include "models/decoder.h"
#include "models/weights.h"

namespace flatline {

std::unique_ptr<Model> load_granite_hybrid(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  const std::string arch = "granitehybrid", k = arch + ".";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(*file, arch);
  c.n_embd = checked_size_key(*file, k + "embedding_length");
  c.n_ctx_train = checked_size_key(*file, k + "context_length", 0);
  c.norm_eps = static_cast<float>(file->get_float(k + "attention.layer_norm_rms_epsilon", 1e-5));
  c.n_vocab = file->tensor("token_embd.weight").rows();
  c.embedding_scale = static_cast<float>(file->get_float(k + "embedding_scale", 1.0));
  c.residual_scale = static_cast<float>(file->get_float(k + "residual_scale", 1.0));
  const double logit_scale = file->get_float(k + "logit_scale", 0.0);
  c.logit_divisor = logit_scale != 0.0 ? static_cast<float>(logit_scale) : 1.0f;
  if (c.embedding_scale == 0.0f) c.embedding_scale = 1.0f;
  if (c.residual_scale == 0.0f) c.residual_scale = 1.0f;

  const std::vector<int64_t> n_head = per_layer_ints(*file, k + "attention.head_count", n_layer);
  const std::vector<int64_t> n_head_kv = per_layer_ints(*file, k + "attention.head_count_kv", n_layer);
  const std::vector<int64_t> n_ff = per_layer_ints(*file, k + "feed_forward_length", n_layer);
  const int64_t head_dim = n_head[0] > 0 ? checked_size_key(*file, k + "attention.key_length", c.n_embd / n_head[0]) : 0;
  const bool rope = file->get_bool(k + "rope.scaling.finetuned", true);
  if (rope) {
    RopeSpec r;
    r.style = RopeStyle::Norm;
    r.n_rot = checked_size_key(*file, k + "rope.dimension_count", head_dim);
    r.base = file->get_float(k + "rope.freq_base", 10000.0);
    c.ropes.push_back(r);
  }
  const Mamba2Config mamba = read_mamba2_config(*file, arch);
  const MoeConfig moe = read_moe_config(*file, arch, MoeGating::Softmax, /*default_normalize=*/true);
  const int64_t n_ff_shared = checked_size_key(*file, k + "expert_shared_feed_forward_length", 0);
  const float attention_scale = static_cast<float>(file->get_float(k + "attention.scale", 0.0));
  for (int64_t l = 0; l < n_layer; ++l) {
    LayerSpec s;
    if (n_head_kv[l] == 0) {
      s.mixer = Mixer::Mamba2;
      s.mamba2 = mamba;
    } else {
      s.mixer = Mixer::Attention;
      s.attention.n_head = n_head[l];
      s.attention.n_head_kv = n_head_kv[l];
      s.attention.head_dim_k = s.attention.head_dim_v = head_dim;
      s.attention.scale = attention_scale;
      s.attention.rope = rope ? 0 : -1;
    }
    s.n_ff = n_ff[l];
    if (moe.n_expert > 0) {
      s.ffn = FfnKind::Moe;
      s.moe = moe;
      s.n_ff_shared = n_ff_shared;
    } else {
      s.ffn = FfnKind::Dense;
    }
    c.layers.push_back(s);
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
