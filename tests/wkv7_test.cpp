// The WKV-7 kernels (scalar, AVX2, AVX-512) against the recurrence written
// plainly in double precision with the value-major state of FACTS.md §2.4.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensor/isa.h"
#include "tensor/wkv7.h"

namespace flatline {
namespace {

struct Data {
  int64_t n, tokens, stride;
  std::vector<float> r, w, k, v, kk, a;
};

Data random_data(int64_t n, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1), decay(0.5f, 0.999f), rate(0, 1);
  Data d{n, tokens, n + 16, {}, {}, {}, {}, {}, {}};  // stride > n: tokens are not packed
  const size_t size = static_cast<size_t>(d.stride * tokens);
  for (auto* vec : {&d.r, &d.k, &d.v}) vec->resize(size), std::generate(vec->begin(), vec->end(), [&] { return u(rng); });
  d.w.resize(size), std::generate(d.w.begin(), d.w.end(), [&] { return decay(rng); });
  d.a.resize(size), std::generate(d.a.begin(), d.a.end(), [&] { return rate(rng); });
  d.kk.resize(size);
  for (int64_t t = 0; t < tokens; ++t) {  // unit-length kk per token, as the model feeds it
    double norm = 0;
    for (int64_t j = 0; j < n; ++j) norm += std::pow(d.kk[t * d.stride + j] = u(rng), 2);
    for (int64_t j = 0; j < n; ++j) d.kk[t * d.stride + j] /= static_cast<float>(std::sqrt(norm));
  }
  return d;
}

// S[i][j], i = value row: sa_i = -sum_j kk_j S_ij; S_ij = S_ij w_j + v_i k_j + sa_i kk_j a_j; y_i = sum_j S_ij r_j
std::vector<double> reference(const Data& d, std::vector<double>& S) {
  std::vector<double> y(static_cast<size_t>(d.stride * d.tokens), 0.0);
  const int64_t n = d.n;
  for (int64_t t = 0; t < d.tokens; ++t) {
    const int64_t o = t * d.stride;
    for (int64_t i = 0; i < n; ++i) {
      double sa = 0;
      for (int64_t j = 0; j < n; ++j) sa -= d.kk[o + j] * S[i * n + j];
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) {
        double& s = S[i * n + j];
        s = s * d.w[o + j] + double(d.v[o + i]) * d.k[o + j] + sa * d.kk[o + j] * d.a[o + j];
        acc += s * d.r[o + j];
      }
      y[o + i] = acc;
    }
  }
  return y;
}

TEST(Wkv7Kernel, EveryIsaMatchesThePlainRecurrence) {
  for (int64_t n : {16, 32, 64}) {
    Data d = random_data(n, 37, static_cast<uint32_t>(n));
    std::vector<double> S_ref(static_cast<size_t>(n * n), 0.0);
    auto y_ref = reference(d, S_ref);
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> S(static_cast<size_t>(n * n), 0.0f), y(d.r.size(), 0.0f);
      Wkv7Inputs in{d.r.data(), d.w.data(), d.k.data(), d.v.data(), d.kk.data(), d.a.data(), y.data(), d.stride};
      // In two calls (state carried over) to cover chunked prompts.
      wkv7_head(S.data(), n, 20, in);
      Wkv7Inputs rest = in;
      for (auto** p : {&rest.r, &rest.w, &rest.k, &rest.v, &rest.kk, &rest.a}) *p += 20 * d.stride;
      rest.y += 20 * d.stride;
      wkv7_head(S.data(), n, 17, rest);
      double worst_y = 0, worst_s = 0;
      for (int64_t t = 0; t < d.tokens; ++t)
        for (int64_t i = 0; i < n; ++i)
          worst_y = std::max(worst_y, std::fabs(y[t * d.stride + i] - y_ref[t * d.stride + i]));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)  // flatline stores S key-major: S[j][i]
          worst_s = std::max(worst_s, std::fabs(S[j * n + i] - S_ref[i * n + j]));
      EXPECT_LT(worst_y, 1e-4) << "n " << n << " isa " << isa_name(isa);
      EXPECT_LT(worst_s, 1e-4) << "n " << n << " isa " << isa_name(isa);
    }
    set_active_isa(detected_isa());
  }
}

}  // namespace
}  // namespace flatline
