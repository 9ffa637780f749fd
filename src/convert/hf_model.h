// A Hugging Face model directory as the converter sees it, and the plan an
// architecture makes of it: the GGUF keys and tokenizer it writes and the
// tensors, in file order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "convert/tensor_plan.h"
#include "gguf/gguf_writer.h"
#include "safetensors/safetensors.h"

namespace flatline::convert {

struct HfModel {
  std::string dir;
  HfConfig config;             // config.json
  HfConfig generation_config;  // generation_config.json (empty when absent)
  safetensors::Checkpoint weights;
  std::string architecture;    // config.json architectures[0] (or model_type)

  std::string path(const std::string& file) const { return dir + "/" + file; }
  // Throws Error when config.json or the weights are missing or malformed.
  static HfModel open(const std::string& dir);
};

struct ArchPlan {
  std::string arch;  // general.architecture
  int64_t n_layer = 0;
  std::vector<PlannedTensor> tensors;
  std::function<void(gguf::Writer&)> add_hparams;    // <arch>.* keys
  std::function<void(gguf::Writer&)> add_tokenizer;  // tokenizer.* keys
  std::vector<std::string> notes;                    // what the plan decided, for the log
};

// One per supported architecture; each checks the config and every tensor's
// shape against it and throws Error naming what disagrees.
ArchPlan plan_llama(const HfModel& model, TensorSource& source);
ArchPlan plan_ouro(const HfModel& model, TensorSource& source);
ArchPlan plan_rwkv7(const HfModel& model, TensorSource& source);

}  // namespace flatline::convert
