// LLaDA, LLaDA-MoE and Dream as llama.cpp reads them (src/models/llada.cpp,
// llada-moe.cpp, dream.cpp there): pre-norm blocks with non-causal
// attention and no KV cache between calls (every refinement step is a full
// pass over the canvas). LLaDA: Llama's layout, RoPE NORM. LLaDA-MoE: QK
// RMSNorm, softmax-gated experts without renormalisation, RoPE NEOX. Dream:
// Qwen2's layout (q/k/v biases, GQA, optional output bias), RoPE NEOX.
#include "models/diffusion_lm.h"

#include "models/decoder.h"
#include "models/weights.h"
#include "util/error.h"

namespace flatline {

namespace {

std::unique_ptr<Model> load(std::shared_ptr<const gguf::File> file, const LoadOptions& options, const std::string& arch,
                            RopeStyle rope, bool moe) {
  DecoderConfig c = read_transformer_config(*file, arch);
  c.ropes[0].style = rope;
  c.causal = false;
  if (moe) {
    const MoeConfig m = read_moe_config(*file, arch, MoeGating::Softmax, /*default_normalize=*/false);
    const int64_t n_ff_expert = checked_size_key(*file, arch + ".expert_feed_forward_length", c.layers[0].n_ff);
    for (auto& l : c.layers) {
      l.attention.qk_norm = true;
      l.ffn = FfnKind::Moe;
      l.moe = m;
      l.n_ff = n_ff_expert;
    }
  }
  if (diffusion_info(*file).mask_token < 0)
    throw Error(file->path() + ": a diffusion model needs tokenizer.ggml.mask_token_id");
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace

DiffusionInfo diffusion_info(const gguf::File& file) {
  DiffusionInfo d;
  d.mask_token = static_cast<int32_t>(file.get_int("tokenizer.ggml.mask_token_id", -1));
  d.shift_logits = file.get_bool("diffusion.shift_logits", file.architecture() == "dream");
  return d;
}

std::unique_ptr<Model> load_llada(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return load(std::move(file), options, "llada", RopeStyle::Norm, false);
}

std::unique_ptr<Model> load_llada_moe(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return load(std::move(file), options, "llada-moe", RopeStyle::Neox, true);
}

std::unique_ptr<Model> load_dream(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return load(std::move(file), options, "dream", RopeStyle::Neox, false);
}

}  // namespace flatline
