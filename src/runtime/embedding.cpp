#include "runtime/embedding.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace flatline {

namespace {

std::string pooling_key(const gguf::File& file) { return file.architecture() + ".pooling_type"; }

// One forward over `ids` writing the hidden state of every row (All) or of
// the last (Last) to `out`.
void hidden_pass(Engine& engine, ModelState& state, std::span<const int32_t> ids, LogitsMode rows, AttentionMask mask,
                 float* out) {
  SequenceInput in;
  in.state = &state;
  in.tokens = ids;
  in.logits = rows;
  in.out = out;
  ForwardArgs args;
  args.sequences = std::span<const SequenceInput>(&in, 1);
  args.mask = mask;
  args.hidden = true;
  engine.loaded().model().forward(args, engine.workspace());
}

void add_rows(const float* rows, int64_t n, int64_t E, std::vector<double>& sum) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < E; ++j) sum[j] += rows[r * E + j];
}

}  // namespace

const char* pooling_name(Pooling pooling) {
  switch (pooling) {
    case Pooling::Mean: return "mean";
    case Pooling::Cls: return "cls";
    case Pooling::Last: return "last";
  }
  return "?";
}

bool declares_pooling(const gguf::File& file) { return file.has(pooling_key(file)); }

Pooling pooling_of(const Model& model) {
  const gguf::File& file = model.file();
  const std::string key = pooling_key(file);
  if (!file.has(key)) return model.traits().causal ? Pooling::Last : Pooling::Mean;
  int64_t v = -1;
  try {
    v = file.get_int(key);
  } catch (const Error&) {
    throw Error(key + " must be an integer (1 mean, 2 cls, 3 last)");
  }
  switch (v) {
    case 1: return Pooling::Mean;
    case 2: return Pooling::Cls;
    case 3: return Pooling::Last;
    case 0:
      throw Error(key + " is 0 (none): this model gives one vector per token, not a sentence embedding; "
                        "flatline returns pooled embeddings only");
    case 4: throw Error(key + " is 4 (rank): this is a reranking model, not an embedding model");
    default:
      throw Error(key + " is " + std::to_string(v) + ", which is no pooling flatline knows (1 mean, 2 cls, 3 last)");
  }
}

std::vector<float> pooled_hidden_state(Engine& engine, std::span<const int32_t> ids, Pooling pooling, int64_t n_ctx,
                                       int64_t piece) {
  if (ids.empty()) throw Error("embedding: no tokens to embed");
  const Model& model = engine.loaded().model();
  const int64_t E = model.info().n_embd, n = static_cast<int64_t>(ids.size());
  auto state = model.new_state(n_ctx);
  std::vector<float> out(static_cast<size_t>(E));
  if (!model.traits().causal) {
    // Every row sees every other: one pass over all of them.
    std::vector<float> rows(static_cast<size_t>(n * E));
    hidden_pass(engine, *state, ids, LogitsMode::All, AttentionMask::Full, rows.data());
    const int64_t pick = pooling == Pooling::Cls ? 0 : n - 1;
    if (pooling != Pooling::Mean) return std::vector<float>(rows.begin() + pick * E, rows.begin() + (pick + 1) * E);
    std::vector<double> sum(static_cast<size_t>(E), 0.0);
    add_rows(rows.data(), n, E, sum);
    for (int64_t j = 0; j < E; ++j) out[j] = static_cast<float>(sum[j] / static_cast<double>(n));
    return out;
  }
  if (pooling == Pooling::Last) {
    hidden_pass(engine, *state, ids, LogitsMode::Last, AttentionMask::Causal, out.data());
    return out;
  }
  if (pooling == Pooling::Cls) {  // a causal model's first row depends on the first token only
    hidden_pass(engine, *state, ids.first(1), LogitsMode::Last, AttentionMask::Causal, out.data());
    return out;
  }
  piece = std::max<int64_t>(1, piece);
  std::vector<float> rows(static_cast<size_t>(std::min(piece, n) * E));
  std::vector<double> sum(static_cast<size_t>(E), 0.0);
  for (int64_t at = 0; at < n; at += piece) {
    const int64_t m = std::min(piece, n - at);
    hidden_pass(engine, *state, ids.subspan(at, m), LogitsMode::All, AttentionMask::Causal, rows.data());
    add_rows(rows.data(), m, E, sum);
  }
  for (int64_t j = 0; j < E; ++j) out[j] = static_cast<float>(sum[j] / static_cast<double>(n));
  return out;
}

void l2_normalise(std::vector<float>& v) {
  double sum = 0;
  for (float x : v) {
    if (!std::isfinite(x)) throw Error("embedding contains NaN or Inf values");
    sum += static_cast<double>(x) * x;
  }
  const double scale = 1.0 / std::max(std::sqrt(sum), 1e-12);
  for (float& x : v) x = static_cast<float>(x * scale);
}

void truncate_dimensions(std::vector<float>& v, int64_t dimensions) {
  if (dimensions < 1 || dimensions > static_cast<int64_t>(v.size()))
    throw Error("dimensions must be between 1 and " + std::to_string(v.size()) + " (the model's embedding length), found " +
                std::to_string(dimensions));
  v.resize(static_cast<size_t>(dimensions));
  l2_normalise(v);
}

}  // namespace flatline
