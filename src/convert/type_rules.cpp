#include "convert/type_rules.h"

#include <cstdio>

#include "tensor/kernels.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

struct TypeName {
  const char* name;
  std::optional<DType> float_type;  // nullopt = auto
  std::optional<DType> quant;
  uint32_t file_type;
};

// llama_ftype ids: ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8,
// Q5_1 9, Q4_K_S 14, Q5_K_S 16, Q6_K 18, BF16 32.
const TypeName kTypes[] = {
    {"auto", std::nullopt, std::nullopt, 1},  {"f32", DType::F32, std::nullopt, 0},
    {"f16", DType::F16, std::nullopt, 1},     {"bf16", DType::BF16, std::nullopt, 32},
    {"q8_0", std::nullopt, DType::Q8_0, 7},   {"q4_0", std::nullopt, DType::Q4_0, 2},
    {"q4_1", std::nullopt, DType::Q4_1, 3},   {"q5_0", std::nullopt, DType::Q5_0, 8},
    {"q5_1", std::nullopt, DType::Q5_1, 9},   {"q4_k", std::nullopt, DType::Q4_K, 14},
    {"q5_k", std::nullopt, DType::Q5_K, 16},  {"q6_k", std::nullopt, DType::Q6_K, 18},
};

// convert_hf_to_gguf.py: tensors kept in F32 whatever --outtype says.
bool converter_keeps_f32(const PlannedTensor& t) {
  if (t.dims.size() <= 1 || ends_with(t.name, "_norm.weight")) return true;
  for (const char* part : {"ffn_gate_inp.weight", "position_embd.weight", "token_types.weight", "ssm_conv1d.weight",
                           "time_mix_first.weight", "time_mix_w1.weight", "time_mix_w2.weight",
                           "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight"}) {
    if (contains(t.name, part)) return true;
  }
  return !ends_with(t.name, ".weight");
}

// ggml_n_dims: the number of dims up to the last one that is not 1.
int ggml_n_dims(const std::vector<int64_t>& dims) {
  int n = static_cast<int>(dims.size());
  while (n > 1 && dims[static_cast<size_t>(n - 1)] == 1) --n;
  return n;
}

// llama-quantize's tensor_allows_quantization, for the names flatline writes.
bool quantize_allowed(const PlannedTensor& t) {
  if (ggml_n_dims(t.dims) < 2) return false;
  if (!ends_with(t.name, "weight") || contains(t.name, "_norm.weight")) return false;
  for (const char* part : {"ffn_gate_inp.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
                           "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
                           "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
                           "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
                           "time_mix_lerp_fused.weight", "ssm_conv1d", "position_embd", "token_types"}) {
    if (contains(t.name, part)) return false;
  }
  return true;
}

int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// llama-quantize's tensor_type_fallback.
DType fallback_for_row_length(DType type, int64_t cols) {
  if (cols % traits(type).block_size == 0) return type;
  DType next = type;
  switch (type) {
    case DType::Q4_K: next = DType::Q5_0; break;
    case DType::Q5_K: next = DType::Q5_1; break;
    case DType::Q6_K: next = DType::Q8_0; break;
    default: break;  // 32-element blocks have nothing smaller
  }
  if (cols % traits(next).block_size != 0) next = DType::F16;
  return next;
}

struct QuantState {
  DType target;
  bool tied_embeddings;
  int64_t n_layer;
  int attn_v_seen = 0;
};

// llama-quantize's llama_tensor_get_type for the mixes flatline offers.
DType quantized_type(const PlannedTensor& t, QuantState& qs) {
  DType type = qs.target;
  const bool is_output = t.name == "output.weight" || (qs.tied_embeddings && t.name == "token_embd.weight");
  if (is_output) {
    if (t.cols() % traits(type).block_size != 0) type = DType::Q8_0;
    else if (type != DType::Q8_0) type = DType::Q6_K;
  } else if (contains(t.name, "attn_v.weight")) {
    if (qs.target == DType::Q4_K && qs.attn_v_seen < 4) type = DType::Q5_K;
    ++qs.attn_v_seen;
  } else if (contains(t.name, "ffn_down")) {
    const int layer = layer_of(t.name);
    if (qs.target == DType::Q4_K && layer >= 0 && layer < qs.n_layer / 8) type = DType::Q5_K;
  }
  return fallback_for_row_length(type, t.cols());
}

}  // namespace

const char* output_type_names() { return "auto, f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k"; }

OutputType parse_output_type(const std::string& name, DType first_matrix) {
  for (const TypeName& t : kTypes) {
    if (name != t.name) continue;
    OutputType out;
    out.name = name;
    out.float_type = t.float_type ? *t.float_type : (first_matrix == DType::BF16 ? DType::BF16 : DType::F16);
    out.quant = t.quant;
    out.file_type = t.file_type;
    if (!t.float_type && !t.quant && out.float_type == DType::BF16) out.file_type = 32;
    if (out.quant && !can_quantize(*out.quant)) throw Error("cannot quantize to " + name);
    return out;
  }
  throw Error("unknown --type '" + name + "' (expected one of " + output_type_names() + ")");
}

void assign_types(std::vector<PlannedTensor>& tensors, const OutputType& type, int64_t n_layer) {
  bool has_output = false;
  for (const auto& t : tensors) has_output = has_output || t.name == "output.weight";
  QuantState qs{type.quant.value_or(DType::F32), !has_output, n_layer};
  for (PlannedTensor& t : tensors) {
    t.type = converter_keeps_f32(t) ? DType::F32 : type.float_type;
    if (type.quant && quantize_allowed(t)) t.type = quantized_type(t, qs);
  }
}

void assign_requantized_types(std::vector<PlannedTensor>& tensors, DType target, int64_t n_layer) {
  bool has_output = false;
  for (const auto& t : tensors) has_output = has_output || t.name == "output.weight";
  QuantState qs{target, !has_output, n_layer};
  const bool to_float = target == DType::F32 || target == DType::F16 || target == DType::BF16;
  for (PlannedTensor& t : tensors)
    if (quantize_allowed(t) && (t.type == DType::F32 || t.type == DType::F16 || t.type == DType::BF16))
      t.type = to_float ? target : quantized_type(t, qs);
}

}  // namespace flatline::convert
