// AI21 Jamba (GGUF architecture `jamba`): Mamba-1 and attention layers,
// dense and mixture-of-experts FFNs.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_jamba(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
