// Helpers shared by the model tests: loading a model with chosen options
// (plus the workspace its forward passes use), the fixtures' standard token
// sequence, and comparing logits.
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
#include "models/synthetic.h"
#include "tensor/thread_pool.h"

namespace flatline::test {

struct TestModel {
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<Model> model;
  std::unique_ptr<Workspace> ws;

  const ModelInfo& info() const { return model->info(); }
  std::unique_ptr<ModelState> new_state(int64_t n_ctx = 0) const { return model->new_state(n_ctx); }
  void forward(ModelState& state, std::span<const int32_t> ids, LogitsMode mode, float* out) {
    model->forward(state, ids, mode, out, *ws);
  }
};

inline std::shared_ptr<ThreadPool> test_pool(int threads) {
  static std::shared_ptr<ThreadPool> pools[9];
  auto& pool = pools[std::clamp(threads, 1, 8)];
  if (!pool) pool = std::make_shared<ThreadPool>(std::clamp(threads, 1, 8));
  return pool;
}

inline TestModel load_test_model(const std::string& path, DType kv_type = DType::F32, int64_t max_batch = 256,
                                 bool swa_full = false, int threads = 2) {
  LoadOptions o;
  o.pool = test_pool(threads);
  o.max_batch = max_batch;
  o.kv_type = kv_type;
  o.kv_swa_full = swa_full;
  TestModel m;
  m.file = std::make_shared<const gguf::File>(gguf::File::open(path));
  m.model = load_model(m.file, o);
  m.ws = m.model->new_workspace();
  return m;
}

// The 64 ids of ../shared/models/random/README.md: (7 i + 3) % 509 + 3.
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
inline std::vector<float> logits_in_pieces(TestModel& m, ModelState& state, const std::vector<int32_t>& ids,
                                           const std::vector<int>& pieces) {
  const int64_t V = m.info().n_vocab;
  std::vector<float> out(ids.size() * V);
  size_t at = 0, k = 0;
  while (at < ids.size()) {
    size_t n = std::min<size_t>(pieces[k++ % pieces.size()], ids.size() - at);
    m.forward(state, std::span<const int32_t>(ids.data() + at, n), LogitsMode::All, out.data() + at * V);
    at += n;
  }
  return out;
}

inline std::vector<float> all_logits(TestModel& m, const std::vector<int32_t>& ids, int64_t n_ctx = 0) {
  auto st = m.new_state(n_ctx > 0 ? n_ctx : static_cast<int64_t>(ids.size()) + 1);
  return logits_in_pieces(m, *st, ids, {static_cast<int>(ids.size())});
}

inline int argmax(const float* x, int64_t n) { return static_cast<int>(std::max_element(x, x + n) - x); }

// The smallest model of `arch` that still has every part (two layers, GQA,
// LoRA ranks, SSM widths): the contract and embedding tests' synthetic files.
inline SyntheticModel tiny_synthetic(const std::string& arch) {
  SyntheticModel m;
  m.arch = arch;
  m.n_embd = 64;
  m.n_layer = 2;
  m.n_ff = 96;
  m.n_head = 4;
  m.n_head_kv = 2;
  m.head_dim = 32;
  m.rank_decay = m.rank_iclr = m.rank_value = m.rank_gate = 16;
  m.d_inner = 128;
  m.d_state = 16;
  m.ssm_head_dim = 32;
  m.n_group = 2;
  m.dt_rank = 8;
  return m;
}

}  // namespace flatline::test
