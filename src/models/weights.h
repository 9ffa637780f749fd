// Reading an architecture's weights out of a GGUF file with shape checks.
// Every architecture uses this one reader, so a wrong or missing tensor gives
// the same kind of message: "tensor blk.3.attn_k.weight: expected {64, 64},
// found {64, 32}". It also counts what one decode step reads, for ModelInfo.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "models/model.h"
#include "tensor/kernels.h"

namespace flatline {

// The experts of a mixture-of-experts layer: one GGUF tensor {cols, rows,
// n_expert}, expert e being rows [e * rows, (e + 1) * rows).
struct ExpertMatrices {
  Matrix all;           // rows = rows_per_expert * n_expert
  int64_t rows_per_expert = 0;
  int64_t n_expert = 0;

  Matrix expert(int64_t e) const {
    Matrix m = all;
    m.rows = rows_per_expert;
    m.data = all.data + static_cast<size_t>(e * rows_per_expert) * all.row_stride;
    return m;
  }
};

class WeightReader {
 public:
  explicit WeightReader(const gguf::File& file) : file_(file) {}

  // A 2-D weight with dims {cols, rows} in ggml order (dims[0] = cols), used
  // in place from the mapping. Trailing dims of size 1 are accepted.
  Matrix matrix(const std::string& name, int64_t cols, int64_t rows);
  // Same, or a Matrix with data == nullptr when the tensor is absent.
  Matrix optional_matrix(const std::string& name, int64_t cols, int64_t rows);
  // The embedding table: a decode step reads one row of it, not all.
  Matrix embedding(const std::string& name, int64_t cols, int64_t rows);
  // Expert weights {cols, rows, n_expert}; a decode step reads n_used of them.
  ExpertMatrices experts(const std::string& name, int64_t cols, int64_t rows, int64_t n_expert, int64_t n_used);
  // A tensor of exactly n elements (any shape), converted to f32.
  std::vector<float> vector(const std::string& name, int64_t n);
  std::vector<float> optional_vector(const std::string& name, int64_t n);  // empty when absent
  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
  // The output head when it is the embedding table itself (tied): all of it
  // is read per token after all.
  void count_tied_head(const Matrix& embedding);

  // Weight bytes one decode step reads (see ModelInfo::bytes_per_token).
  uint64_t bytes_per_token() const { return bytes_per_token_; }

 private:
  const gguf::TensorInfo& checked(const std::string& name, int64_t cols, int64_t rows);
  Matrix view(const gguf::TensorInfo& t, int64_t cols, int64_t rows) const;
  const gguf::File& file_;
  uint64_t bytes_per_token_ = 0;
};

// Fills the ModelInfo fields every architecture shares (name, parameter and
// byte counts, dominant weight type, bytes per token).
void fill_model_info(ModelInfo& info, const gguf::File& file, const std::string& architecture,
                     const WeightReader& reader);

// Reads an integer key that may be a scalar or a per-layer array; throws
// Error when an array has the wrong length.
std::vector<int64_t> per_layer_ints(const gguf::File& file, const std::string& key, int64_t n_layer);
// block_count of an architecture, checked against the file: every layer
// must have at least one tensor named blk.<i>., so a huge count in a small
// file is refused before anything is sized from it.
int64_t checked_block_count(const gguf::File& file, const std::string& arch);
// A positive size from the metadata (dimension, head count ...), bounded so
// that products of a few of them cannot overflow.
int64_t checked_size_key(const gguf::File& file, const std::string& key, int64_t fallback = -1);

}  // namespace flatline
