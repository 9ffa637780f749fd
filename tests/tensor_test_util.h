// Helpers shared by the tensor_*_test.cpp files: random weights of any
// type, ISA switching, and a plain double-precision reference.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/isa.h"
#include "tensor/kernels.h"
#include "tensor/kernels_impl.h"
#include "tensor/quant_blocks.h"

namespace flatline::test {

inline std::vector<Isa> available_isas() { return flatline::available_isas(); }

// Restores the active ISA when it goes out of scope.
class IsaGuard {
 public:
  IsaGuard() : saved_(active_isa()) {}
  ~IsaGuard() { set_active_isa(saved_); }

 private:
  Isa saved_;
};

inline const std::vector<DType>& computable_types() {
  static const std::vector<DType> types = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,
                                           DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                                           DType::Q4_K, DType::Q5_K, DType::Q6_K};
  return types;
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// A random half in +-[lo, hi] (or [lo, hi] when positive_only).
inline uint16_t random_half(std::mt19937& rng, float lo, float hi, bool positive_only) {
  std::uniform_real_distribution<float> mag(lo, hi);
  float v = mag(rng);
  if (!positive_only && (rng() & 1)) v = -v;
  return fp32_to_fp16(v);
}

inline void put_half(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

// Weight rows of random bytes (every quant bit pattern occurs, including
// Q8_0's -128 and Q6_K's scale -128) with the fp16 scale fields replaced by
// finite values of realistic size.
inline std::vector<uint8_t> random_weight_bytes(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  using namespace blocks;
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const DTypeTraits& t = traits(type);
  const size_t nblocks = bytes.size() / t.block_bytes;
  for (size_t i = 0; i < nblocks; ++i) {
    uint8_t* blk = bytes.data() + i * t.block_bytes;
    switch (type) {
      case DType::F32: {
        float v = std::normal_distribution<float>(0.f, 1.f)(rng);
        std::memcpy(blk, &v, 4);
        break;
      }
      case DType::F16: put_half(blk, random_half(rng, 0.0f, 2.0f, false)); break;
      case DType::BF16: {
        uint16_t b = fp32_to_bf16(std::normal_distribution<float>(0.f, 1.f)(rng));
        std::memcpy(blk, &b, 2);
        break;
      }
      case DType::Q4_0:
      case DType::Q5_0:
      case DType::Q8_0: put_half(blk, random_half(rng, 0.001f, 0.1f, false)); break;
      case DType::Q4_1:
      case DType::Q5_1:
        put_half(blk, random_half(rng, 0.001f, 0.1f, true));
        put_half(blk + 2, random_half(rng, 0.0f, 1.0f, false));
        break;
      case DType::Q4_K:
      case DType::Q5_K:
        put_half(blk + offsetof(BlockQ4_K, d), random_half(rng, 0.0001f, 0.01f, true));
        put_half(blk + offsetof(BlockQ4_K, dmin), random_half(rng, 0.0001f, 0.01f, true));
        break;
      case DType::Q6_K: put_half(blk + offsetof(BlockQ6_K, d), random_half(rng, 0.0001f, 0.01f, false)); break;
      default: break;
    }
  }
  return bytes;
}

// The activations a dot product with `weight` sees, dequantized: x itself
// for float weights, else x quantized as ggml does (kernels_impl.h) and
// expanded back with the block formulas of quant_blocks.h.
inline std::vector<double> effective_activations(DType weight, const float* x, int64_t n) {
  using namespace blocks;
  std::vector<double> out(static_cast<size_t>(n));
  const DType act = activation_type(weight);
  if (act == DType::F32) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i];
    return out;
  }
  std::vector<uint8_t> buf(row_bytes(act, n));
  if (act == DType::Q8_0) {
    kernels::quantize_act_q8_0(x, n, buf.data());
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = double(fp16_to_fp32(b[i / 32].d)) * b[i / 32].qs[i % 32];
  } else if (act == DType::Q8_1) {
    kernels::quantize_act_q8_1(x, n, buf.data());
    const BlockQ8_1* b = reinterpret_cast<const BlockQ8_1*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = double(fp16_to_fp32(b[i / 32].d)) * b[i / 32].qs[i % 32];
  } else {
    kernels::quantize_act_q8_k(x, n, buf.data());
    const BlockQ8_K* b = reinterpret_cast<const BlockQ8_K*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = double(b[i / 256].d) * b[i / 256].qs[i % 256];
  }
  return out;
}

// Q4_1 / Q5_1 dots use s = fp16(d * sum q) for the min term instead of
// sum(d * q); the difference is bounded by |m| * |s - d*sum(q)| per block,
// which this adds to the tolerance.
inline double q8_1_sum_slack(DType weight, const uint8_t* wrow, const float* x, int64_t n) {
  using namespace blocks;
  if (activation_type(weight) != DType::Q8_1) return 0;
  std::vector<uint8_t> buf(row_bytes(DType::Q8_1, n));
  kernels::quantize_act_q8_1(x, n, buf.data());
  const BlockQ8_1* b = reinterpret_cast<const BlockQ8_1*>(buf.data());
  double slack = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += b[i].qs[j];
    const double exact = double(fp16_to_fp32(b[i].d)) * sum;
    uint16_t m;
    std::memcpy(&m, wrow + i * traits(weight).block_bytes + 2, 2);  // Q4_1 / Q5_1: m follows d
    slack += std::fabs(fp16_to_fp32(m)) * std::fabs(fp16_to_fp32(b[i].s) - exact);
  }
  return slack;
}

}  // namespace flatline::test
