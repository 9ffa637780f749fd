// Embeddings from hidden states (runtime/embedding.h), on small random-weight
// models of every family: the hidden state a forward pass hands out is the
// one its output head reads (checked by projecting it in double precision
// through the file's own output matrix and comparing with the model's
// logits), pooling equals a slow reference that feeds one token at a time
// and pools in double, and the normalisation and `dimensions` arithmetic
// is Ollama's (v / max(|v|, 1e-12)).
#include <gtest/gtest.h>

#include <cmath>

#include "gguf/gguf_writer.h"
#include "model_test_util.h"
#include "models/synthetic.h"
#include "runtime/embedding.h"
#include "tensor/kernels.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

// The message of the Error `fn` throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
#define EXPECT_ERROR(stmt, text) \
  EXPECT_NE(error_of([&] { stmt; }).find(text), std::string::npos) << "message: " << error_of([&] { stmt; })

SyntheticModel tiny(const std::string& arch) {
  SyntheticModel m = test::tiny_synthetic(arch);
  m.n_vocab = 256;
  m.seed = 7;
  if (arch == "granitehybrid" || arch == "jamba") m.layer_pattern = "MA";
  if (arch == "ouro") m.n_loops = 3;
  return m;
}

std::string synthetic(const std::string& arch) {
  static std::map<std::string, std::string> written;
  std::string& path = written[arch];
  if (path.empty()) {
    path = test::temp_path("embedding-" + arch + ".gguf");
    write_synthetic_model(path, tiny(arch));
  }
  return path;
}

std::unique_ptr<LoadedModel> load(const std::string& path, int64_t max_batch = 256) {
  LoadOptions o;
  o.pool = test::test_pool(1);
  o.max_batch = max_batch;
  o.kv_type = DType::F32;
  return LoadedModel::load(path, o);
}

std::vector<int32_t> some_ids(int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((11 * i + 5) % 250 + 3);
  return ids;
}

// Runs one forward over a fresh state and returns the requested rows.
std::vector<float> forward_rows(LoadedModel& lm, Engine& engine, std::span<const int32_t> ids, LogitsMode mode,
                                bool hidden) {
  const Model& model = lm.model();
  const int64_t width = hidden ? model.info().n_embd : model.info().n_vocab;
  std::vector<float> out((mode == LogitsMode::All ? ids.size() : 1) * width);
  auto state = model.new_state(256);
  SequenceInput in;
  in.state = state.get();
  in.tokens = ids;
  in.logits = mode;
  in.out = out.data();
  ForwardArgs args;
  args.sequences = std::span<const SequenceInput>(&in, 1);
  args.hidden = hidden;
  model.forward(args, engine.workspace());
  return out;
}

// The logits the file's head gives for hidden state h, in double: output.weight
// (or the tied token_embd) and output.bias, then Granite's logit_scale and
// Gemma's final soft-cap as their keys say.
std::vector<double> head_logits(const gguf::File& file, const float* h, int64_t E) {
  const gguf::TensorInfo* w = file.find_tensor("output.weight");
  if (!w) w = &file.tensor("token_embd.weight");
  const gguf::TensorInfo* bias = file.find_tensor("output.bias");
  const std::string arch = file.architecture();
  const double divisor = file.get_float(arch + ".logit_scale", 0.0);
  const double cap = file.get_float(arch + ".final_logit_softcapping", 0.0);
  const int64_t V = w->rows();
  const size_t row_bytes = w->n_bytes / static_cast<size_t>(V);
  std::vector<float> row(static_cast<size_t>(E));
  std::vector<double> out(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) {
    dequantize_row(w->type, w->data + v * row_bytes, row.data(), E);
    double s = 0;
    for (int64_t j = 0; j < E; ++j) s += static_cast<double>(row[j]) * h[j];
    if (bias) s += reinterpret_cast<const float*>(bias->data)[v];
    if (divisor != 0.0) s /= divisor;
    if (cap > 0) s = cap * std::tanh(s / cap);
    out[v] = s;
  }
  return out;
}

class HiddenStates : public ::testing::TestWithParam<const char*> {};

TEST_P(HiddenStates, AreWhatTheOutputHeadReads) {
  auto lm = load(synthetic(GetParam()));
  Engine engine(*lm);
  const int64_t E = lm->info().n_embd;
  const auto ids = some_ids(9);
  const auto hidden = forward_rows(*lm, engine, ids, LogitsMode::All, true);
  const auto logits = forward_rows(*lm, engine, ids, LogitsMode::All, false);
  const int64_t V = lm->info().n_vocab;
  ASSERT_EQ(hidden.size(), ids.size() * E);
  for (size_t t = 0; t < ids.size(); ++t) {
    const auto want = head_logits(lm->model().file(), hidden.data() + t * E, E);
    double worst = 0, peak = 1;
    for (int64_t v = 0; v < V; ++v) {
      worst = std::max(worst, std::fabs(want[v] - logits[t * V + v]));
      peak = std::max(peak, std::fabs(want[v]));
    }
    EXPECT_LT(worst, 1e-4 * peak) << GetParam() << " row " << t;
  }
  // Last gives the last row of All.
  const auto last = forward_rows(*lm, engine, ids, LogitsMode::Last, true);
  EXPECT_LT(test::max_abs_diff(last, std::span<const float>(hidden).subspan((ids.size() - 1) * E)), 1e-5f);
}

// The slow reference: one token at a time into one state, the hidden state of
// each read on its own, pooled in double.
std::vector<double> reference_pool(LoadedModel& lm, Engine& engine, const std::vector<int32_t>& ids, Pooling pooling) {
  const Model& model = lm.model();
  const int64_t E = model.info().n_embd;
  std::vector<std::vector<float>> rows;
  if (model.traits().causal) {
    auto state = model.new_state(256);
    for (int32_t id : ids) {
      std::vector<float> h(static_cast<size_t>(E));
      SequenceInput in{state.get(), std::span<const int32_t>(&id, 1), LogitsMode::Last, h.data(), nullptr};
      ForwardArgs args;
      args.sequences = std::span<const SequenceInput>(&in, 1);
      args.hidden = true;
      model.forward(args, engine.workspace());
      rows.push_back(std::move(h));
    }
  } else {
    // Bidirectional: each row needs the whole canvas; read them one by one.
    for (size_t t = 0; t < ids.size(); ++t) {
      auto state = model.new_state(256);
      std::vector<float> h(static_cast<size_t>(E));
      SequenceInput in{state.get(), ids, LogitsMode::All, h.data(), nullptr};
      in.logits_first = static_cast<int64_t>(t);
      in.logits_end = static_cast<int64_t>(t) + 1;
      ForwardArgs args;
      args.sequences = std::span<const SequenceInput>(&in, 1);
      args.mask = AttentionMask::Full;
      args.hidden = true;
      model.forward(args, engine.workspace());
      rows.push_back(std::move(h));
    }
  }
  std::vector<double> out(static_cast<size_t>(E), 0.0);
  if (pooling == Pooling::Last) std::copy(rows.back().begin(), rows.back().end(), out.begin());
  if (pooling == Pooling::Cls) std::copy(rows.front().begin(), rows.front().end(), out.begin());
  if (pooling == Pooling::Mean) {
    for (const auto& r : rows)
      for (int64_t j = 0; j < E; ++j) out[j] += r[j];
    for (double& x : out) x /= static_cast<double>(rows.size());
  }
  return out;
}

TEST_P(HiddenStates, PoolingEqualsTheSlowReference) {
  auto lm = load(synthetic(GetParam()), /*max_batch=*/6);
  Engine engine(*lm);
  const auto ids = some_ids(23);
  for (Pooling p : {Pooling::Last, Pooling::Mean, Pooling::Cls}) {
    const auto want = reference_pool(*lm, engine, ids, p);
    // Pieces of 5 (mean) and chunks of 6 rows inside forward: the pooled
    // vector must not depend on how the tokens were cut.
    const auto got = pooled_hidden_state(engine, ids, p, 256, /*piece=*/5);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0, peak = 1e-6;
    for (size_t j = 0; j < got.size(); ++j) {
      worst = std::max(worst, std::fabs(got[j] - want[j]));
      peak = std::max(peak, std::fabs(want[j]));
    }
    EXPECT_LT(worst, 2e-5 * std::max(1.0, peak)) << GetParam() << " " << pooling_name(p);
  }
  EXPECT_EQ(pooling_of(lm->model()), lm->traits().causal ? Pooling::Last : Pooling::Mean);
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, HiddenStates,
                         ::testing::Values("rwkv7", "llama", "gemma3", "mamba", "mamba2", "granitehybrid", "jamba",
                                           "ouro", "llada"));

TEST(Embedding, NormaliseAndDimensionsFollowOllama) {
  std::vector<float> v = {3, 4, 0, 12};  // |v| = 13
  l2_normalise(v);
  EXPECT_FLOAT_EQ(v[0], 3.0f / 13);
  EXPECT_FLOAT_EQ(v[3], 12.0f / 13);
  std::vector<float> zero(4, 0.0f);
  l2_normalise(zero);  // 1 / max(0, 1e-12): stays zero, no NaN
  for (float x : zero) EXPECT_EQ(x, 0.0f);
  std::vector<float> d = {3, 4, 0, 12};
  truncate_dimensions(d, 2);  // {3, 4} / 5
  ASSERT_EQ(d.size(), 2u);
  EXPECT_FLOAT_EQ(d[0], 0.6f);
  EXPECT_FLOAT_EQ(d[1], 0.8f);
  std::vector<float> bad = {1, NAN};
  EXPECT_ERROR(l2_normalise(bad);, "NaN or Inf");
  std::vector<float> four = {1, 2, 3, 4};
  EXPECT_ERROR(truncate_dimensions(four, 0);, "dimensions must be between 1 and 4");
  EXPECT_ERROR(truncate_dimensions(four, 5);, "found 5");
}

// A copy of `src` with one more metadata key.
void copy_with_pooling(const std::string& src, const std::string& dst, int32_t pooling) {
  gguf::File f = gguf::File::open(src);
  gguf::Writer w;
  for (const auto& [key, value] : f.metadata())
    if (key != "general.alignment") w.add_value(key, value);
  w.add_uint32(f.architecture() + ".pooling_type", static_cast<uint32_t>(pooling));
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  w.write(dst);
}

TEST(Embedding, PoolingComesFromTheFile) {
  const std::string base = synthetic("llama");
  const std::string mean = test::temp_path("embedding-llama-mean.gguf");
  copy_with_pooling(base, mean, 1);
  auto lm = load(mean);
  EXPECT_EQ(pooling_of(lm->model()), Pooling::Mean);
  EXPECT_TRUE(declares_pooling(lm->model().file()));
  EXPECT_FALSE(declares_pooling(load(base)->model().file()));
  for (auto [value, message] : {std::pair{0, "is 0 (none)"}, std::pair{4, "reranking"}, std::pair{9, "is 9"}}) {
    const std::string p = test::temp_path("embedding-llama-p" + std::to_string(value) + ".gguf");
    copy_with_pooling(base, p, value);
    auto m = load(p);
    EXPECT_ERROR(pooling_of(m->model());, message);
  }
  auto engine = Engine(*lm);
  EXPECT_ERROR(pooled_hidden_state(engine, {}, Pooling::Last, 64);, "no tokens");
}

}  // namespace
}  // namespace flatline
