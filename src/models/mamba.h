// Mamba-1 (GGUF architecture `mamba`, llama.cpp's layout): RMSNorm, then
// the selective-scan mixer, per layer; no feed-forward part.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_mamba(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
