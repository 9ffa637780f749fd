#include "models/blocks/ffn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "models/blocks/common.h"
#include "tensor/vector_ops.h"

namespace flatline {

namespace {

inline float apply(Activation act, float x) {
  switch (act) {
    case Activation::Silu: return silu(x);
    case Activation::GeluTanh: return gelu_tanh(x);
    case Activation::Relu2: {
      const float r = std::max(x, 0.0f);
      return r * r;
    }
  }
  return x;
}

// down(act(gate x) * up x) or down(act(up x)) for n rows of x; hidden width
// from the matrices. Adds `weight` * result to out when accumulate is set.
void dense_ffn(const ChunkContext& ctx, const Matrix& gate, const Matrix& up, const Matrix& down,
               const FfnWeights* biases, Activation act, const float* x, int64_t n, float* y) {
  static const std::vector<float> none;
  const int64_t F = up.rows;
  float* u = ctx.scratch.floats(kSlotUp, static_cast<size_t>(n * F));
  project(up, biases ? biases->b_up : none, x, n, u, ctx.pool);
  if (gate.data) {
    float* g = ctx.scratch.floats(kSlotGate, static_cast<size_t>(n * F));
    project(gate, biases ? biases->b_gate : none, x, n, g, ctx.pool);
    activate(act, g, u, n * F, ctx.pool);
    project(down, biases ? biases->b_down : none, g, n, y, ctx.pool);
  } else {
    activate(act, u, nullptr, n * F, ctx.pool);
    project(down, biases ? biases->b_down : none, u, n, y, ctx.pool);
  }
}

}  // namespace

void activate(Activation act, float* g, const float* up, int64_t n, ThreadPool& pool) {
  pool.parallel_work(n, 1, [&](int64_t i0, int64_t i1) {
    if (up)
      for (int64_t i = i0; i < i1; ++i) g[i] = apply(act, g[i]) * up[i];
    else
      for (int64_t i = i0; i < i1; ++i) g[i] = apply(act, g[i]);
  });
}

void ffn_forward(const ChunkContext& ctx, const FfnWeights& w, Activation act, const float* xn, float* out) {
  dense_ffn(ctx, w.gate, w.up, w.down, &w, act, xn, ctx.n_rows, out);
}

void moe_forward(const ChunkContext& ctx, const MoeConfig& c, const MoeWeights& w, Activation act, const float* xn,
                 float* out) {
  const int64_t n = ctx.n_rows, E = c.n_expert, K = c.n_used, D = w.router.cols;
  float* probs = ctx.scratch.floats(kSlotRouter, static_cast<size_t>(n * E));
  int32_t* chosen = ctx.scratch.ints(kIntExperts, static_cast<size_t>(n * K));
  float* weights = ctx.scratch.floats(kSlotExpertWeights, static_cast<size_t>(n * K));
  project(w.router, {}, xn, n, probs, ctx.pool);

  // Gating and top-k per row.
  for (int64_t r = 0; r < n; ++r) {
    float* p = probs + r * E;
    if (c.gating == MoeGating::Softmax) softmax(p, E);
    else
      for (int64_t e = 0; e < E; ++e) p[e] = sigmoid(p[e]);
    int32_t* ids = chosen + r * K;
    float* wt = weights + r * K;
    // Selection by probability (+ bias when given); ties go to the lower id.
    auto score = [&](int32_t e) { return p[e] + (w.selection_bias.empty() ? 0.0f : w.selection_bias[e]); };
    for (int64_t k = 0; k < K; ++k) {
      int32_t best = -1;
      for (int32_t e = 0; e < E; ++e) {
        if (std::find(ids, ids + k, e) != ids + k) continue;
        if (best < 0 || score(e) > score(best)) best = e;
      }
      ids[k] = best;
      wt[k] = p[best];
    }
    if (c.normalize) {
      float sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += wt[k];
      sum = std::max(sum, 6.103515625e-5f);
      for (int64_t k = 0; k < K; ++k) wt[k] /= sum;
    }
    if (c.scale != 1.0f)
      for (int64_t k = 0; k < K; ++k) wt[k] *= c.scale;
  }

  // Rows grouped by expert: counts, then (row * K + k) entries per expert.
  int32_t* count = ctx.scratch.ints(kIntExpertCount, static_cast<size_t>(E + 1));
  int32_t* entries = ctx.scratch.ints(kIntExpertRows, static_cast<size_t>(n * K));
  std::fill(count, count + E + 1, 0);
  for (int64_t i = 0; i < n * K; ++i) ++count[chosen[i] + 1];
  std::partial_sum(count, count + E + 1, count);
  {
    int32_t* fill = ctx.scratch.ints(kIntExpertFill, static_cast<size_t>(E));
    std::copy(count, count + E, fill);
    for (int64_t i = 0; i < n * K; ++i) entries[fill[chosen[i]]++] = static_cast<int32_t>(i);
  }

  // With latent experts they read latent_down(xn) and sum into a latent
  // buffer that latent_up brings back to the model width.
  const bool latent = w.latent_down.data != nullptr;
  const int64_t L = latent ? w.latent_down.rows : D;
  const float* expert_x = xn;
  float* sum = out;
  if (latent) {
    float* lx = ctx.scratch.floats(kSlotLatentIn, static_cast<size_t>(n * L));
    project(w.latent_down, {}, xn, n, lx, ctx.pool);
    expert_x = lx;
    sum = ctx.scratch.floats(kSlotLatentSum, static_cast<size_t>(n * L));
  }
  std::fill(sum, sum + n * L, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t m = count[e + 1] - count[e];
    if (m == 0) continue;
    float* in = ctx.scratch.floats(kSlotExpertIn, static_cast<size_t>(m * L));
    float* res = ctx.scratch.floats(kSlotExpertOut, static_cast<size_t>(m * L));
    for (int64_t j = 0; j < m; ++j)
      std::memcpy(in + j * L, expert_x + (entries[count[e] + j] / K) * L, L * sizeof(float));
    const Matrix gate = w.gate.all.data ? w.gate.expert(e) : Matrix{};
    dense_ffn(ctx, gate, w.up.expert(e), w.down.expert(e), nullptr, act, in, m, res);
    for (int64_t j = 0; j < m; ++j) {
      const int32_t entry = entries[count[e] + j];
      add_scaled(sum + (entry / K) * L, res + j * L, L, weights[entry]);
    }
  }
  if (latent) project(w.latent_up, {}, sum, n, out, ctx.pool);
  if (w.shared.present()) {
    float* res = ctx.scratch.floats(kSlotExpertOut, static_cast<size_t>(n * D));
    dense_ffn(ctx, w.shared.gate, w.shared.up, w.shared.down, &w.shared, act, xn, n, res);
    add_scaled(out, res, n * D, 1.0f);
  }
}

}  // namespace flatline
