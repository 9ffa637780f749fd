// Helpers shared by the transformer tests: loading a model with chosen
// options, the fixtures' standard token sequence, and comparing logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "models/model.h"
#include "tensor/thread_pool.h"

namespace flatline::test {

struct LoadedModel {
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<Model> model;
};

inline LoadedModel load_transformer(const std::string& path, DType kv_type = DType::F32, int64_t max_batch = 256,
                                    bool swa_full = false, int threads = 2) {
  static std::shared_ptr<ThreadPool> pools[9];
  auto& pool = pools[std::clamp(threads, 1, 8)];
  if (!pool) pool = std::make_shared<ThreadPool>(threads);
  LoadOptions o;
  o.pool = pool;
  o.max_batch = max_batch;
  o.kv_type = kv_type;
  o.kv_swa_full = swa_full;
  LoadedModel m;
  m.file = std::make_shared<const gguf::File>(gguf::File::open(path));
  m.model = load_model(m.file, o);
  return m;
}

// The 64 ids of /work/shared/models/random/README.md: (7 i + 3) % 509 + 3.
inline std::vector<int32_t> standard_ids(int n = 64) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((7 * i + 3) % 509 + 3);
  return ids;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = a.size() == b.size() ? 0.0f : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Logits of every token, fed in pieces of the given sizes (cycled) to one state.
inline std::vector<float> logits_in_pieces(Model& model, ModelState& state, const std::vector<int32_t>& ids,
                                           const std::vector<int>& pieces) {
  const int64_t V = model.info().n_vocab;
  std::vector<float> out(ids.size() * V);
  size_t at = 0, k = 0;
  while (at < ids.size()) {
    size_t n = std::min<size_t>(pieces[k++ % pieces.size()], ids.size() - at);
    model.forward(state, std::span<const int32_t>(ids.data() + at, n), LogitsMode::All, out.data() + at * V);
    at += n;
  }
  return out;
}

inline int argmax(const float* x, int64_t n) { return static_cast<int>(std::max_element(x, x + n) - x); }

}  // namespace flatline::test
