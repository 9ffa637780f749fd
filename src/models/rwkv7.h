// RWKV-7 "Goose" (GGUF architecture `rwkv7`, llama.cpp's tensor layout).
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_rwkv7(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
