// ByteDance Ouro (GGUF architecture `ouro`, docs/GGUF-OURO.md): a looped
// language model with an exit gate.
#pragma once

#include <memory>

#include "models/model.h"

namespace flatline {

// LoadOptions::family keys: "loops" (N: run exactly N loops), "exit_threshold"
// (q in [0, 1]; default the checkpoint's ouro.early_exit_threshold),
// "exit_mode" (select | skip; default skip when q < 1), "kv_share" (full |
// last). Unknown keys and bad values are refused with a message.
std::unique_ptr<Model> load_ouro(std::shared_ptr<const gguf::File> file, const LoadOptions& options);

}  // namespace flatline
