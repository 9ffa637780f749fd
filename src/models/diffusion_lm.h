// Masked-diffusion language models (GGUF architectures `llada`, `llada-moe`,
// `dream`): Llama / Qwen2-like stacks with bidirectional attention whose
// logits predict the tokens under mask positions of a canvas.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_llada(std::shared_ptr<const gguf::File> file, const LoadOptions& options);
std::unique_ptr<Model> load_llada_moe(std::shared_ptr<const gguf::File> file, const LoadOptions& options);
std::unique_ptr<Model> load_dream(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

// What the diffusion generator needs from the file: the mask token
// (tokenizer.ggml.mask_token_id) and whether logits row i predicts position
// i + 1 (diffusion.shift_logits; Dream's files may omit it, llama.cpp then
// assumes true, as here for `dream`).
struct DiffusionInfo {
  int32_t mask_token = -1;
  bool shift_logits = false;
};
DiffusionInfo diffusion_info(const gguf::File& file);

}  // namespace flatline
