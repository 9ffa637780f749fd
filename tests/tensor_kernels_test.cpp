// matvec / matmul / dequantize_row for every weight type on every instruction
// set the CPU has, against a plain double-precision reference computed here
// (dequantize the weights with the scalar code, expand the ggml-quantized
// activations, dot in double), and against each other.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/thread_pool.h"
#include "tensor_test_util.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::IsaGuard;

struct Case {
  DType type;
  int64_t rows;
  int64_t cols;
};

// Odd shapes: row counts that are not a multiple of any tile height, an odd
// number of blocks per row (the AVX-512 kernels take blocks in pairs), float
// rows whose length is not a multiple of the vector width.
int64_t odd_cols(DType type) {
  const int64_t block = traits(type).block_size;
  if (block == 1) return 77;
  if (block == 32) return 32 * 7;
  return 256 * 3;
}

struct Weights {
  Matrix m;
  std::vector<uint8_t> bytes;
};

Weights random_weights(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  Weights w;
  w.bytes = test::random_weight_bytes(type, rows, cols, rng);
  w.m = Matrix{type, rows, cols, w.bytes.data(), row_bytes(type, cols)};
  return w;
}

// y_ref[t][r] in double, and the tolerance for each (sum |w||x| scaled).
void reference(const Matrix& w, const std::vector<float>& x, int64_t n, std::vector<double>& y,
               std::vector<double>& tol) {
  y.assign(static_cast<size_t>(n * w.rows), 0);
  tol.assign(y.size(), 0);
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<std::vector<double>> acts;
  for (int64_t t = 0; t < n; ++t) acts.push_back(test::effective_activations(w.type, x.data() + t * w.cols, w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    kernels::dequantize_row_scalar(w.type, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      double sum = 0, mag = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        sum += double(row[c]) * acts[t][c];
        mag += std::fabs(double(row[c]) * acts[t][c]);
      }
      y[t * w.rows + r] = sum;
      tol[t * w.rows + r] =
          2e-6 * mag + 1e-6 + test::q8_1_sum_slack(w.type, w.row(r), x.data() + t * w.cols, w.cols);
    }
  }
}

std::string label(DType type, Isa isa, int64_t n) {
  return std::string(dtype_name(type)) + " on " + std::string(isa_name(isa)) + " with n=" + std::to_string(n);
}

TEST(TensorKernels, MatmulMatchesDoubleReferenceOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(7);
  ThreadPool pool(2);
  for (DType type : test::computable_types()) {
    const int64_t rows = 13, cols = odd_cols(type);
    Weights w = random_weights(type, rows, cols, rng);
    for (int64_t n : {1, 2, 5, 17}) {
      std::vector<float> x = test::random_floats(static_cast<size_t>(n * cols), rng);
      std::vector<double> ref, tol;
      reference(w.m, x, n, ref, tol);
      for (Isa isa : test::available_isas()) {
        set_active_isa(isa);
        std::vector<float> y(static_cast<size_t>(n * rows), -1.f);
        matmul(w.m, x.data(), n, y.data(), pool);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], tol[i]) << label(type, isa, n) << " at token " << i / rows << " row " << i % rows;
      }
    }
  }
}

TEST(TensorKernels, SimdMatchesScalarClosely) {
  IsaGuard guard;
  std::mt19937 rng(11);
  ThreadPool pool(1);
  for (DType type : test::computable_types()) {
    const int64_t rows = 37, cols = odd_cols(type) * 2 + (traits(type).block_size == 1 ? 1 : 0);
    Weights w = random_weights(type, rows, cols, rng);
    const int64_t n = 9;
    std::vector<float> x = test::random_floats(static_cast<size_t>(n * cols), rng);
    set_active_isa(Isa::Scalar);
    std::vector<float> expect(static_cast<size_t>(n * rows));
    matmul(w.m, x.data(), n, expect.data(), pool);
    std::vector<double> ref, tol;
    reference(w.m, x, n, ref, tol);
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      std::vector<float> y(expect.size());
      matmul(w.m, x.data(), n, y.data(), pool);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], expect[i], tol[i]) << label(type, isa, n) << " index " << i;
    }
  }
}

TEST(TensorKernels, MatmulEqualsRepeatedMatvec) {
  IsaGuard guard;
  std::mt19937 rng(3);
  ThreadPool pool(2);
  for (DType type : test::computable_types()) {
    const int64_t rows = 21, cols = odd_cols(type);
    Weights w = random_weights(type, rows, cols, rng);
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      for (int64_t n = 1; n <= 17; ++n) {
        std::vector<float> x = test::random_floats(static_cast<size_t>(n * cols), rng);
        std::vector<float> y(static_cast<size_t>(n * rows)), one(static_cast<size_t>(rows));
        std::vector<double> ref, tol;  // only the tolerances are used: matvec may sum in another order
        reference(w.m, x, n, ref, tol);
        matmul(w.m, x.data(), n, y.data(), pool);
        for (int64_t t = 0; t < n; ++t) {
          matvec(w.m, x.data() + t * cols, one.data(), pool);
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(y[t * rows + r], one[r], tol[t * rows + r]) << label(type, isa, n) << " token " << t << " row " << r;
        }
      }
    }
  }
}

TEST(TensorKernels, ThreadCountDoesNotChangeResults) {
  IsaGuard guard;
  std::mt19937 rng(5);
  // Large enough to be split between threads (>= 2^16 multiply-adds).
  for (DType type : {DType::Q8_0, DType::Q4_K, DType::F16}) {
    const int64_t rows = 203, cols = traits(type).block_size == 256 ? 512 : 320;
    Weights w = random_weights(type, rows, cols, rng);
    const int64_t n = 6;
    std::vector<float> x = test::random_floats(static_cast<size_t>(n * cols), rng);
    std::vector<double> ref, tol;
    reference(w.m, x, n, ref, tol);
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      std::vector<float> base(static_cast<size_t>(n * rows));
      ThreadPool one(1);
      matmul(w.m, x.data(), n, base.data(), one);
      for (int threads : {2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> y(base.size());
        matmul(w.m, x.data(), n, y.data(), pool);
        EXPECT_EQ(y, base) << label(type, isa, n) << " with " << threads << " threads";
        matvec(w.m, x.data(), y.data(), pool);
        for (int64_t r = 0; r < rows; ++r) ASSERT_NEAR(y[r], base[r], tol[r]) << label(type, isa, 1) << " row " << r;
      }
    }
  }
}

TEST(TensorKernels, RowStrideLargerThanRowIsHonoured) {
  IsaGuard guard;
  std::mt19937 rng(9);
  ThreadPool pool(2);
  const DType type = DType::Q8_0;
  const int64_t rows = 10, cols = 64;
  Weights packed = random_weights(type, rows, cols, rng);
  const size_t rb = packed.m.row_stride, stride = rb + 6;
  std::vector<uint8_t> padded(stride * rows, 0xAB);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(padded.data() + r * stride, packed.bytes.data() + r * rb, rb);
  Matrix strided{type, rows, cols, padded.data(), stride};
  std::vector<float> x = test::random_floats(cols * 3, rng);
  for (Isa isa : test::available_isas()) {
    set_active_isa(isa);
    std::vector<float> a(rows * 3), b(rows * 3);
    matmul(packed.m, x.data(), 3, a.data(), pool);
    matmul(strided, x.data(), 3, b.data(), pool);
    EXPECT_EQ(a, b) << isa_name(isa);
  }
}

TEST(TensorKernels, DequantizeMatchesScalarOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(13);
  for (DType type : test::computable_types()) {
    const int64_t cols = odd_cols(type);
    std::vector<uint8_t> bytes = test::random_weight_bytes(type, 1, cols, rng);
    std::vector<float> expect(cols);
    kernels::dequantize_row_scalar(type, bytes.data(), expect.data(), cols);
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      std::vector<float> got(cols, -7.f);
      dequantize_row(type, bytes.data(), got.data(), cols);
      for (int64_t i = 0; i < cols; ++i)
        ASSERT_EQ(got[i], expect[i]) << dtype_name(type) << " on " << isa_name(isa) << " element " << i;  // same operations: bit-equal
    }
  }
}

TEST(TensorKernels, BadShapesAndTypesAreErrors) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(1024);
  std::vector<float> x(256), y(16);
  Matrix not_block_multiple{DType::Q8_0, 2, 48, bytes.data(), 34};
  EXPECT_THROW(matvec(not_block_multiple, x.data(), y.data(), pool), Error);
  Matrix short_stride{DType::Q8_0, 2, 64, bytes.data(), 40};
  EXPECT_THROW(matvec(short_stride, x.data(), y.data(), pool), Error);
  Matrix unsupported{DType::Q2_K, 2, 256, bytes.data(), 84};
  EXPECT_THROW(matvec(unsupported, x.data(), y.data(), pool), Error);
  EXPECT_THROW(dequantize_row(DType::Q2_K, bytes.data(), y.data(), 256), Error);
  EXPECT_THROW(dequantize_row(DType::Q4_0, bytes.data(), y.data(), 31), Error);
  try {
    matvec(short_stride, x.data(), y.data(), pool);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("40"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("68"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flatline
