// GGUF architecture "gemma3" (Gemma 3 text models, 270M to 27B).
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_gemma3(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
