// Mamba-1 as llama.cpp reads it (src/models/mamba.cpp there): every layer is
// x + mixer(rmsnorm(x)) with the Mamba-1 mixer (models/blocks/mamba.h);
// ssm_a holds A = -exp(A_log) already; tied output when output.weight is
// absent. Tokenizer (GPT-NeoX BPE for the state-spaces checkpoints) and
// chat template come from the GGUF like any other model's.
#include "models/mamba.h"

#include "models/decoder.h"
#include "models/weights.h"

namespace flatline {

std::unique_ptr<Model> load_mamba(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  const std::string arch = "mamba";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(*file, arch);
  c.n_embd = checked_size_key(*file, arch + ".embedding_length");
  c.n_ctx_train = checked_size_key(*file, arch + ".context_length", 0);
  c.norm_eps = static_cast<float>(file->get_float(arch + ".attention.layer_norm_rms_epsilon", 1e-5));
  c.n_vocab = file->tensor("token_embd.weight").rows();
  const Mamba1Config m = read_mamba1_config(*file, arch);
  for (int64_t l = 0; l < n_layer; ++l) {
    LayerSpec s;
    s.mixer = Mixer::Mamba1;
    s.mamba1 = m;
    c.layers.push_back(s);
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
