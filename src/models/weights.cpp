#include "models/weights.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>

#include "util/error.h"

namespace flatline {

namespace {

std::string shape(int64_t cols, int64_t rows) {
  return "{" + std::to_string(cols) + ", " + std::to_string(rows) + "}";
}

constexpr int64_t kMaxSizeKey = int64_t{1} << 32;

}  // namespace

const gguf::TensorInfo& WeightReader::checked(const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo* found = file_.find_tensor(name);
  if (!found) throw Error(file_.path() + ": missing tensor " + name + " (expected shape " + shape(cols, rows) + ")");
  const gguf::TensorInfo& t = *found;
  if (t.cols() != cols || t.rows() != rows)
    throw Error(file_.path() + ": tensor " + name + ": expected shape " + shape(cols, rows) + ", found " + t.shape_string());
  const auto& tr = traits(t.type);
  if (!tr.computable)
    throw Error(file_.path() + ": tensor " + name + " has type " + tr.name +
                ", which flatline cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
  if (cols % tr.block_size != 0)
    throw Error(file_.path() + ": tensor " + name + ": " + std::to_string(cols) + " columns are not a multiple of " +
                tr.name + "'s block size " + std::to_string(tr.block_size));
  return t;
}

Matrix WeightReader::view(const gguf::TensorInfo& t, int64_t cols, int64_t rows) const {
  Matrix m;
  m.type = t.type;
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  m.row_stride = row_bytes(t.type, cols);
  return m;
}

Matrix WeightReader::matrix(const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo& t = checked(name, cols, rows);
  bytes_per_token_ += t.n_bytes;
  return view(t, cols, rows);
}

Matrix WeightReader::optional_matrix(const std::string& name, int64_t cols, int64_t rows) {
  return has(name) ? matrix(name, cols, rows) : Matrix{};
}

Matrix WeightReader::embedding(const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo& t = checked(name, cols, rows);
  Matrix m = view(t, cols, rows);
  bytes_per_token_ += m.row_stride;
  return m;
}

void WeightReader::count_tied_head(const Matrix& embedding) { bytes_per_token_ += embedding.bytes() - embedding.row_stride; }

ExpertMatrices WeightReader::experts(const std::string& name, int64_t cols, int64_t rows, int64_t n_expert,
                                     int64_t n_used) {
  const gguf::TensorInfo* t = file_.find_tensor(name);
  const std::string want = "{" + std::to_string(cols) + ", " + std::to_string(rows) + ", " + std::to_string(n_expert) + "}";
  if (!t) throw Error(file_.path() + ": missing tensor " + name + " (expected shape " + want + ")");
  if (t->dims.size() != 3 || t->dims[0] != cols || t->dims[1] != rows || t->dims[2] != n_expert)
    throw Error(file_.path() + ": tensor " + name + ": expected " + want + ", found " + t->shape_string());
  checked(name, cols, rows * n_expert);
  ExpertMatrices e;
  e.all = view(*t, cols, rows * n_expert);
  e.rows_per_expert = rows;
  e.n_expert = n_expert;
  bytes_per_token_ += t->n_bytes / static_cast<uint64_t>(n_expert) * static_cast<uint64_t>(n_used);
  return e;
}

std::vector<float> WeightReader::vector(const std::string& name, int64_t n) {
  const gguf::TensorInfo* found = file_.find_tensor(name);
  if (!found) throw Error(file_.path() + ": missing tensor " + name + " (expected " + std::to_string(n) + " elements)");
  const gguf::TensorInfo& t = *found;
  if (t.n_elements() != n)
    throw Error(file_.path() + ": tensor " + name + ": expected " + std::to_string(n) + " elements, found " +
                t.shape_string());
  checked(name, t.cols(), t.rows());
  bytes_per_token_ += t.n_bytes;
  std::vector<float> out(static_cast<size_t>(n));
  const int64_t cols = t.cols();
  const size_t stride = row_bytes(t.type, cols);
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * stride, out.data() + r * cols, cols);
  return out;
}

std::vector<float> WeightReader::optional_vector(const std::string& name, int64_t n) {
  return has(name) ? vector(name, n) : std::vector<float>{};
}

void fill_model_info(ModelInfo& info, const gguf::File& file, const std::string& architecture,
                     const WeightReader& reader) {
  info.architecture = architecture;
  info.name = file.get_string("general.name", std::filesystem::path(file.path()).stem().string());
  info.n_params = 0;
  info.weight_bytes = 0;
  std::map<std::string, uint64_t> by_type;
  for (const auto& t : file.tensors()) {
    info.n_params += static_cast<uint64_t>(t.n_elements());
    info.weight_bytes += t.n_bytes;
    if (t.dims.size() >= 2 && t.rows() > 1) by_type[traits(t.type).name] += t.n_bytes;
  }
  info.file_type = "F32";
  uint64_t best = 0;
  for (const auto& [name, bytes] : by_type)
    if (bytes > best) info.file_type = name, best = bytes;
  info.bytes_per_token = reader.bytes_per_token();
}

std::vector<int64_t> per_layer_ints(const gguf::File& file, const std::string& key, int64_t n_layer) {
  const gguf::Value& v = file.get(key);
  if (v.is_array() && v.array_size() != 1 && v.array_size() != static_cast<uint64_t>(n_layer))
    throw Error(file.path() + ": metadata " + key + ": expected 1 or " + std::to_string(n_layer) + " values, found " +
                std::to_string(v.array_size()));
  std::vector<int64_t> values = v.is_array() ? v.int_array() : std::vector<int64_t>{v.as_int()};
  if (values.size() == 1) values.assign(static_cast<size_t>(n_layer), values[0]);
  return values;
}

int64_t checked_block_count(const gguf::File& file, const std::string& arch) {
  const std::string key = arch + ".block_count";
  const int64_t n = file.get_int(key);
  if (n < 1) throw Error(file.path() + ": " + key + " must be at least 1, found " + std::to_string(n));
  // The highest blk.<i>. tensor prefix says how many layers the file holds.
  int64_t highest = -1;
  for (const auto& t : file.tensors()) {
    if (t.name.rfind("blk.", 0) != 0) continue;
    int64_t i = -1;
    const char* begin = t.name.data() + 4;
    auto [end, ec] = std::from_chars(begin, t.name.data() + t.name.size(), i);
    if (ec == std::errc() && end != begin && *end == '.') highest = std::max(highest, i);
  }
  if (n != highest + 1)
    throw Error(file.path() + ": " + key + " is " + std::to_string(n) + " but the file holds tensors for " +
                std::to_string(highest + 1) + " layers");
  return n;
}

int64_t checked_size_key(const gguf::File& file, const std::string& key, int64_t fallback) {
  const int64_t v = fallback >= 0 && !file.has(key) ? fallback : file.get_int(key);
  if (v < 0 || v > kMaxSizeKey)
    throw Error(file.path() + ": metadata " + key + " is " + std::to_string(v) + ", expected 0 to " +
                std::to_string(kMaxSizeKey));
  return v;
}

}  // namespace flatline
