// IBM Granite 4.0-H (GGUF architecture `granitehybrid`): Mamba-2 and
// attention layers with dense or mixture-of-experts FFNs.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_granite_hybrid(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
