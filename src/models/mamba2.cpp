// Mamba-2 as llama.cpp reads it (src/models/mamba2.cpp there): every layer is
// x + mixer(rmsnorm(x)) with the Mamba-2 mixer (models/blocks/mamba.h): a
// scalar decay per head (ssm_a = -exp(A_log), one per head), B and C shared
// by the heads of a group, and the grouped RMSNorm of y * silu(z) before
// ssm_out. ssm.time_step_rank holds the head count.
#include "models/mamba2.h"

#include "models/decoder.h"
#include "models/weights.h"

namespace flatline {

std::unique_ptr<Model> load_mamba2(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  const std::string arch = "mamba2";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(*file, arch);
  c.n_embd = checked_size_key(*file, arch + ".embedding_length");
  c.n_ctx_train = checked_size_key(*file, arch + ".context_length", 0);
  c.norm_eps = static_cast<float>(file->get_float(arch + ".attention.layer_norm_rms_epsilon", 1e-5));
  c.n_vocab = file->tensor("token_embd.weight").rows();
  const Mamba2Config m = read_mamba2_config(*file, arch);
  for (int64_t l = 0; l < n_layer; ++l) {
    LayerSpec s;
    s.mixer = Mixer::Mamba2;
    s.mamba2 = m;
    c.layers.push_back(s);
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
