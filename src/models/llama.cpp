// Llama as llama.cpp lays it out in GGUF: RMSNorm pre-norm blocks, RoPE of
// type NORM (adjacent pairs; the converter permutes the q/k rows into this
// order), SwiGLU FFN, optional attention/FFN biases, Llama-3 RoPE scaling as
// the rope_freqs tensor, tied or separate output.
#include "models/llama.h"

#include "models/transformer_base.h"

namespace flatline {

std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  TransformerConfig c = read_base_config(*file, "llama");
  c.rope_style = RopeStyle::Norm;
  c.activation = FfnActivation::Silu;
  return make_transformer(std::move(file), options, std::move(c));
}

}  // namespace flatline
