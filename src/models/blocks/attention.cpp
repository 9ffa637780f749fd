#include "models/blocks/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/blocks/common.h"

namespace flatline {

namespace {

constexpr int64_t kMaxKvHeads = 256;

// Writes the K and V rows of a segment into its state's KV part.
void store_kv(const ChunkContext& ctx, const AttentionLayer& layer, int64_t kv_layer, const Segment& s, const float* k,
              const float* v) {
  const AttentionConfig& c = layer.config;
  KvPart& kv = ctx.state(s).kv();
  kv.make_writable(kv_layer, s.pos0, s.pos0 + s.n);
  const DType type = kv.type();
  for (int64_t i = 0; i < s.n; ++i) {
    const int64_t row = s.row0 + i, pos = s.pos0 + i;
    for (int64_t h = 0; h < c.n_head_kv; ++h) {
      kv_row_from_f32(type, k + (row * c.n_head_kv + h) * c.head_dim_k, kv.k_row(kv_layer, h, pos), c.head_dim_k);
      kv_row_from_f32(type, v + (row * c.n_head_kv + h) * c.head_dim_v, kv.v_row(kv_layer, h, pos), c.head_dim_v);
    }
  }
}

AttentionArgs base_args(const AttentionConfig& c, const Segment& s, const float* q, float* att) {
  AttentionArgs a;
  a.n_tokens = s.n;
  a.first_pos = s.pos0;
  a.n_head = c.n_head;
  a.n_head_kv = c.n_head_kv;
  a.head_dim_k = c.head_dim_k;
  a.head_dim_v = c.head_dim_v;
  a.window = c.window;
  a.scale = c.scale > 0 ? c.scale : static_cast<float>(1.0 / std::sqrt(double(c.head_dim_k)));
  a.q = q + s.row0 * c.n_head * c.head_dim_k;
  a.out = att + s.row0 * c.n_head * c.head_dim_v;
  return a;
}

// Queries of the segment against its conversation's KV part: causally, or
// (cached diffusion steps) against every position the state holds.
void attend_cached(const ChunkContext& ctx, const AttentionLayer& layer, int64_t kv_layer, const Segment& s, const float* q,
                   float* att, bool causal) {
  const AttentionConfig& c = layer.config;
  const KvPart& kv = ctx.state(s).kv();
  KvRows k_rows[kMaxKvHeads], v_rows[kMaxKvHeads];
  for (int64_t h = 0; h < c.n_head_kv; ++h) {
    k_rows[h] = kv.k_rows(kv_layer, h);
    v_rows[h] = kv.v_rows(kv_layer, h);
  }
  AttentionArgs a = base_args(c, s, q, att);
  a.k = k_rows;
  a.v = v_rows;
  if (!causal) {
    a.causal = false;
    a.n_keys = ctx.state(s).n_past();
  }
  attention(a, ctx.attention, ctx.pool);
}

// Full mask: every row of the segment sees every row of it. K and V are
// gathered head by head into contiguous f32 rows (one "page" per head).
void attend_segment(const ChunkContext& ctx, const AttentionLayer& layer, const Segment& s, const float* k,
                    const float* v, const float* q, float* att) {
  const AttentionConfig& c = layer.config;
  const int64_t dk = c.head_dim_k, dv = c.head_dim_v;
  float* hk = ctx.scratch.floats(kSlotHeadK, static_cast<size_t>(c.n_head_kv * s.n * dk));
  float* hv = ctx.scratch.floats(kSlotHeadV, static_cast<size_t>(c.n_head_kv * s.n * dv));
  const uint8_t* k_pages[kMaxKvHeads];
  const uint8_t* v_pages[kMaxKvHeads];
  KvRows k_rows[kMaxKvHeads], v_rows[kMaxKvHeads];
  for (int64_t h = 0; h < c.n_head_kv; ++h) {
    for (int64_t i = 0; i < s.n; ++i) {
      std::memcpy(hk + (h * s.n + i) * dk, k + ((s.row0 + i) * c.n_head_kv + h) * dk, dk * sizeof(float));
      std::memcpy(hv + (h * s.n + i) * dv, v + ((s.row0 + i) * c.n_head_kv + h) * dv, dv * sizeof(float));
    }
    k_pages[h] = reinterpret_cast<const uint8_t*>(hk + h * s.n * dk);
    v_pages[h] = reinterpret_cast<const uint8_t*>(hv + h * s.n * dv);
    k_rows[h] = KvRows{DType::F32, &k_pages[h], 0, dk * sizeof(float), s.n};
    v_rows[h] = KvRows{DType::F32, &v_pages[h], 0, dv * sizeof(float), s.n};
  }
  AttentionArgs a = base_args(c, s, q, att);
  a.first_pos = 0;
  a.causal = false;
  a.n_keys = s.n;
  a.k = k_rows;
  a.v = v_rows;
  attention(a, ctx.attention, ctx.pool);
}

}  // namespace

int64_t attention_floats_per_row(const AttentionConfig& c) {
  return c.n_head * c.head_dim_k + c.n_head_kv * (c.head_dim_k + c.head_dim_v) * 2 + c.n_head * c.head_dim_v;
}

void attention_forward(const ChunkContext& ctx, const AttentionLayer& layer, int64_t kv_layer, AttentionMask mask,
                       float norm_eps, const float* rope_cos, const float* rope_sin, const float* xn, float* out) {
  const AttentionConfig& c = layer.config;
  const AttentionWeights& w = layer.weights;
  const int64_t n = ctx.n_rows;
  float* q = ctx.scratch.floats(kSlotQ, static_cast<size_t>(n * c.n_head * c.head_dim_k));
  float* k = ctx.scratch.floats(kSlotK, static_cast<size_t>(n * c.n_head_kv * c.head_dim_k));
  float* v = ctx.scratch.floats(kSlotV, static_cast<size_t>(n * c.n_head_kv * c.head_dim_v));
  float* att = ctx.scratch.floats(kSlotAttn, static_cast<size_t>(n * c.n_head * c.head_dim_v));

  project(w.q, w.bq, xn, n, q, ctx.pool);
  project(w.k, w.bk, xn, n, k, ctx.pool);
  project(w.v, w.bv, xn, n, v, ctx.pool);
  if (c.qk_norm) {
    rms_norm_rows(q, w.q_norm.data(), q, n * c.n_head, c.head_dim_k, norm_eps, ctx.pool);
    rms_norm_rows(k, w.k_norm.data(), k, n * c.n_head_kv, c.head_dim_k, norm_eps, ctx.pool);
  }
  if (layer.rope) {
    layer.rope->apply(q, 0, n, c.n_head, c.head_dim_k, rope_cos, rope_sin);
    layer.rope->apply(k, 0, n, c.n_head_kv, c.head_dim_k, rope_cos, rope_sin);
  }
  for (const Segment& s : ctx.segments) {
    if (mask == AttentionMask::Causal) {
      store_kv(ctx, layer, kv_layer, s, k, v);
      attend_cached(ctx, layer, kv_layer, s, q, att, /*causal=*/true);
    } else if (mask == AttentionMask::Cached) {
      store_kv(ctx, layer, kv_layer, s, k, v);
      attend_cached(ctx, layer, kv_layer, s, q, att, /*causal=*/false);
    } else {
      if (ctx.args.store_kv) store_kv(ctx, layer, kv_layer, s, k, v);
      attend_segment(ctx, layer, s, k, v, q, att);
    }
  }
  project(w.o, w.bo, att, n, out, ctx.pool);
}

}  // namespace flatline
