// Mamba-2 (GGUF architecture `mamba2`, llama.cpp's layout): RMSNorm, then
// the Mamba-2 mixer, per layer; no feed-forward part.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_mamba2(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
