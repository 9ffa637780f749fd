// Reading an architecture's weights out of a GGUF file with shape checks.
// Every architecture file uses this so that a wrong or missing tensor gives
// the same kind of message: "tensor blk.3.attn_k.weight: expected {64, 64},
// found {64, 32}".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/kernels.h"

namespace flatline {

class WeightReader {
 public:
  explicit WeightReader(const gguf::File& file) : file_(file) {}

  // A 2-D weight with dims {cols, rows} in ggml order (dims[0] = cols), used
  // in place from the mapping. Trailing dims of size 1 are accepted.
  Matrix matrix(const std::string& name, int64_t cols, int64_t rows);
  // Same, or a Matrix with data == nullptr when the tensor is absent.
  Matrix optional_matrix(const std::string& name, int64_t cols, int64_t rows);
  // A tensor of exactly n elements (any shape), converted to f32.
  std::vector<float> vector(const std::string& name, int64_t n);
  std::vector<float> optional_vector(const std::string& name, int64_t n);  // empty when absent
  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  uint64_t bytes_used() const { return bytes_used_; }
  uint64_t elements_used() const { return elements_used_; }

 private:
  const gguf::TensorInfo& checked(const std::string& name, int64_t cols, int64_t rows);
  const gguf::File& file_;
  uint64_t bytes_used_ = 0;
  uint64_t elements_used_ = 0;
};

// Summaries of a file's weights for ModelInfo.
uint64_t total_weight_elements(const gguf::File& file);
uint64_t total_weight_bytes(const gguf::File& file);
std::string dominant_weight_type(const gguf::File& file);  // by bytes, over 2-D tensors

}  // namespace flatline
