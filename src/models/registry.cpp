// The list of architectures flatline can run. Adding one = one new file in
// src/models/ plus one line here.
#include <utility>

#include "models/diffusion_lm.h"
#include "models/gemma3.h"
#include "models/granite_hybrid.h"
#include "models/jamba.h"
#include "models/llama.h"
#include "models/mamba.h"
#include "models/mamba2.h"
#include "models/model.h"
#include "models/nemotron_h.h"
#include "models/ouro.h"
#include "models/rwkv7.h"
#include "util/error.h"

namespace flatline {

namespace {

using Factory = std::unique_ptr<Model> (*)(std::shared_ptr<const gguf::File>, const LoadOptions&);

struct Registration {
  const char* architecture;
  Factory factory;
  bool takes_family_options = false;  // LoadOptions::family (checked by the factory)
};

const std::vector<Registration>& registry() {
  static const std::vector<Registration> entries = {
      {"llama", load_llama},
      {"gemma3", load_gemma3},
      {"rwkv7", load_rwkv7},
      {"mamba", load_mamba},
      {"mamba2", load_mamba2},
      {"granitehybrid", load_granite_hybrid},
      {"nemotron_h", load_nemotron_h},
      {"nemotron_h_moe", load_nemotron_h_moe},
      {"jamba", load_jamba},
      {"ouro", load_ouro, true},
      {"llada", load_llada},
      {"llada-moe", load_llada_moe},
      {"dream", load_dream},
  };
  return entries;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& r : registry()) names.emplace_back(r.architecture);
  return names;
}

std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  if (!options.pool) throw Error("load_model: no thread pool given");
  std::string arch = file->architecture();
  for (const auto& r : registry()) {
    if (arch != r.architecture) continue;
    if (!r.takes_family_options && !options.family.empty())
      throw Error(file->path() + ": architecture '" + arch + "' takes no model options (given: " +
                  options.family.begin()->first + ")");
    return r.factory(std::move(file), options);
  }
  std::string list;
  for (const auto& name : supported_architectures()) list += (list.empty() ? "" : ", ") + name;
  throw Error(file->path() + ": unknown architecture '" + arch + "' (flatline supports: " + list + ")");
}

}  // namespace flatline
