// flatline's quantizers, dequantizers, activation quantizers and dot kernels
// against bytes and numbers produced by ggml itself (see
// tests/tensor_ggml_ref_README.md for how the reference files were made).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/thread_pool.h"
#include "tensor_test_util.h"
#include "test_support.h"

namespace flatline {
namespace {

using test::IsaGuard;

constexpr int64_t kN = 2048;
const DType kWeightTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                              DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Sequential reader over a reference file.
class Reader {
 public:
  explicit Reader(const std::string& name)
      : bytes_(test::read_file(test::source_dir() + "/tests/" + name)) {}
  std::vector<uint8_t> take(size_t n) {
    if (pos_ + n > bytes_.size()) throw std::runtime_error("reference file shorter than expected");
    std::vector<uint8_t> out(bytes_.begin() + pos_, bytes_.begin() + pos_ + n);
    pos_ += n;
    return out;
  }
  std::vector<float> floats(size_t n) {
    std::vector<uint8_t> b = take(n * 4);
    std::vector<float> out(n);
    std::memcpy(out.data(), b.data(), b.size());
    return out;
  }
  bool at_end() const { return pos_ == bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

TEST(TensorGgmlReference, WeightQuantizersAreByteExact) {
  Reader in("tensor_ggml_quants.ref.bin");
  const std::vector<float> x = in.floats(kN);
  for (DType type : kWeightTypes) {
    const std::vector<uint8_t> expect = in.take(row_bytes(type, kN));
    std::vector<uint8_t> got(expect.size());
    quantize_row(type, x.data(), got.data(), kN);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], expect[i]) << dtype_name(type) << " byte " << i << " (block " << i / traits(type).block_bytes << ")";
  }
  const std::vector<uint8_t> expect = in.take(row_bytes(DType::Q8_K, kN));
  std::vector<uint8_t> got(expect.size());
  kernels::quantize_act_q8_k(x.data(), kN, got.data());
  EXPECT_EQ(got, expect) << "Q8_K";
  EXPECT_TRUE(in.at_end());
}

struct KernelRef {
  std::vector<float> w, x;
  struct PerType {
    std::vector<uint8_t> quants;
    std::vector<float> dequantized, dots;
  };
  std::vector<PerType> types;
  std::vector<uint8_t> act_q8_0, act_q8_1, act_q8_k;
};

KernelRef load_kernel_ref() {
  Reader in("tensor_ggml_kernels.ref.bin");
  KernelRef ref;
  ref.w = in.floats(kN);
  ref.x = in.floats(kN);
  for (DType type : kWeightTypes) {
    KernelRef::PerType t;
    t.quants = in.take(row_bytes(type, kN));
    t.dequantized = in.floats(kN);
    t.dots = in.floats(8);
    ref.types.push_back(std::move(t));
  }
  ref.act_q8_0 = in.take(row_bytes(DType::Q8_0, kN));
  ref.act_q8_1 = in.take(row_bytes(DType::Q8_1, kN));
  ref.act_q8_k = in.take(row_bytes(DType::Q8_K, kN));
  EXPECT_TRUE(in.at_end());
  return ref;
}

TEST(TensorGgmlReference, ActivationQuantizersMatchGgmlX86) {
  const KernelRef ref = load_kernel_ref();
  std::vector<uint8_t> got(ref.act_q8_0.size());
  kernels::quantize_act_q8_0(ref.x.data(), kN, got.data());
  EXPECT_EQ(got, ref.act_q8_0) << "Q8_0";
  got.assign(ref.act_q8_1.size(), 0);
  kernels::quantize_act_q8_1(ref.x.data(), kN, got.data());
  EXPECT_EQ(got, ref.act_q8_1) << "Q8_1";
  got.assign(ref.act_q8_k.size(), 0);
  kernels::quantize_act_q8_k(ref.x.data(), kN, got.data());
  EXPECT_EQ(got, ref.act_q8_k) << "Q8_K";
}

TEST(TensorGgmlReference, QuantizeAndDequantizeMatchGgml) {
  IsaGuard guard;
  const KernelRef ref = load_kernel_ref();
  for (size_t k = 0; k < std::size(kWeightTypes); ++k) {
    const DType type = kWeightTypes[k];
    std::vector<uint8_t> q(ref.types[k].quants.size());
    quantize_row(type, ref.w.data(), q.data(), kN);
    EXPECT_EQ(q, ref.types[k].quants) << dtype_name(type);
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      std::vector<float> got(kN);
      dequantize_row(type, ref.types[k].quants.data(), got.data(), kN);
      for (int64_t i = 0; i < kN; ++i)
        ASSERT_EQ(got[i], ref.types[k].dequantized[i]) << dtype_name(type) << " on " << isa_name(isa) << " element " << i;
    }
  }
}

// ggml's dot products sum the same integers; only the float rounding order
// differs, so agreement is to a few float ulps of the magnitude.
TEST(TensorGgmlReference, DotProductsMatchGgml) {
  IsaGuard guard;
  const KernelRef ref = load_kernel_ref();
  ThreadPool pool(2);
  constexpr int64_t kRows = 8, kCols = 256;
  for (size_t k = 0; k < std::size(kWeightTypes); ++k) {
    const DType type = kWeightTypes[k];
    const std::vector<uint8_t>& q = ref.types[k].quants;
    const Matrix m{type, kRows, kCols, q.data(), row_bytes(type, kCols)};
    for (Isa isa : test::available_isas()) {
      set_active_isa(isa);
      std::vector<float> y(kRows * kRows);
      matmul(m, ref.x.data(), kRows, y.data(), pool);  // token t = activation row t
      for (int64_t r = 0; r < kRows; ++r) {
        double mag = 0;
        for (int64_t c = 0; c < kCols; ++c) mag += std::fabs(ref.types[k].dequantized[r * kCols + c] * ref.x[r * kCols + c]);
        const float expect = ref.types[k].dots[r];
        EXPECT_NEAR(y[r * kRows + r], expect, 1e-5 * mag + 1e-7) << dtype_name(type) << " on " << isa_name(isa) << " row " << r;
        std::vector<float> one(kRows);
        matvec(m, ref.x.data() + r * kCols, one.data(), pool);
        EXPECT_NEAR(one[r], expect, 1e-5 * mag + 1e-7) << dtype_name(type) << " matvec on " << isa_name(isa) << " row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace flatline
