// The state-space kernels (tensor/ssm.h) in every variant this CPU can run
// against plain loops written here from the equations, on random data with
// sizes that are not multiples of any vector width.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/isa.h"
#include "tensor/ssm.h"

namespace flatline {
namespace {

using kernels::SsmKernels;

struct Variant {
  const char* name;
  const SsmKernels& (*get)();
  Isa needs;
};

const Variant kVariants[] = {
    {"scalar", kernels::ssm_scalar, Isa::Scalar},
#if FLATLINE_ARCH_X86
    {"avx2", kernels::ssm_avx2, Isa::Avx2},
    {"avx512", kernels::ssm_avx512, Isa::Avx512},
#elif FLATLINE_ARCH_ARM
    {"neon", kernels::ssm_neon, Isa::Neon},
#endif
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f, float offset = 0.0f) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = offset + scale * d(rng);
  return v;
}

double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
double silu(double x) { return x / (1 + std::exp(-x)); }

class SsmKernelsTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!isa_includes(detected_isa(), GetParam().needs))
      GTEST_SKIP() << "this CPU cannot run the " << GetParam().name << " variant";
  }
  const SsmKernels& k() const { return GetParam().get(); }
};

TEST_P(SsmKernelsTest, Conv1dMatchesPlainLoops) {
  std::mt19937 rng(1);
  for (int64_t d_conv : {1, 2, 4}) {
    for (int64_t C : {1, 7, 40, 133}) {
      const int64_t T = 9, stride = C + 5;
      auto window = random_vec((d_conv - 1) * C, rng);
      auto x = random_vec(T * stride, rng);
      auto taps = random_vec(d_conv * C, rng, 0.5f);
      auto bias = random_vec(C, rng, 0.1f);
      std::vector<float> y(T * C), w2 = window;
      // Reference: u = [window; x] along time.
      std::vector<double> want(T * C);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t) {
          double acc = bias[c];
          for (int64_t kk = 0; kk < d_conv; ++kk) {
            const int64_t src = t + kk - (d_conv - 1);
            const double u = src >= 0 ? x[src * stride + c] : window[(d_conv - 1 + src) * C + c];
            acc += taps[kk * C + c] * u;
          }
          want[t * C + c] = silu(acc);
        }
      Conv1dArgs a{w2.data(), x.data(), stride, y.data(), C, T, C, d_conv, taps.data(), bias.data()};
      // Split the channels in two calls as callers do over threads.
      k().conv1d_silu(a, 0, C / 2);
      k().conv1d_silu(a, C / 2, C);
      for (int64_t i = 0; i < T * C; ++i) ASSERT_NEAR(y[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << i;
      // The window now holds the last d_conv - 1 inputs.
      for (int64_t j = 0; j + 1 < d_conv; ++j)
        for (int64_t c = 0; c < C; ++c) ASSERT_EQ(w2[j * C + c], x[(T - (d_conv - 1) + j) * stride + c]);
    }
  }
}

TEST_P(SsmKernelsTest, Mamba2ScanMatchesPlainLoops) {
  std::mt19937 rng(2);
  for (int64_t P : {5, 24, 64}) {
    for (int64_t N : {3, 16}) {
      const int64_t T = 11, xs = P + 3, bcs = 2 * N + 1;
      auto h = random_vec(N * P, rng);
      auto x = random_vec(T * xs, rng);
      auto B = random_vec(T * bcs, rng);
      auto C = random_vec(T * bcs, rng);
      auto dt = random_vec(T, rng);
      const float dt_bias = 0.3f, A = -2.5f, D = 0.7f;
      std::vector<double> hr(h.begin(), h.end()), want(T * P);
      for (int64_t t = 0; t < T; ++t) {
        const double d = softplus(dt[t] + dt_bias), dA = std::exp(d * A);
        for (int64_t p = 0; p < P; ++p) {
          double y = D * x[t * xs + p];
          for (int64_t n = 0; n < N; ++n) {
            double& s = hr[n * P + p];
            s = s * dA + d * B[t * bcs + n] * x[t * xs + p];
            y += s * C[t * bcs + n];
          }
          want[t * P + p] = y;
        }
      }
      std::vector<float> y(T * P);
      Ssm2Args a{h.data(), N, P, T, x.data(), xs, B.data(), C.data(), bcs, dt.data(), 1, dt_bias, A, D, y.data(), P};
      k().ssm2_scan_head(a);
      for (int64_t i = 0; i < T * P; ++i) ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << "P " << P << " i " << i;
      for (int64_t i = 0; i < N * P; ++i) ASSERT_NEAR(h[i], hr[i], 1e-4 * (1 + std::fabs(hr[i])));
    }
  }
}

TEST_P(SsmKernelsTest, Mamba1ScanMatchesPlainLoops) {
  std::mt19937 rng(3);
  for (int64_t Ch : {3, 40, 133}) {
    const int64_t N = 16, T = 7, xs = Ch + 2, bcs = 2 * N + 3;
    auto h = random_vec(N * Ch, rng);
    auto x = random_vec(T * xs, rng);
    auto dt = random_vec(T * xs, rng);
    auto B = random_vec(T * bcs, rng);
    auto C = random_vec(T * bcs, rng);
    auto A = random_vec(N * Ch, rng, 1.0f, -3.0f);
    auto D = random_vec(Ch, rng);
    std::vector<double> hr(h.begin(), h.end()), want(T * Ch);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < Ch; ++c) {
        const double d = softplus(dt[t * xs + c]);
        double y = D[c] * x[t * xs + c];
        for (int64_t n = 0; n < N; ++n) {
          double& s = hr[n * Ch + c];
          s = s * std::exp(d * A[n * Ch + c]) + d * B[t * bcs + n] * x[t * xs + c];
          y += s * C[t * bcs + n];
        }
        want[t * Ch + c] = y;
      }
    std::vector<float> y(T * Ch);
    Ssm1Args a{h.data(), N, Ch, T, x.data(), xs, dt.data(), xs, B.data(), C.data(), bcs, A.data(), D.data(), y.data(), Ch};
    k().ssm1_scan(a, 0, Ch / 3);
    k().ssm1_scan(a, Ch / 3, Ch);
    for (int64_t i = 0; i < T * Ch; ++i) ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, SsmKernelsTest, ::testing::ValuesIn(kVariants),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace flatline
