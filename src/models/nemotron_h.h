// NVIDIA Nemotron-H / Nemotron Nano 2 / Nemotron-3 Nano (GGUF architectures
// `nemotron_h` and `nemotron_h_moe`): one mixer per block, Mamba-2,
// attention, an MLP or a mixture of experts, as the per-layer metadata says.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

std::unique_ptr<Model> load_nemotron_h(std::shared_ptr<const gguf::File> file, const LoadOptions& options);
std::unique_ptr<Model> load_nemotron_h_moe(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
