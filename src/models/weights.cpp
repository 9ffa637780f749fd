#include "models/weights.h"

#include <map>

#include "util/error.h"

namespace flatline {

namespace {
std::string shape(int64_t cols, int64_t rows) {
  return "{" + std::to_string(cols) + ", " + std::to_string(rows) + "}";
}
}  // namespace

const gguf::TensorInfo& WeightReader::checked(const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo& t = file_.tensor(name);
  if (t.cols() != cols || t.rows() != rows) throw Error(file_.path() + ": tensor " + name + ": expected " + shape(cols, rows) + ", found " + t.shape_string());
  const auto& tr = traits(t.type);
  if (!tr.computable)
    throw Error(file_.path() + ": tensor " + name + " has type " + tr.name +
                ", which flatline cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
  return t;
}

Matrix WeightReader::matrix(const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo& t = checked(name, cols, rows);
  bytes_used_ += t.n_bytes;
  elements_used_ += static_cast<uint64_t>(t.n_elements());
  Matrix m;
  m.type = t.type;
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  m.row_stride = row_bytes(t.type, cols);
  return m;
}

Matrix WeightReader::optional_matrix(const std::string& name, int64_t cols, int64_t rows) {
  return has(name) ? matrix(name, cols, rows) : Matrix{};
}

std::vector<float> WeightReader::vector(const std::string& name, int64_t n) {
  const gguf::TensorInfo& t = file_.tensor(name);
  if (t.n_elements() != n)
    throw Error(file_.path() + ": tensor " + name + ": expected " + std::to_string(n) + " elements, found " +
                t.shape_string());
  checked(name, t.cols(), t.rows());
  bytes_used_ += t.n_bytes;
  elements_used_ += static_cast<uint64_t>(n);
  std::vector<float> out(static_cast<size_t>(n));
  int64_t cols = t.cols();
  size_t stride = row_bytes(t.type, cols);
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * stride, out.data() + r * cols, cols);
  return out;
}

std::vector<float> WeightReader::optional_vector(const std::string& name, int64_t n) {
  return has(name) ? vector(name, n) : std::vector<float>{};
}

uint64_t total_weight_elements(const gguf::File& file) {
  uint64_t n = 0;
  for (const auto& t : file.tensors()) n += static_cast<uint64_t>(t.n_elements());
  return n;
}

uint64_t total_weight_bytes(const gguf::File& file) {
  uint64_t n = 0;
  for (const auto& t : file.tensors()) n += t.n_bytes;
  return n;
}

std::string dominant_weight_type(const gguf::File& file) {
  std::map<std::string, uint64_t> by_type;
  for (const auto& t : file.tensors())
    if (t.dims.size() >= 2 && t.rows() > 1) by_type[traits(t.type).name] += t.n_bytes;
  std::string best = "F32";
  uint64_t best_bytes = 0;
  for (const auto& [name, bytes] : by_type)
    if (bytes > best_bytes) best = name, best_bytes = bytes;
  return best;
}

}  // namespace flatline
