// Re-encoding the weights of a GGUF model into another type (`flatline
// quantize`), with llama-quantize's rules for which tensors change and to
// what (convert/type_rules.h); metadata and the other tensors are copied.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tensor/dtype.h"

namespace flatline::convert {

struct RequantizeSummary {
  uint64_t bytes_before = 0, bytes_after = 0;
  int64_t tensors_changed = 0;
};

// `type`: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k. Writes through a
// temp file (nothing under `out` on error). `on_tensor` (optional) is called
// for each re-encoded tensor: name, old type, new type.
RequantizeSummary requantize_gguf(const std::string& in, const std::string& out, const std::string& type,
                                  const std::function<void(const std::string&, DType, DType)>& on_tensor = {});

}  // namespace flatline::convert
