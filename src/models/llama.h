// GGUF architecture "llama" (Llama 2, Llama 3.x, and the many models that
// reuse the layout: Mistral, TinyLlama, SmolLM, ...).
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_llama(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
