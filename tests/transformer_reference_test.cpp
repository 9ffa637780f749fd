// The transformer against a slow, plain reference written here: double
// precision, naive attention over explicit score matrices, read straight from
// the GGUF tensors. The models are random-weight files written with
// gguf::Writer in shapes the fixtures do not cover: odd head counts, GQA
// ratio 4, head dims that are not n_embd / n_head, partial RoPE with
// rope_freqs, biases, tied output, linear RoPE scaling, a per-layer
// sliding-window pattern array, attention.scale and final logit soft-capping.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "gguf/gguf_writer.h"
#include "tensor/isa.h"
#include "test_support.h"
#include "model_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_test_model;
using test::logits_in_pieces;
using test::max_abs_diff;

// ---------------------------------------------------------------- the model files

struct Spec {
  std::string arch;  // "llama" or "gemma3"
  int n_vocab = 64, n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, head_dim = 16, n_rot = 16, n_ff = 40;
  bool rope_freqs = false, biases = false, tied = false;
  double rope_base = 10000, rope_factor = 0;  // linear scaling factor (0: none)
  int window = 0;                              // gemma3 sliding window
  std::vector<int32_t> swa_pattern;            // gemma3: per-layer flags (empty: default period 6)
  double swa_base = 10000;
  double attention_scale = 0, softcap = 0;
  float eps = 1e-5f;
};

void PrintTo(const Spec& s, std::ostream* os) { *os << s.arch; }

class WeightMaker {
 public:
  explicit WeightMaker(uint64_t seed) : rng_(seed) {}
  std::vector<float> normal(size_t n, double stddev, double mean = 0) {
    std::normal_distribution<double> d(mean, stddev);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(d(rng_));
    return v;
  }

 private:
  std::mt19937_64 rng_;
};

std::string write_model(const Spec& s, uint64_t seed) {
  gguf::Writer w;
  WeightMaker r(seed);
  const std::string k = s.arch + ".";
  w.add_string("general.architecture", s.arch);
  w.add_string("general.name", "reference-" + s.arch);
  w.add_uint32(k + "context_length", 4096);
  w.add_uint32(k + "embedding_length", s.n_embd);
  w.add_uint32(k + "block_count", s.n_layer);
  w.add_uint32(k + "feed_forward_length", s.n_ff);
  w.add_uint32(k + "attention.head_count", s.n_head);
  w.add_uint32(k + "attention.head_count_kv", s.n_head_kv);
  w.add_uint32(k + "attention.key_length", s.head_dim);
  w.add_uint32(k + "attention.value_length", s.head_dim);
  w.add_uint32(k + "rope.dimension_count", s.n_rot);
  w.add_float32(k + "rope.freq_base", static_cast<float>(s.rope_base));
  w.add_float32(k + "attention.layer_norm_rms_epsilon", s.eps);
  if (s.rope_factor > 0) {
    w.add_string(k + "rope.scaling.type", "linear");
    w.add_float32(k + "rope.scaling.factor", static_cast<float>(s.rope_factor));
  }
  if (s.window > 0) {
    w.add_uint32(k + "attention.sliding_window", s.window);
    w.add_float32(k + "rope.freq_base_swa", static_cast<float>(s.swa_base));
    if (!s.swa_pattern.empty()) w.add_int32_array(k + "attention.sliding_window_pattern", s.swa_pattern);
  }
  if (s.attention_scale > 0) w.add_float32(k + "attention.scale", static_cast<float>(s.attention_scale));
  if (s.softcap > 0) w.add_float32(k + "final_logit_softcapping", static_cast<float>(s.softcap));

  auto tensor = [&](const std::string& name, std::vector<int64_t> dims, std::vector<float> v) {
    w.add_tensor(name, DType::F32, dims, v.data(), v.size() * 4);
  };
  auto linear = [&](const std::string& name, int n_in, int n_out) {
    tensor(name, {n_in, n_out}, r.normal(size_t(n_in) * n_out, 1.0 / std::sqrt(double(n_in))));
  };
  auto norm = [&](const std::string& name, int n) { tensor(name, {n}, r.normal(n, 0.1, 1.0)); };
  const int q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  tensor("token_embd.weight", {s.n_embd, s.n_vocab}, r.normal(size_t(s.n_embd) * s.n_vocab, 0.5));
  norm("output_norm.weight", s.n_embd);
  if (!s.tied) linear("output.weight", s.n_embd, s.n_vocab);
  if (s.rope_freqs) {
    std::vector<float> f;
    for (int i = 0; i < s.n_rot / 2; ++i) f.push_back(1.0f + 1.5f * i);
    tensor("rope_freqs.weight", {s.n_rot / 2}, f);
  }
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight", s.n_embd);
    linear(p + "attn_q.weight", s.n_embd, q);
    linear(p + "attn_k.weight", s.n_embd, kv);
    linear(p + "attn_v.weight", s.n_embd, kv);
    linear(p + "attn_output.weight", q, s.n_embd);
    if (s.biases) {
      tensor(p + "attn_q.bias", {q}, r.normal(q, 0.1));
      tensor(p + "attn_k.bias", {kv}, r.normal(kv, 0.1));
      tensor(p + "attn_v.bias", {kv}, r.normal(kv, 0.1));
      tensor(p + "attn_output.bias", {s.n_embd}, r.normal(s.n_embd, 0.1));
    }
    if (s.arch == "gemma3") {
      norm(p + "attn_q_norm.weight", s.head_dim);
      norm(p + "attn_k_norm.weight", s.head_dim);
      norm(p + "post_attention_norm.weight", s.n_embd);
      norm(p + "post_ffw_norm.weight", s.n_embd);
    }
    norm(p + "ffn_norm.weight", s.n_embd);
    linear(p + "ffn_gate.weight", s.n_embd, s.n_ff);
    linear(p + "ffn_up.weight", s.n_embd, s.n_ff);
    linear(p + "ffn_down.weight", s.n_ff, s.n_embd);
  }
  std::string path = test::temp_path(s.arch + "-reference.gguf");
  w.write(path);
  return path;
}

// ---------------------------------------------------------------- the reference

using Vec = std::vector<double>;

class Reference {
 public:
  Reference(const gguf::File& f, const Spec& s) : f_(f), s_(s) {}

  // Logits [n_tokens][n_vocab] for ids fed from position 0.
  Vec logits(const std::vector<int32_t>& ids) const {
    const int n = static_cast<int>(ids.size()), E = s_.n_embd;
    std::vector<Vec> x(n);
    const bool gemma = s_.arch == "gemma3";
    for (int t = 0; t < n; ++t) {
      x[t] = row("token_embd.weight", ids[t], E);
      if (gemma)
        for (auto& v : x[t]) v *= std::sqrt(static_cast<float>(E));
    }
    for (int l = 0; l < s_.n_layer; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      std::vector<Vec> h(n);
      for (int t = 0; t < n; ++t) h[t] = rms(x[t], vec(p + "attn_norm.weight"));
      auto att = attention(l, h);
      for (int t = 0; t < n; ++t) {
        Vec o = add_bias(matvec(p + "attn_output.weight", att[t]), p + "attn_output.bias");
        if (gemma) o = rms(o, vec(p + "post_attention_norm.weight"));
        for (int i = 0; i < E; ++i) x[t][i] += o[i];
        Vec hn = rms(x[t], vec(p + "ffn_norm.weight"));
        Vec g = matvec(p + "ffn_gate.weight", hn), u = matvec(p + "ffn_up.weight", hn);
        for (size_t i = 0; i < g.size(); ++i) {
          double a = gemma ? 0.5 * g[i] * (1 + std::tanh(std::sqrt(2 / M_PI) * (g[i] + 0.044715 * g[i] * g[i] * g[i])))
                           : g[i] / (1 + std::exp(-g[i]));
          g[i] = a * u[i];
        }
        Vec d = matvec(p + "ffn_down.weight", g);
        if (gemma) d = rms(d, vec(p + "post_ffw_norm.weight"));
        for (int i = 0; i < E; ++i) x[t][i] += d[i];
      }
    }
    Vec out;
    const std::string head = s_.tied ? "token_embd.weight" : "output.weight";
    for (int t = 0; t < n; ++t) {
      Vec logits = matvec(head, rms(x[t], vec("output_norm.weight")));
      for (auto& v : logits) {
        if (s_.softcap > 0) v = s_.softcap * std::tanh(v / s_.softcap);
        out.push_back(v);
      }
    }
    return out;
  }

 private:
  bool sliding(int l) const {
    if (s_.window == 0) return false;
    if (!s_.swa_pattern.empty()) return s_.swa_pattern[l] != 0;
    return l % 6 < 5;
  }

  std::vector<Vec> attention(int l, const std::vector<Vec>& h) const {
    const std::string p = "blk." + std::to_string(l) + ".";
    const int n = static_cast<int>(h.size()), D = s_.head_dim, H = s_.n_head, G = s_.n_head / s_.n_head_kv;
    std::vector<Vec> q(n), k(n), v(n), out(n, Vec(H * D, 0.0));
    for (int t = 0; t < n; ++t) {
      q[t] = add_bias(matvec(p + "attn_q.weight", h[t]), p + "attn_q.bias");
      k[t] = add_bias(matvec(p + "attn_k.weight", h[t]), p + "attn_k.bias");
      v[t] = add_bias(matvec(p + "attn_v.weight", h[t]), p + "attn_v.bias");
      if (s_.arch == "gemma3") {
        head_norm(q[t], vec(p + "attn_q_norm.weight"));
        head_norm(k[t], vec(p + "attn_k_norm.weight"));
      }
      rope(q[t], t, l);
      rope(k[t], t, l);
    }
    const double scale = s_.attention_scale > 0 ? static_cast<float>(s_.attention_scale) : 1.0 / std::sqrt(double(D));
    for (int i = 0; i < n; ++i)
      for (int hd = 0; hd < H; ++hd) {
        const int g = hd / G;
        Vec score(n, -INFINITY);
        double mx = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          if (sliding(l) && i - j >= s_.window) continue;
          double d = 0;
          for (int e = 0; e < D; ++e) d += q[i][hd * D + e] * k[j][g * D + e];
          score[j] = d * scale;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += score[j] == -INFINITY ? 0 : std::exp(score[j] - mx);
        for (int j = 0; j <= i; ++j) {
          if (score[j] == -INFINITY) continue;
          const double w = std::exp(score[j] - mx) / sum;
          for (int e = 0; e < D; ++e) out[i][hd * D + e] += w * v[j][g * D + e];
        }
      }
    return out;
  }

  void rope(Vec& x, int pos, int l) const {
    const bool neox = s_.arch == "gemma3";
    const int D = s_.head_dim, R = s_.n_rot;
    const double base = sliding(l) ? s_.swa_base : s_.rope_base;
    const double pscale = !sliding(l) && s_.rope_factor > 0 ? 1.0 / s_.rope_factor : 1.0;
    Vec factors = s_.rope_freqs ? vec("rope_freqs.weight") : Vec(R / 2, 1.0);
    for (size_t h = 0; h < x.size() / D; ++h)
      for (int i = 0; i < R / 2; ++i) {
        const double theta = pos * pscale * std::pow(base, -2.0 * i / R) / factors[i];
        const size_t a = h * D + (neox ? i : 2 * i), b = neox ? a + R / 2 : a + 1;
        const double x0 = x[a], x1 = x[b];
        x[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
        x[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
      }
  }

  Vec rms(const Vec& x, const Vec& w) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / x.size() + s_.eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * w[i];
    return y;
  }
  void head_norm(Vec& x, const Vec& w) const {
    const size_t D = w.size();
    for (size_t h = 0; h < x.size() / D; ++h) {
      Vec part(x.begin() + h * D, x.begin() + (h + 1) * D);
      part = rms(part, w);
      std::copy(part.begin(), part.end(), x.begin() + h * D);
    }
  }
  Vec vec(const std::string& name) const {
    const auto& t = f_.tensor(name);
    const float* d = reinterpret_cast<const float*>(t.data);
    return Vec(d, d + t.n_elements());
  }
  Vec row(const std::string& name, int r, int cols) const {
    const float* d = reinterpret_cast<const float*>(f_.tensor(name).data) + size_t(r) * cols;
    return Vec(d, d + cols);
  }
  Vec matvec(const std::string& name, const Vec& x) const {
    const auto& t = f_.tensor(name);
    const int64_t cols = t.dims[0], rows = t.dims[1];
    const float* d = reinterpret_cast<const float*>(t.data);
    Vec y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r] += double(d[r * cols + c]) * x[c];
    return y;
  }
  Vec add_bias(Vec y, const std::string& name) const {
    if (!f_.find_tensor(name)) return y;
    Vec b = vec(name);
    for (size_t i = 0; i < y.size(); ++i) y[i] += b[i];
    return y;
  }

  const gguf::File& f_;
  Spec s_;
};

// ---------------------------------------------------------------- the checks

Spec llama_spec() {
  Spec s;
  s.arch = "llama";
  s.n_embd = 64;
  s.n_head = 20;     // 5 KV heads, 4 query heads each
  s.n_head_kv = 5;
  s.head_dim = 8;    // not n_embd / n_head
  s.n_rot = 6;       // the last 2 dims of each head are not rotated
  s.n_ff = 72;
  s.n_layer = 3;
  s.rope_freqs = true;
  s.biases = true;
  s.tied = true;
  s.rope_base = 500000;
  return s;
}

Spec gemma_spec() {
  Spec s;
  s.arch = "gemma3";
  s.n_embd = 96;
  s.n_head = 3;
  s.n_head_kv = 1;
  s.head_dim = 32;
  s.n_rot = 32;
  s.n_ff = 80;
  s.n_layer = 4;
  s.tied = true;
  s.rope_base = 1000000;
  s.rope_factor = 4;
  s.window = 5;
  s.swa_pattern = {1, 0, 1, 1};
  s.swa_base = 10000;
  s.attention_scale = 0.15;
  s.softcap = 12;
  s.eps = 1e-6f;
  return s;
}

std::vector<int32_t> some_ids(int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

class TransformerReference : public ::testing::TestWithParam<Spec> {};

TEST_P(TransformerReference, MatchesPlainDoublePrecisionForward) {
  const Spec s = GetParam();
  const std::string path = write_model(s, 77);
  auto ids = some_ids(41, s.n_vocab);
  auto m = load_test_model(path, DType::F32, 16);
  const Vec want = Reference(*m.file, s).logits(ids);
  std::vector<float> want_f(want.begin(), want.end());
  for (const std::vector<int>& pieces : {std::vector<int>{41}, std::vector<int>{1}, std::vector<int>{3, 8, 1}}) {
    auto got = logits_in_pieces(m, *m.model->new_state(48), ids, pieces);
    const float diff = max_abs_diff(got, want_f);
    if (pieces.size() == 1 && pieces[0] == 41)
      std::cout << s.arch << ": max |flatline - double reference| = " << diff << "\n";
    EXPECT_LT(diff, 2e-4f) << s.arch << " pieces starting " << pieces[0];
  }
  // Every instruction set the CPU has gives the same answer.
  const Isa saved = active_isa();
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    auto got = logits_in_pieces(m, *m.model->new_state(48), ids, {7});
    EXPECT_LT(max_abs_diff(got, want_f), 2e-4f) << s.arch << " with " << isa_name(isa);
  }
  set_active_isa(saved);
  // The default F16 cache stays close; so does Q8_0 where the head dim allows it.
  auto f16 = load_test_model(path, DType::F16, 16);
  auto got16 = logits_in_pieces(f16, *f16.model->new_state(48), ids, {41});
  EXPECT_LT(max_abs_diff(got16, want_f), 2e-2f);
  if (s.head_dim % 32 == 0) {
    auto q8 = load_test_model(path, DType::Q8_0, 16);
    auto got8 = logits_in_pieces(q8, *q8.model->new_state(48), ids, {41});
    EXPECT_LT(max_abs_diff(got8, want_f), 0.15f);
  }
}

INSTANTIATE_TEST_SUITE_P(Random, TransformerReference, ::testing::Values(llama_spec(), gemma_spec()),
                         [](const auto& info) { return info.param.arch; });

TEST(TransformerReferenceLoad, RejectsBrokenFiles) {
  Spec s = llama_spec();
  const std::string good = write_model(s, 5);
  auto expect_error = [](const std::string& path, const std::string& fragment) {
    try {
      load_test_model(path);
      ADD_FAILURE() << "expected an error mentioning " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  // Wrong shape: a file whose metadata claims more KV heads than attn_k holds.
  auto file = gguf::File::open(good);
  gguf::Writer w;
  for (const auto& [key, value] : file.metadata())
    if (key == "llama.attention.head_count_kv") w.add_uint32(key, 10);
    else w.add_value(key, value);
  for (const auto& t : file.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  const std::string bad_shape = test::temp_path("bad-shape.gguf");
  w.write(bad_shape);
  expect_error(bad_shape, "blk.0.attn_k.weight: expected shape {64, 80}, found {64, 40}");
  // Missing tensor.
  gguf::Writer w2;
  for (const auto& [key, value] : file.metadata()) w2.add_value(key, value);
  for (const auto& t : file.tensors())
    if (t.name != "blk.1.ffn_up.weight") w2.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  const std::string missing = test::temp_path("missing.gguf");
  w2.write(missing);
  expect_error(missing, "missing tensor blk.1.ffn_up.weight");
  // Head counts that do not group.
  gguf::Writer w3;
  for (const auto& [key, value] : file.metadata())
    if (key == "llama.attention.head_count_kv") w3.add_uint32(key, 3);
    else w3.add_value(key, value);
  for (const auto& t : file.tensors()) w3.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  const std::string ungrouped = test::temp_path("ungrouped.gguf");
  w3.write(ungrouped);
  expect_error(ungrouped, "20 heads cannot share 3 KV heads");
}

}  // namespace
}  // namespace flatline
