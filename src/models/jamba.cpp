// Jamba as llama.cpp reads it (src/models/jamba.cpp there): a layer is
// Mamba-1 iff its attention.head_count_kv entry is 0 (with RMSNorms on dt,
// B and C when the file has ssm_dt_norm / ssm_b_norm / ssm_c_norm),
// attention without RoPE otherwise; each block has a SwiGLU FFN, or a
// mixture of experts where the layer has a router (ffn_gate_inp): softmax
// over all experts, top-k, weights not renormalised.
#include "models/jamba.h"

#include "models/decoder.h"
#include "models/weights.h"
#include "util/error.h"

namespace flatline {

std::unique_ptr<Model> load_jamba(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  const std::string arch = "jamba", k = arch + ".";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(*file, arch);
  c.n_embd = checked_size_key(*file, k + "embedding_length");
  c.n_ctx_train = checked_size_key(*file, k + "context_length", 0);
  c.norm_eps = static_cast<float>(file->get_float(k + "attention.layer_norm_rms_epsilon", 1e-6));
  c.n_vocab = file->tensor("token_embd.weight").rows();
  const std::vector<int64_t> n_head = per_layer_ints(*file, k + "attention.head_count", n_layer);
  const std::vector<int64_t> n_head_kv = per_layer_ints(*file, k + "attention.head_count_kv", n_layer);
  const std::vector<int64_t> n_ff = per_layer_ints(*file, k + "feed_forward_length", n_layer);
  Mamba1Config mamba = read_mamba1_config(*file, arch);
  const MoeConfig moe = read_moe_config(*file, arch, MoeGating::Softmax, /*default_normalize=*/false);
  for (int64_t l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerSpec s;
    if (n_head_kv[l] == 0) {
      s.mixer = Mixer::Mamba1;
      s.mamba1 = mamba;
      s.mamba1.dt_bc_norm = mamba.dt_bc_norm || file->find_tensor(p + "ssm_dt_norm.weight") != nullptr;
    } else {
      s.mixer = Mixer::Attention;
      AttentionConfig& a = s.attention;
      a.n_head = n_head[l];
      a.n_head_kv = n_head_kv[l];
      if (a.n_head <= 0) throw Error(file->path() + ": layer " + std::to_string(l) + " is attention but has no heads");
      a.head_dim_k = a.head_dim_v = checked_size_key(*file, k + "attention.key_length", c.n_embd / a.n_head);
    }
    s.n_ff = n_ff[l];
    if (file->find_tensor(p + "ffn_gate_inp.weight")) {
      if (moe.n_expert == 0) throw Error(file->path() + ": " + p + "ffn_gate_inp.weight is present but jamba.expert_count is not");
      s.ffn = FfnKind::Moe;
      s.moe = moe;
    } else {
      s.ffn = FfnKind::Dense;
    }
    c.layers.push_back(s);
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
