// Times attention() alone for one layer shape, independent of the weight
// kernels: decode steps (1 query token) or prompt chunks after `depth`
// cached positions. Reports the best of several calls.
//
//   attention_bench [--depth 4096] [--tokens 1] [--threads 2] [--kv f16|q8_0|f32]
//                   [--heads 8] [--kv-heads 4] [--head-dim 256] [--window 0] [--reps 20]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tensor/attention.h"
#include "tensor/isa.h"
#include "util/error.h"

int main(int argc, char** argv) {
  using namespace flatline;
  try {
    int64_t depth = 4096, tokens = 1, heads = 8, kv_heads = 4, dim = 256, window = 0, reps = 20;
    int threads = 2;
    std::string kv = "f16";
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (i + 1 >= argc) throw Error(a + " needs a value");
      std::string v = argv[++i];
      if (a == "--depth") depth = std::stoll(v);
      else if (a == "--tokens") tokens = std::stoll(v);
      else if (a == "--threads") threads = std::stoi(v);
      else if (a == "--kv") kv = v;
      else if (a == "--heads") heads = std::stoll(v);
      else if (a == "--kv-heads") kv_heads = std::stoll(v);
      else if (a == "--head-dim") dim = std::stoll(v);
      else if (a == "--window") window = std::stoll(v);
      else if (a == "--reps") reps = std::stoll(v);
      else throw Error("unknown option " + a);
    }
    auto type = dtype_from_name(kv);
    if (!type || !kv_type_supported(*type)) throw Error("KV type must be f16, q8_0 or f32");
    const int64_t capacity = depth + tokens;
    const size_t rb = row_bytes(*type, dim);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> row(dim);
    std::vector<std::vector<uint8_t>> k_mem(kv_heads), v_mem(kv_heads);
    std::vector<KvRows> k(kv_heads), v(kv_heads);
    for (int64_t g = 0; g < kv_heads; ++g) {
      k_mem[g].resize(rb * capacity);
      v_mem[g].resize(rb * capacity);
      for (int64_t p = 0; p < capacity; ++p) {
        for (auto& x : row) x = normal(rng);
        kv_row_from_f32(*type, row.data(), k_mem[g].data() + p * rb, dim);
        for (auto& x : row) x = normal(rng);
        kv_row_from_f32(*type, row.data(), v_mem[g].data() + p * rb, dim);
      }
      k[g] = KvRows{*type, k_mem[g].data(), rb, capacity};
      v[g] = KvRows{*type, v_mem[g].data(), rb, capacity};
    }
    std::vector<float> q(tokens * heads * dim), out(q.size());
    for (auto& x : q) x = normal(rng);
    ThreadPool pool(threads);
    AttentionScratch scratch(pool.size(), heads, kv_heads, dim, dim);
    AttentionArgs a;
    a.n_tokens = tokens;
    a.first_pos = depth;
    a.n_head = heads;
    a.n_head_kv = kv_heads;
    a.head_dim_k = a.head_dim_v = dim;
    a.window = window;
    a.scale = 1.0f / std::sqrt(static_cast<float>(dim));
    a.q = q.data();
    a.out = out.data();
    a.k = k.data();
    a.v = v.data();
    attention(a, scratch, pool);  // warm-up
    double best = 1e30;
    for (int64_t i = 0; i < reps; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      attention(a, scratch, pool);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    // Multiply-adds of Q.K and P.V over the visible keys of every query.
    double flops = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t pos = depth + t;
      const int64_t visible = window > 0 ? std::min(window, pos + 1) : pos + 1;
      flops += 4.0 * heads * dim * visible;
    }
    std::printf("%s, %d threads, KV %s, depth %lld, %lld query tokens, %lld/%lld heads x %lld: %.3f ms per call, "
                "%.1f GFLOP/s\n",
                std::string(isa_name(active_isa())).c_str(), pool.size(), kv.c_str(), static_cast<long long>(depth),
                static_cast<long long>(tokens), static_cast<long long>(heads), static_cast<long long>(kv_heads),
                static_cast<long long>(dim), best * 1e3, flops / best / 1e9);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
