// Helpers for the converter tests: running a conversion, copying fixture
// directories, reading GGUF tensors back as floats, and (in ONE function,
// model_logits, so it is easy to adapt when the model API changes) the
// logits a GGUF model gives for some ids.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "gguf/gguf.h"
#include "models/model.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"
#include "test_support.h"

namespace flatline::test {

inline convert::ConvertSummary run_convert(const std::string& dir, const std::string& out, const std::string& type,
                                           const std::string& name = "") {
  convert::ConvertOptions o;
  o.type = type;
  o.name = name;
  o.threads = 2;
  return convert::convert_hf_model(dir, out, o);
}

// A writable copy of a fixture directory (files only, one level).
inline std::string copy_dir(const std::string& from, const std::string& name) {
  const std::string to = temp_path(name);
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), to + "/" + e.path().filename().string());
  }
  return to;
}

// All elements of a GGUF tensor as f32.
inline std::vector<float> gguf_floats(const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const size_t row = row_bytes(t.type, t.cols());
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * row, out.data() + r * t.cols(), t.cols());
  return out;
}

// Logits for every position of `ids` fed to a fresh state in one call.
inline std::vector<float> model_logits(const std::string& gguf_path, const std::vector<int32_t>& ids) {
  static auto pool = std::make_shared<ThreadPool>(2);
  LoadOptions o;
  o.pool = pool;
  o.kv_type = DType::F32;
  auto file = std::make_shared<const gguf::File>(gguf::File::open(gguf_path));
  auto model = load_model(file, o);
  auto state = model->new_state(static_cast<int64_t>(ids.size()) + 1);
  std::vector<float> logits(ids.size() * static_cast<size_t>(model->info().n_vocab));
  model->forward(*state, ids, LogitsMode::All, logits.data(), *model->new_workspace());
  return logits;
}

}  // namespace flatline::test
