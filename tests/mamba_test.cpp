// Mamba-1 and Mamba-2 against outside truth: llama.cpp's logits for the
// random-weight fixtures in ../shared/models/random (batched and token by
// token), a slow double-precision forward written here from the equations
// (state-spaces/mamba `mamba_simple.py` / `mamba2.py` step()), run on models
// of other shapes written by the random-GGUF writer, and the real trained
// Mamba-1 block of ../shared/models/mambalite-micro-kws driven through
// flatline's Mamba-1 mixer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "model_test_util.h"
#include "models/blocks/mamba.h"
#include "models/synthetic.h"
#include "test_support.h"

namespace flatline {
namespace {

using test::logits_in_pieces;
using test::max_abs_diff;
using test::standard_ids;

// ---------------------------------------------------------------------------
// Slow reference, float64, one token at a time, tensors read from the file.
class SlowMamba {
 public:
  explicit SlowMamba(const gguf::File& f) : f_(f) {
    arch_ = f.architecture();
    v2_ = arch_ == "mamba2";
    const std::string k = arch_ + ".";
    E = f.get_int(k + "embedding_length");
    L = f.get_int(k + "block_count");
    Di = f.get_int(k + "ssm.inner_size");
    N = f.get_int(k + "ssm.state_size");
    K = f.get_int(k + "ssm.conv_kernel");
    R = f.get_int(k + "ssm.time_step_rank");  // Mamba-2: heads
    G = v2_ ? f.get_int(k + "ssm.group_count") : 1;
    eps = f.get_float(k + "attention.layer_norm_rms_epsilon", 1e-5);
    V = f.tensor("token_embd.weight").rows();
    conv_ch = v2_ ? Di + 2 * G * N : Di;
    conv.assign(L, std::vector<double>((K - 1) * conv_ch, 0.0));
    ssm.assign(L, std::vector<double>(Di * N, 0.0));  // [channel][state] (Mamba-2: [head*P + p][n])
  }

  std::vector<double> step(int32_t token) {
    std::vector<double> x = row("token_embd.weight", token, E);
    for (int64_t l = 0; l < L; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      std::vector<double> h = rms(x, vec(p + "attn_norm.weight"));
      std::vector<double> out = v2_ ? mixer2(l, p, h) : mixer1(l, p, h);
      for (int64_t i = 0; i < E; ++i) x[i] += out[i];
    }
    x = rms(x, vec("output_norm.weight"));
    const std::string head = f_.find_tensor("output.weight") ? "output.weight" : "token_embd.weight";
    return matvec(head, x);
  }

 private:
  std::vector<double> mixer1(int64_t l, const std::string& p, const std::vector<double>& h) {
    std::vector<double> xz = matvec(p + "ssm_in.weight", h);
    std::vector<double> x(xz.begin(), xz.begin() + Di), z(xz.begin() + Di, xz.end());
    x = convolve(l, p, x);
    std::vector<double> dbc = matvec(p + "ssm_x.weight", x);
    std::vector<double> dt_low(dbc.begin(), dbc.begin() + R);
    std::vector<double> B(dbc.begin() + R, dbc.begin() + R + N), C(dbc.begin() + R + N, dbc.end());
    if (f_.find_tensor(p + "ssm_dt_norm.weight")) {
      dt_low = rms(dt_low, vec(p + "ssm_dt_norm.weight"));
      B = rms(B, vec(p + "ssm_b_norm.weight"));
      C = rms(C, vec(p + "ssm_c_norm.weight"));
    }
    std::vector<double> dt = matvec(p + "ssm_dt.weight", dt_low);
    const auto dt_b = vec(p + "ssm_dt.bias"), A = vec(p + "ssm_a"), D = vec(p + "ssm_d");
    std::vector<double> y(Di);
    for (int64_t c = 0; c < Di; ++c) {
      const double d = softplus(dt[c] + dt_b[c]);
      double acc = D[c] * x[c];
      for (int64_t s = 0; s < N; ++s) {
        double& st = ssm[l][c * N + s];
        st = st * std::exp(d * A[c * N + s]) + d * B[s] * x[c];
        acc += st * C[s];
      }
      y[c] = acc * silu(z[c]);
    }
    return matvec(p + "ssm_out.weight", y);
  }

  std::vector<double> mixer2(int64_t l, const std::string& p, const std::vector<double>& h) {
    const int64_t H = R, P = Di / H;
    std::vector<double> proj = matvec(p + "ssm_in.weight", h);
    std::vector<double> z(proj.begin(), proj.begin() + Di);
    std::vector<double> xbc(proj.begin() + Di, proj.begin() + Di + conv_ch);
    std::vector<double> dt(proj.begin() + Di + conv_ch, proj.end());
    xbc = convolve(l, p, xbc);
    const auto dt_b = vec(p + "ssm_dt.bias"), A = vec(p + "ssm_a"), D = vec(p + "ssm_d"), nw = vec(p + "ssm_norm.weight");
    std::vector<double> y(Di);
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t g = hd / (H / G);
      const double d = softplus(dt[hd] + dt_b[hd]), dA = std::exp(d * A[hd]);
      for (int64_t q = 0; q < P; ++q) {
        const int64_t c = hd * P + q;
        const double xv = xbc[c];
        double acc = D[hd] * xv;
        for (int64_t s = 0; s < N; ++s) {
          double& st = ssm[l][c * N + s];
          st = st * dA + d * xbc[Di + g * N + s] * xv;
          acc += st * xbc[Di + G * N + g * N + s];
        }
        y[c] = acc * silu(z[c]);
      }
    }
    const int64_t gd = Di / G;
    for (int64_t g = 0; g < G; ++g) {
      double ss = 0;
      for (int64_t i = 0; i < gd; ++i) ss += y[g * gd + i] * y[g * gd + i];
      const double inv = 1.0 / std::sqrt(ss / gd + eps);
      for (int64_t i = 0; i < gd; ++i) y[g * gd + i] *= inv * nw[g * gd + i];
    }
    return matvec(p + "ssm_out.weight", y);
  }

  // Causal depthwise conv1d + bias + SiLU, window kept per layer.
  std::vector<double> convolve(int64_t l, const std::string& p, const std::vector<double>& u) {
    const auto w = vec(p + "ssm_conv1d.weight");  // [channel][k]
    const auto b = f_.find_tensor(p + "ssm_conv1d.bias") ? vec(p + "ssm_conv1d.bias") : std::vector<double>(conv_ch, 0.0);
    std::vector<double>& win = conv[l];  // [K-1][channel], oldest first
    std::vector<double> out(conv_ch);
    for (int64_t c = 0; c < conv_ch; ++c) {
      double acc = b[c] + w[c * K + K - 1] * u[c];
      for (int64_t k = 0; k + 1 < K; ++k) acc += w[c * K + k] * win[k * conv_ch + c];
      out[c] = silu(acc);
    }
    for (int64_t k = 0; k + 2 < K; ++k)
      for (int64_t c = 0; c < conv_ch; ++c) win[k * conv_ch + c] = win[(k + 1) * conv_ch + c];
    if (K > 1)
      for (int64_t c = 0; c < conv_ch; ++c) win[(K - 2) * conv_ch + c] = u[c];
    return out;
  }

  static double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
  static double silu(double x) { return x / (1 + std::exp(-x)); }
  std::vector<double> rms(const std::vector<double>& x, const std::vector<double>& w) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
    return y;
  }
  std::vector<double> vec(const std::string& name) const {
    const auto& t = f_.tensor(name);
    std::vector<double> v(t.n_elements());
    const float* d = reinterpret_cast<const float*>(t.data);
    for (size_t i = 0; i < v.size(); ++i) v[i] = d[i];
    return v;
  }
  std::vector<double> row(const std::string& name, int64_t r, int64_t n) const {
    const float* d = reinterpret_cast<const float*>(f_.tensor(name).data) + r * n;
    return std::vector<double>(d, d + n);
  }
  std::vector<double> matvec(const std::string& name, const std::vector<double>& x) const {
    const auto& t = f_.tensor(name);
    const int64_t cols = t.cols(), rows = t.rows();
    const float* d = reinterpret_cast<const float*>(t.data);
    std::vector<double> y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r] += d[r * cols + c] * x[c];
    return y;
  }

  const gguf::File& f_;
  std::string arch_;
  bool v2_ = false;
  int64_t E = 0, L = 0, Di = 0, N = 0, K = 0, R = 0, G = 1, V = 0, conv_ch = 0;
  double eps = 1e-5;
  std::vector<std::vector<double>> conv, ssm;
};

// ---------------------------------------------------------------------------

struct Fixture {
  const char* gguf;
  const char* logits;
};

void PrintTo(const Fixture& f, std::ostream* os) { *os << f.gguf; }

class MambaFixture : public ::testing::TestWithParam<Fixture> {};

TEST_P(MambaFixture, BothPathsMatchLlamaCpp) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  REQUIRE_SHARED_MODEL(ref_path, std::string("random/") + GetParam().logits);
  auto ref = test::read_f32_file(ref_path);
  auto m = test::load_test_model(path, DType::F32, 256, false, 2);
  auto batch = logits_in_pieces(m, *m.new_state(), standard_ids(), {64});
  auto one = logits_in_pieces(m, *m.new_state(), standard_ids(), {1});
  const float db = max_abs_diff(batch, ref), d1 = max_abs_diff(one, ref);
  std::cout << GetParam().gguf << ": max |flatline - llama.cpp| over 64 x 512: prompt path " << db << ", token path " << d1
            << "\n";
  EXPECT_LT(db, 1e-3f);
  EXPECT_LT(d1, 1e-3f);
}

TEST_P(MambaFixture, SlowReferenceAgreesOnTheFixture) {
  REQUIRE_SHARED_MODEL(path, std::string("random/") + GetParam().gguf);
  auto m = test::load_test_model(path, DType::F32, 256, false, 1);
  SlowMamba ref(*m.file);
  auto ids = standard_ids(24);
  auto got = logits_in_pieces(m, *m.new_state(), ids, {24});
  double worst = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    auto r = ref.step(ids[t]);
    for (int64_t v = 0; v < m.info().n_vocab; ++v) worst = std::max(worst, std::fabs(r[v] - got[t * m.info().n_vocab + v]));
  }
  EXPECT_LT(worst, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Random, MambaFixture, ::testing::Values(Fixture{"mamba.gguf", "mamba.logits.f32"},
                                                           Fixture{"mamba2.gguf", "mamba2.logits.f32"}),
                         [](const auto& info) { return std::string(info.param.gguf).substr(0, std::string(info.param.gguf).find('.')); });

// Shapes the fixtures do not have, against the slow reference (no ../shared needed).
struct Shape {
  const char* name;
  SyntheticModel model;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

SyntheticModel shape(const std::string& arch, int64_t d_state, int64_t d_conv, int64_t dt_rank_or_head_dim,
                     int64_t groups, uint64_t seed) {
  SyntheticModel m;
  m.arch = arch;
  m.n_embd = 48;
  m.n_layer = 3;
  m.n_vocab = 256;
  m.d_inner = 96;
  m.d_state = d_state;
  m.d_conv = d_conv;
  m.dt_rank = dt_rank_or_head_dim;
  m.ssm_head_dim = dt_rank_or_head_dim;
  m.n_group = groups;
  m.seed = seed;
  m.tied_output = seed % 2 == 0;
  return m;
}

class MambaShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(MambaShapes, MatchTheSlowReferenceThroughBothPaths) {
  const std::string path = test::temp_path(std::string("mamba-shape-") + GetParam().name + ".gguf");
  write_synthetic_model(path, GetParam().model);
  auto m = test::load_test_model(path, DType::F32, 5, false, 2);  // max_batch 5: several chunks
  SlowMamba ref(*m.file);
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back((37 * i + 11) % 256);
  auto batch = logits_in_pieces(m, *m.new_state(), ids, {20});
  auto pieces = logits_in_pieces(m, *m.new_state(), ids, {1, 3});
  double worst = 0, peak = 1;
  const int64_t V = m.info().n_vocab;
  for (size_t t = 0; t < ids.size(); ++t) {
    auto r = ref.step(ids[t]);
    for (int64_t v = 0; v < V; ++v) {
      worst = std::max(worst, std::fabs(r[v] - batch[t * V + v]));
      peak = std::max(peak, std::fabs(r[v]));
    }
  }
  EXPECT_LT(worst, 1e-4 * peak) << "peak |logit| " << peak;
  EXPECT_LT(max_abs_diff(pieces, batch), 1e-4f * static_cast<float>(peak));
}

INSTANTIATE_TEST_SUITE_P(Synthetic, MambaShapes,
                         ::testing::Values(Shape{"mamba_state8_conv2", shape("mamba", 8, 2, 6, 1, 3)},
                                           Shape{"mamba_state16_conv4", shape("mamba", 16, 4, 3, 1, 4)},
                                           Shape{"mamba2_one_group", shape("mamba2", 16, 4, 32, 1, 5)},
                                           Shape{"mamba2_three_groups_head16", shape("mamba2", 8, 3, 16, 3, 6)},
                                           Shape{"mamba2_six_groups_state32", shape("mamba2", 32, 4, 16, 6, 7)}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// The real trained block: Linear(40 -> 64), Mamba(d_model 64, d_inner 128,
// d_state 16, d_conv 4, dt_rank 4), mean over time, Linear(64 -> 10).

struct SafeTensors {
  std::vector<uint8_t> bytes;
  nlohmann::json header;
  size_t data_at = 0;
  std::vector<float> get(const std::string& name) const {
    const auto& t = header.at(name);
    EXPECT_EQ(t.at("dtype"), "F32");
    const size_t b = t.at("data_offsets")[0], e = t.at("data_offsets")[1];
    std::vector<float> v((e - b) / 4);
    std::memcpy(v.data(), bytes.data() + data_at + b, e - b);
    return v;
  }
};

SafeTensors read_safetensors(const std::string& path) {
  SafeTensors s;
  s.bytes = test::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, s.bytes.data(), 8);
  s.header = nlohmann::json::parse(std::string(s.bytes.begin() + 8, s.bytes.begin() + 8 + n));
  s.data_at = 8 + n;
  return s;
}

Matrix f32_matrix(const std::vector<float>& w, int64_t rows, int64_t cols) {
  Matrix m;
  m.type = DType::F32;
  m.rows = rows;
  m.cols = cols;
  m.data = reinterpret_cast<const uint8_t*>(w.data());
  m.row_stride = cols * sizeof(float);
  return m;
}

TEST(MambaTrainedBlock, KeywordSpotterReproducesItsSampleOutputs) {
  REQUIRE_SHARED_MODEL(wpath, "mambalite-micro-kws/mambakws-any-10.safetensors");
  REQUIRE_SHARED_MODEL(iopath, "mambalite-micro-kws/mambakws-any-10.sample_io.safetensors");
  const SafeTensors w = read_safetensors(wpath), io = read_safetensors(iopath);
  const int64_t T = 100, F = 40, E = 64, Di = 128, N = 16, K = 4, R = 4;
  Mamba1Config c{Di, N, K, R, false};
  const auto in_w = w.get("mamba.in_proj.weight"), x_w = w.get("mamba.x_proj.weight"),
             dt_w = w.get("mamba.dt_proj.weight"), out_w = w.get("mamba.out_proj.weight");
  Mamba1Weights m;
  m.in = f32_matrix(in_w, 2 * Di, E);
  m.x_proj = f32_matrix(x_w, R + 2 * N, Di);
  m.dt_proj = f32_matrix(dt_w, Di, R);
  m.out = f32_matrix(out_w, E, Di);
  const auto conv = w.get("mamba.conv1d.weight");  // [Di][1][K]
  m.conv_taps.resize(K * Di);
  for (int64_t ch = 0; ch < Di; ++ch)
    for (int64_t k = 0; k < K; ++k) m.conv_taps[k * Di + ch] = conv[ch * K + k];
  m.conv_bias = w.get("mamba.conv1d.bias");
  m.dt_bias = w.get("mamba.dt_proj.bias");
  m.D = w.get("mamba.D");
  const auto a_log = w.get("mamba.A_log");  // [Di][N]
  m.A.resize(N * Di);
  for (int64_t ch = 0; ch < Di; ++ch)
    for (int64_t s = 0; s < N; ++s) m.A[s * Di + ch] = -std::exp(a_log[ch * N + s]);

  // linear_in, as the classifier computes it.
  const auto input = io.get("input"), lin_w = w.get("linear_in.weight"), lin_b = w.get("linear_in.bias");
  std::vector<float> xs(T * E);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < E; ++o) {
      double acc = lin_b[o];
      for (int64_t i = 0; i < F; ++i) acc += lin_w[o * F + i] * input[t * F + i];
      xs[t * E + o] = static_cast<float>(acc);
    }
  EXPECT_LT(max_abs_diff(xs, io.get("linear_in_out")), 1e-4f);

  // The mixer, through the chunk machinery in two chunks (60 + 40 tokens).
  StateLayout layout;
  layout.recurrent_slabs = mamba1_slabs(c);
  ModelState state(layout, 0);
  auto pool = test::test_pool(2);
  Scratch scratch;
  AttentionScratch att;
  std::vector<float> out(T * E);
  for (int64_t t0 : {0, 60}) {
    const int64_t n = t0 == 0 ? 60 : 40;
    std::vector<int32_t> tokens(n, 0);
    SequenceInput seq{&state, tokens, LogitsMode::None, nullptr, nullptr};
    ForwardArgs args;
    args.sequences = std::span<const SequenceInput>(&seq, 1);
    Segment s{0, 0, n, 0, t0, true};
    ChunkContext ctx{args, std::span<const Segment>(&s, 1), n, *pool, scratch, att};
    mamba1_forward(ctx, c, m, 0, 1e-5f, xs.data() + t0 * E, out.data() + t0 * E);
  }
  const auto want = io.get("mamba_out");
  const float d = max_abs_diff(out, want);
  std::cout << "trained Mamba-1 block: max |flatline - reference| over 100 x 64 outputs = " << d << "\n";
  EXPECT_LT(d, 1e-3f);

  // Mean over time, then the classifier: the same class as the reference.
  std::vector<double> pooled(E, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < E; ++i) pooled[i] += out[t * E + i] / T;
  const auto cls_w = w.get("classifier.weight"), cls_b = w.get("classifier.bias"), logits = io.get("logits");
  int best = 0;
  double best_v = -1e30, worst = 0;
  for (int k = 0; k < 10; ++k) {
    double acc = cls_b[k];
    for (int64_t i = 0; i < E; ++i) acc += cls_w[k * E + i] * pooled[i];
    worst = std::max(worst, std::fabs(acc - logits[k]));
    if (acc > best_v) best_v = acc, best = k;
  }
  EXPECT_LT(worst, 1e-3);
  EXPECT_EQ(best, 9);
}

}  // namespace
}  // namespace flatline
