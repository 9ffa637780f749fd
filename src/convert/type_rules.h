// Which ggml type each converted tensor gets, following llama.cpp:
//   1. convert_hf_to_gguf.py (prepare_tensors): 1-D tensors and *_norm.weight
//      are F32; so are biases and a few small matrices (RWKV's time_mix_w1/w2
//      and lerp_fused, ...); the rest get the float type of --outtype
//      (auto: BF16 if the first 2-D checkpoint tensor is BF16, else F16).
//   2. For a quantized --type, llama-quantize's rules on top (llama-quant.cpp,
//      no importance matrix, the _S mixes for K-quants): only 2-D+ tensors
//      named *weight that are not norms or RWKV's small matrices; output.weight
//      (or token_embd.weight when the embeddings are tied) gets Q6_K unless the
//      target is Q8_0; Q4_K_S gives the first 4 attn_v and the first n_layer/8
//      ffn_down Q5_K; a row length that does not fit the block size falls back
//      (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, 32-blocks->F16), as llama-quantize does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "convert/tensor_plan.h"
#include "tensor/dtype.h"

namespace flatline::convert {

struct OutputType {
  std::string name;           // as given: "auto", "f16", "q4_k", ...
  DType float_type;           // step 1's type for the tensors that are not kept F32
  std::optional<DType> quant;  // step 2's target, if quantizing
  uint32_t file_type = 1;     // general.file_type (llama_ftype)
};

// Parses --type; `first_matrix` is the dtype of the first 2-D checkpoint
// tensor (for "auto"). Throws Error listing the accepted names.
OutputType parse_output_type(const std::string& name, DType first_matrix);
const char* output_type_names();  // "auto, f32, f16, bf16, q8_0, ..."

// Sets PlannedTensor::type for every tensor. `n_layer` is the block count.
void assign_types(std::vector<PlannedTensor>& tensors, const OutputType& type, int64_t n_layer);
// llama-quantize's rules alone, for re-encoding a GGUF (`flatline quantize`):
// the tensors it would quantize get their type for `target`; the others keep
// the type they come with (t.type on entry).
void assign_requantized_types(std::vector<PlannedTensor>& tensors, DType target, int64_t n_layer);

}  // namespace flatline::convert
