// Llama as llama.cpp lays it out in GGUF: RMSNorm pre-norm blocks, RoPE of
// type NORM (adjacent pairs; the converter permutes the q/k rows into this
// order), SwiGLU FFN, optional attention/FFN biases, Llama-3 RoPE scaling as
// the rope_freqs tensor, tied or separate output.
#include "models/llama.h"

#include "models/decoder.h"

namespace flatline {

std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  DecoderConfig c = read_transformer_config(*file, "llama");
  c.ropes[0].style = RopeStyle::Norm;
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
