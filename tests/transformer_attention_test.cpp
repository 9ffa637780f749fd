// The attention kernel against a naive double-precision softmax attention,
// on every instruction set the CPU has: GQA groups, sliding windows, ring
// storage, odd head dims, prompt chunks after a long context, and decode
// steps long enough that the key range is split over threads and merged.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensor/attention.h"
#include "tensor/isa.h"
#include "util/error.h"

namespace flatline {
namespace {

struct Shape {
  const char* name;
  int64_t n_head, n_head_kv, dk, dv;
  int64_t past, n_tokens;  // keys already cached, then the queries
  int64_t window;
  int64_t capacity;        // rows per page (pages no query sees are left out)
  DType type;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

// KV storage filled with random rows, kept as f32 (the values after a round
// trip through the storage type) for the reference.
struct Cache {
  std::vector<std::vector<std::vector<uint8_t>>> k_pages, v_pages;  // [head][page] bytes
  std::vector<std::vector<const uint8_t*>> k_ptrs, v_ptrs;         // [head][page], null where left out
  std::vector<std::vector<float>> k_f32, v_f32;  // [head][pos * dim]
  std::vector<KvRows> k, v;
};

Cache make_cache(const Shape& s, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n_pos = s.past + s.n_tokens;
  const int64_t P = s.capacity, n_pages = (n_pos + P - 1) / P;
  // Pages wholly below what the first query sees are never read: leave them out.
  const int64_t first_kept = s.window > 0 ? std::max<int64_t>(0, s.past - s.window + 1) / P : 0;
  Cache c;
  for (int64_t h = 0; h < s.n_head_kv; ++h) {
    for (int value = 0; value < 2; ++value) {
      const int64_t dim = value ? s.dv : s.dk;
      const size_t rb = row_bytes(s.type, dim);
      std::vector<std::vector<uint8_t>> pages(n_pages, std::vector<uint8_t>(rb * P));
      std::vector<float> f32(dim * n_pos), row(dim);
      for (int64_t p = 0; p < n_pos; ++p) {
        for (auto& x : row) x = normal(rng);
        uint8_t* dst = pages[p / P].data() + (p % P) * rb;
        kv_row_from_f32(s.type, row.data(), dst, dim);
        kv_row_to_f32(s.type, dst, f32.data() + p * dim, dim);
      }
      std::vector<const uint8_t*> ptrs;
      for (int64_t i = 0; i < n_pages; ++i) ptrs.push_back(i < first_kept ? nullptr : pages[i].data());
      (value ? c.v_pages : c.k_pages).push_back(std::move(pages));
      (value ? c.v_ptrs : c.k_ptrs).push_back(std::move(ptrs));
      (value ? c.v_f32 : c.k_f32).push_back(std::move(f32));
    }
  }
  for (int64_t h = 0; h < s.n_head_kv; ++h) {
    c.k.push_back(KvRows{s.type, c.k_ptrs[h].data(), 0, row_bytes(s.type, s.dk), P});
    c.v.push_back(KvRows{s.type, c.v_ptrs[h].data(), 0, row_bytes(s.type, s.dv), P});
  }
  return c;
}

std::vector<double> naive(const Shape& s, const Cache& c, const std::vector<float>& q, float scale) {
  const int64_t group = s.n_head / s.n_head_kv;
  std::vector<double> out(s.n_tokens * s.n_head * s.dv, 0.0);
  for (int64_t t = 0; t < s.n_tokens; ++t) {
    const int64_t pos = s.past + t;
    const int64_t lo = s.window > 0 ? std::max<int64_t>(0, pos - s.window + 1) : 0;
    for (int64_t h = 0; h < s.n_head; ++h) {
      const int64_t g = h / group;
      const float* qv = q.data() + (t * s.n_head + h) * s.dk;
      std::vector<double> w;
      double mx = -INFINITY;
      for (int64_t j = lo; j <= pos; ++j) {
        double d = 0;
        for (int64_t e = 0; e < s.dk; ++e) d += double(qv[e]) * c.k_f32[g][j * s.dk + e];
        w.push_back(d * scale);
        mx = std::max(mx, w.back());
      }
      double sum = 0;
      for (auto& x : w) sum += (x = std::exp(x - mx));
      double* o = out.data() + (t * s.n_head + h) * s.dv;
      for (int64_t j = lo; j <= pos; ++j)
        for (int64_t e = 0; e < s.dv; ++e) o[e] += w[j - lo] / sum * c.v_f32[g][j * s.dv + e];
    }
  }
  return out;
}

class AttentionKernel : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionKernel, MatchesNaiveAttentionOnEveryIsa) {
  const Shape s = GetParam();
  std::mt19937 rng(1234);
  Cache cache = make_cache(s, rng);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(s.n_tokens * s.n_head * s.dk);
  for (auto& x : q) x = normal(rng);
  const float scale = 1.0f / std::sqrt(float(s.dk));
  const auto want = naive(s, cache, q, scale);

  ThreadPool pool(2);
  AttentionScratch scratch(pool.size(), s.n_head, s.n_head_kv, s.dk, s.dv);
  AttentionArgs a;
  a.n_tokens = s.n_tokens;
  a.first_pos = s.past;
  a.n_head = s.n_head;
  a.n_head_kv = s.n_head_kv;
  a.head_dim_k = s.dk;
  a.head_dim_v = s.dv;
  a.window = s.window;
  a.scale = scale;
  a.q = q.data();
  a.k = cache.k.data();
  a.v = cache.v.data();
  const Isa saved = active_isa();
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    std::vector<float> out(want.size(), NAN);
    a.out = out.data();
    attention(a, scratch, pool);
    double worst = 0;
    for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(out[i] - want[i]));
    EXPECT_LT(worst, 2e-5) << s.name << " with " << isa_name(isa);
  }
  set_active_isa(saved);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionKernel,
    ::testing::Values(
        Shape{"prompt_gqa4", 8, 2, 64, 64, 0, 70, 0, 70, DType::F32},
        Shape{"prompt_after_context_f16", 6, 3, 128, 128, 300, 37, 0, 337, DType::F16},
        Shape{"odd_dims", 5, 5, 20, 12, 10, 9, 0, 19, DType::F32},
        Shape{"window_ring_q8", 4, 1, 32, 32, 200, 12, 16, 16 - 1 + 12, DType::Q8_0},
        Shape{"window_ring_f16_decode", 8, 4, 256, 256, 1000, 1, 64, 64, DType::F16},
        Shape{"decode_split_one_kv_head", 4, 1, 64, 64, 3000, 1, 0, 3001, DType::F16},
        Shape{"decode_split_q8", 2, 2, 96, 64, 2500, 1, 0, 2501, DType::Q8_0},
        Shape{"decode_first_token", 4, 2, 16, 16, 0, 1, 0, 1, DType::F32}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AttentionKernelRows, RowConversionsRoundTrip) {
  std::vector<float> x(96);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * i) * (1 + i % 7);
  const Isa saved = active_isa();
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    std::vector<uint8_t> scalar_bytes(row_bytes(t, 96));
    set_active_isa(Isa::Scalar);
    kv_row_from_f32(t, x.data(), scalar_bytes.data(), 96);
    std::vector<float> back(96);
    kv_row_to_f32(t, scalar_bytes.data(), back.data(), 96);
    const float tol = t == DType::F32 ? 0.0f : t == DType::F16 ? 4e-3f : 7.0f / 127 / 2 * 1.01f;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(back[i] - x[i]), tol) << dtype_name(t) << " " << i;
    // The SIMD paths store the same bytes as the scalar one.
    for (Isa isa : available_isas()) {
      if (isa == Isa::Scalar) continue;
      set_active_isa(isa);
      std::vector<uint8_t> bytes(row_bytes(t, 96));
      kv_row_from_f32(t, x.data(), bytes.data(), 96);
      EXPECT_EQ(bytes, scalar_bytes) << dtype_name(t) << " " << isa_name(isa);
      std::vector<float> back2(96);
      kv_row_to_f32(t, bytes.data(), back2.data(), 96);
      EXPECT_EQ(back2, back) << dtype_name(t) << " " << isa_name(isa);
    }
  }
  set_active_isa(saved);
  EXPECT_FALSE(kv_type_supported(DType::Q4_0));
}

TEST(AttentionKernelRows, RejectsShapesBeyondItsScratch) {
  ThreadPool pool(1);
  AttentionScratch scratch(1, 4, 2, 16, 16);
  std::vector<float> q(8 * 32), out(8 * 32);
  std::vector<uint8_t> mem(64 * 64 * 4);
  const uint8_t* page = mem.data();
  KvRows rows{DType::F32, &page, 0, 32 * 4, 64};
  std::vector<KvRows> k(4, rows), v(4, rows);
  AttentionArgs a;
  a.n_tokens = 1;
  a.n_head = 8;
  a.n_head_kv = 2;  // group 4 > 2
  a.head_dim_k = a.head_dim_v = 16;
  a.q = q.data();
  a.out = out.data();
  a.k = k.data();
  a.v = v.data();
  EXPECT_THROW(attention(a, scratch, pool), Error);
  a.n_head = 4;
  a.head_dim_k = 32;  // wider than the scratch
  EXPECT_THROW(attention(a, scratch, pool), Error);
  a.n_head = 3;  // does not group
  a.head_dim_k = 16;
  EXPECT_THROW(attention(a, scratch, pool), Error);
}

}  // namespace
}  // namespace flatline
