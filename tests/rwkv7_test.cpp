// RWKV-7 against outside truth: rwkv.cpp's and llama.cpp's logits for the
// tiny trained model, an independent float64 NumPy reference over 49
// positions, and a slow double-precision reference written here from the
// BlinkDL equations (RWKV-v7/rwkv_v7_numpy.py), which shares no code with the model.
// The state contract (token by token, clone, save/load, bad input) is in
// model_contract_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "util/error.h"

#include "gguf/gguf.h"
#include "models/model.h"
#include "tensor/kernels.h"
#include "model_test_util.h"
#include "test_support.h"

namespace flatline {
namespace {

const char* kTinyModel = "tiny-rwkv7-834K-f32.gguf";

test::TestModel load(const std::string& path, int threads = 2, int64_t max_batch = 64) {
  return test::load_test_model(path, DType::F32, max_batch, false, threads);
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<float> run_all(test::TestModel& m, const std::vector<int32_t>& ids) {
  auto st = m.new_state(0);
  std::vector<float> logits(ids.size() * m.info().n_vocab);
  m.forward(*st, ids, LogitsMode::All, logits.data());
  return logits;
}

// ---------------------------------------------------------------------------
// Slow reference, written from BlinkDL's RWKV-v7 numpy demo equations, in
// double precision, token by token. Reads tensors straight from the file.
class SlowRwkv7 {
 public:
  explicit SlowRwkv7(const gguf::File& f) : f_(f) {
    D = f.get_int("rwkv7.embedding_length");
    L = f.get_int("rwkv7.block_count");
    N = f.get_int("rwkv7.wkv.head_size");
    H = D / N;
    V = f.tensor("token_embd.weight").rows();
    shift_.assign(L * 2 * D, 0.0);
    S_.assign(L * H * N * N, 0.0);
  }

  std::vector<double> step(int token) {
    std::vector<double> x = row("token_embd.weight", token);
    x = ln(x, "token_embd_norm");
    std::vector<double> v_first;
    for (int64_t l = 0; l < L; ++l) {
      std::string p = "blk." + std::to_string(l) + ".";
      // time mix
      std::vector<double> xa = ln(x, p + "attn_norm");
      double* last = &shift_[l * 2 * D];
      std::vector<double> lerp = vec(p + "time_mix_lerp_fused.weight");
      std::vector<std::vector<double>> m(6, std::vector<double>(D));
      for (int i = 0; i < 6; ++i)
        for (int64_t d = 0; d < D; ++d) m[i][d] = xa[d] + (last[d] - xa[d]) * lerp[i * D + d];
      for (int64_t d = 0; d < D; ++d) last[d] = xa[d];
      auto r = mv(p + "time_mix_receptance.weight", m[0]);
      auto w1 = mv(p + "time_mix_w1.weight", m[1]);
      for (auto& z : w1) z = std::tanh(z);
      auto w = mv(p + "time_mix_w2.weight", w1);
      auto w0 = vec(p + "time_mix_w0.weight");
      // BlinkDL: w = exp(-exp(-softplus(-(w0 + w)) - 0.5))
      for (int64_t d = 0; d < D; ++d) {
        double z = w0[d] + w[d];
        double softplus = std::log1p(std::exp(-z));
        w[d] = std::exp(-std::exp(-softplus - 0.5));
      }
      auto k = mv(p + "time_mix_key.weight", m[2]);
      auto v = mv(p + "time_mix_value.weight", m[3]);
      auto a = mv(p + "time_mix_a2.weight", mv(p + "time_mix_a1.weight", m[4]));
      auto a0 = vec(p + "time_mix_a0.weight");
      for (int64_t d = 0; d < D; ++d) a[d] = 1.0 / (1.0 + std::exp(-(a0[d] + a[d])));
      if (l == 0) {
        v_first = v;
      } else {
        auto vm = mv(p + "time_mix_v2.weight", mv(p + "time_mix_v1.weight", m[3]));
        auto v0 = vec(p + "time_mix_v0.weight");
        for (int64_t d = 0; d < D; ++d) v[d] += (v_first[d] - v[d]) / (1.0 + std::exp(-(v0[d] + vm[d])));
      }
      auto g1 = mv(p + "time_mix_g1.weight", m[5]);
      for (auto& z : g1) z = 1.0 / (1.0 + std::exp(-z));
      auto g = mv(p + "time_mix_g2.weight", g1);
      auto k_k = vec(p + "time_mix_k_k.weight");
      auto k_a = vec(p + "time_mix_k_a.weight");
      auto r_k = vec(p + "time_mix_r_k.weight");
      std::vector<double> kk(D);
      for (int64_t d = 0; d < D; ++d) kk[d] = k[d] * k_k[d];
      for (int64_t h = 0; h < H; ++h) {
        double nrm = 0;
        for (int64_t j = 0; j < N; ++j) nrm += kk[h * N + j] * kk[h * N + j];
        nrm = std::max(std::sqrt(nrm), 1e-12);
        for (int64_t j = 0; j < N; ++j) kk[h * N + j] /= nrm;
      }
      for (int64_t d = 0; d < D; ++d) k[d] = k[d] * (1 + (a[d] - 1) * k_a[d]);
      std::vector<double> y(D);
      for (int64_t h = 0; h < H; ++h) {
        double* S = &S_[(l * H + h) * N * N];
        // S = S*w^T - S@kk*(kk*a)^T + v*k^T  (BlinkDL form)
        std::vector<double> s_kk(N, 0.0);
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) s_kk[i] += S[i * N + j] * kk[h * N + j];
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j)
            S[i * N + j] = S[i * N + j] * w[h * N + j] - s_kk[i] * kk[h * N + j] * a[h * N + j] +
                           v[h * N + i] * k[h * N + j];
        for (int64_t i = 0; i < N; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < N; ++j) acc += S[i * N + j] * r[h * N + j];
          y[h * N + i] = acc;
        }
      }
      auto gn_w = vec(p + "time_mix_ln.weight");
      auto gn_b = vec(p + "time_mix_ln.bias");
      for (int64_t h = 0; h < H; ++h) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < N; ++j) mean += y[h * N + j];
        mean /= N;
        for (int64_t j = 0; j < N; ++j) var += (y[h * N + j] - mean) * (y[h * N + j] - mean);
        var /= N;
        double bonus = 0;
        for (int64_t j = 0; j < N; ++j) bonus += r[h * N + j] * k[h * N + j] * r_k[h * N + j];
        for (int64_t j = 0; j < N; ++j) {
          int64_t d = h * N + j;
          y[d] = (y[d] - mean) / std::sqrt(var + 64e-5) * gn_w[d] + gn_b[d] + bonus * v[d];
          y[d] *= g[d];
        }
      }
      auto att = mv(p + "time_mix_output.weight", y);
      for (int64_t d = 0; d < D; ++d) x[d] += att[d];
      // channel mix
      std::vector<double> xf = ln(x, p + "attn_norm_2");
      double* lastf = &shift_[l * 2 * D + D];
      auto cl = vec(p + "channel_mix_lerp_k.weight");
      std::vector<double> xk(D);
      for (int64_t d = 0; d < D; ++d) xk[d] = xf[d] + (lastf[d] - xf[d]) * cl[d];
      for (int64_t d = 0; d < D; ++d) lastf[d] = xf[d];
      auto hid = mv(p + "channel_mix_key.weight", xk);
      for (auto& z : hid) z = z > 0 ? z * z : 0;
      auto ffn = mv(p + "channel_mix_value.weight", hid);
      for (int64_t d = 0; d < D; ++d) x[d] += ffn[d];
    }
    return mv("output.weight", ln(x, "output_norm"));
  }

  int64_t D, L, N, H, V;

 private:
  std::vector<double> vec(const std::string& name) const {
    const auto& t = f_.tensor(name);
    std::vector<float> tmp(t.n_elements());
    dequantize_row(t.type, t.data, tmp.data(), t.n_elements());
    return std::vector<double>(tmp.begin(), tmp.end());
  }
  std::vector<double> row(const std::string& name, int64_t r) const {
    const auto& t = f_.tensor(name);
    std::vector<float> tmp(t.cols());
    dequantize_row(t.type, t.data + r * row_bytes(t.type, t.cols()), tmp.data(), t.cols());
    return std::vector<double>(tmp.begin(), tmp.end());
  }
  std::vector<double> mv(const std::string& name, const std::vector<double>& x) const {
    const auto& t = f_.tensor(name);
    std::vector<double> y(t.rows());
    for (int64_t r = 0; r < t.rows(); ++r) {
      auto w = row(name, r);
      double acc = 0;
      for (int64_t c = 0; c < t.cols(); ++c) acc += w[c] * x[c];
      y[r] = acc;
    }
    return y;
  }
  std::vector<double> ln(const std::vector<double>& x, const std::string& prefix) const {
    auto w = vec(prefix + ".weight");
    auto b = vec(prefix + ".bias");
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= x.size();
    for (double v : x) var += (v - mean) * (v - mean);
    var /= x.size();
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i];
    return y;
  }
  const gguf::File& f_;
  std::vector<double> shift_, S_;
};

// ---------------------------------------------------------------------------

TEST(Rwkv7, MatchesRwkvCppAndLlamaCppLogits) {
  REQUIRE_SHARED_MODEL(path, kTinyModel);
  REQUIRE_SHARED_MODEL(expected_path, "tiny-rwkv7-834K.expected-logits.f32.bin");
  REQUIRE_SHARED_MODEL(llama_path, "tiny-rwkv7-834K.llamacpp-logits.f32.bin");
  auto m = load(path);
  auto st = m.model->new_state(0);
  std::vector<int32_t> ids = {34, 105, 110};
  std::vector<float> logits(256);
  m.forward(*st, ids, LogitsMode::Last, logits.data());
  auto expected = test::read_f32_file(expected_path);
  auto llama = test::read_f32_file(llama_path);
  ASSERT_EQ(expected.size(), 256u);
  float d_rwkvcpp = max_abs_diff(logits.data(), expected.data(), 256);
  float d_llamacpp = max_abs_diff(logits.data(), llama.data(), 256);
  RecordProperty("max_abs_diff_rwkv_cpp", std::to_string(d_rwkvcpp));
  RecordProperty("max_abs_diff_llama_cpp", std::to_string(d_llamacpp));
  std::printf("  max |flatline - rwkv.cpp| = %.3g, max |flatline - llama.cpp| = %.3g\n", d_rwkvcpp, d_llamacpp);
  EXPECT_LE(d_rwkvcpp, 1e-4f);
  EXPECT_LE(d_llamacpp, 1e-4f);
  EXPECT_EQ(std::max_element(logits.begin(), logits.end()) - logits.begin(), 32);
}

std::vector<int32_t> seq49_ids() {
  std::string text = "Once upon a time, there was a little girl who \"in";
  return std::vector<int32_t>(text.begin(), text.end());
}

TEST(Rwkv7, MatchesNumpyReferenceAtEveryPosition) {
  REQUIRE_SHARED_MODEL(path, kTinyModel);
  REQUIRE_SHARED_MODEL(ref_path, "tiny-rwkv7-834K.seq49.numpy-ref-logits.f32.bin");
  auto ids = seq49_ids();
  ASSERT_EQ(ids.size(), 49u);
  auto ref = test::read_f32_file(ref_path);
  ASSERT_EQ(ref.size(), 49u * 256);
  // Through the sequence path with chunks that do not divide 49.
  auto m = load(path, 2, 16);
  auto logits = run_all(m, ids);
  float d = max_abs_diff(logits.data(), ref.data(), ref.size());
  std::printf("  max |flatline - numpy| over 49 positions = %.3g\n", d);
  EXPECT_LE(d, 1e-4f);
}

TEST(Rwkv7, MatchesSlowDoubleReference) {
  REQUIRE_SHARED_MODEL(path, kTinyModel);
  auto m = load(path);
  SlowRwkv7 ref(m.model->file());
  auto ids = seq49_ids();
  ids.resize(20);
  auto logits = run_all(m, ids);
  float worst = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    auto r = ref.step(ids[t]);
    for (int v = 0; v < 256; ++v) worst = std::max(worst, static_cast<float>(std::fabs(r[v] - logits[t * 256 + v])));
  }
  EXPECT_LE(worst, 1e-4f);
}

TEST(Rwkv7, LongSequenceStaysFinite) {
  REQUIRE_SHARED_MODEL(path, kTinyModel);
  auto m = load(path, 2, 256);
  std::mt19937 rng(7);
  std::vector<int32_t> ids(4096);
  for (auto& id : ids) id = static_cast<int32_t>(32 + rng() % 95);
  auto st = m.model->new_state(0);
  std::vector<float> logits(ids.size() * 256);
  m.forward(*st, ids, LogitsMode::All, logits.data());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace flatline
