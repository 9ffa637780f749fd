// What the converter writes: one PlannedTensor per GGUF tensor, saying
// where each of its rows comes from in the checkpoint. Every transform the
// supported architectures need (plain copy, the q/k row permutation,
// stacking vectors, flattening) maps an output row to a run of consecutive
// elements of one source tensor, so a tensor is produced row by row from
// the memory-mapped checkpoint without materialising its source.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "safetensors/safetensors.h"
#include "tensor/dtype.h"

namespace flatline::convert {

// Row `r` of an output tensor: dims[0] consecutive elements of `tensor`
// starting at element `first_element`.
struct RowSource {
  const safetensors::TensorInfo* tensor = nullptr;
  int64_t first_element = 0;
};

struct PlannedTensor {
  std::string name;                 // GGUF name
  std::vector<int64_t> dims;        // ggml order: dims[0] is the row length
  DType type = DType::F32;          // output type (set by the type rules)
  std::string origin;               // where it comes from, for messages and --verbose
  std::vector<const safetensors::TensorInfo*> inputs;  // released after the tensor is written
  std::function<RowSource(int64_t row)> row_source;    // empty for computed tensors
  std::vector<float> values;                           // computed tensors (e.g. rope_freqs)

  int64_t cols() const { return dims[0]; }
  int64_t rows() const;
  int64_t n_elements() const { return cols() * rows(); }
  // Element type of the source (F32 for computed tensors; the first input's otherwise).
  DType source_type() const;
};

DType source_dtype(const safetensors::TensorInfo& t);  // F32 / F16 / BF16

// The checkpoint tensor as is: HF shape [a, b, c] becomes ggml {c, b, a}.
PlannedTensor plan_copy(const std::string& name, const safetensors::TensorInfo& t);
// Same, with output row r taken from source row src_row(r) (2-D tensors).
PlannedTensor plan_row_map(const std::string& name, const safetensors::TensorInfo& t,
                           std::function<int64_t(int64_t)> src_row, const std::string& how);
// Same elements, other dims (squeeze / flatten / unsqueeze).
PlannedTensor plan_reshape(const std::string& name, const safetensors::TensorInfo& t, std::vector<int64_t> dims);
// Row i is the whole of parts[i] (each must have dims[0] elements).
PlannedTensor plan_stack(const std::string& name, std::vector<int64_t> dims,
                         std::vector<const safetensors::TensorInfo*> parts);
PlannedTensor plan_values(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
                          const std::string& origin);

// llama.cpp's q/k permutation (LlamaModel.permute): HF stores each head's
// rotary pairs as two halves (rotate-half RoPE); ggml's RoPE NORM rotates
// adjacent pairs. For a [n_head * head_dim, cols] matrix, output row
// h*head_dim + 2*i + j is source row h*head_dim + j*head_dim/2 + i.
int64_t rope_permuted_source_row(int64_t row, int64_t head_dim);

// Checkpoint tensors by name, checked against the shape the config implies
// and for a dtype the converter reads; remembers which were used so that
// tensors nobody asked for are refused rather than silently dropped.
class TensorSource {
 public:
  explicit TensorSource(const safetensors::Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  // Throws Error when absent, of another shape (the message says what the
  // config implies and `why`), or not F32/F16/BF16.
  const safetensors::TensorInfo& take(const std::string& name, const std::vector<int64_t>& shape,
                                      const std::string& why = "");
  // nullptr when absent; otherwise checked like take().
  const safetensors::TensorInfo* take_optional(const std::string& name, const std::vector<int64_t>& shape,
                                               const std::string& why = "");
  bool has(const std::string& name) const { return checkpoint_.find(name) != nullptr; }
  // Tensors the architecture does not need (e.g. rotary_emb.inv_freq).
  void skip(const std::string& name) { used_.insert(name); }
  void skip_suffix(const std::string& suffix);
  // Throws Error listing the tensors neither taken nor skipped.
  void check_all_used(const std::string& architecture) const;
  const safetensors::Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  const safetensors::Checkpoint& checkpoint_;
  std::set<std::string> used_;
};

}  // namespace flatline::convert
