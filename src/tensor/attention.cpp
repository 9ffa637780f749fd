// Tiled causal attention with an online softmax (see attention.h), the
// scalar inner loops, and the ISA dispatch.
#include "tensor/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tensor/attention_kernels.h"
#include "tensor/fp16.h"
#include "tensor/isa.h"
#include "util/error.h"

namespace flatline {

namespace attention_detail {

namespace {

void scalar_dots(const float* q, const float* k, int64_t n, int64_t dim, float* s) {
  for (int64_t j = 0; j < n; ++j) {
    const float* kj = k + j * dim;
    float acc = 0;
    for (int64_t d = 0; d < dim; ++d) acc += q[d] * kj[d];
    s[j] = acc;
  }
}

float scalar_exp_sum(float* x, int64_t n, float m) {
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    sum += x[j];
  }
  return sum;
}

void scalar_accumulate(float* acc, float c, const float* p, const float* v, int64_t n, int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) acc[d] *= c;
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * dim;
    for (int64_t d = 0; d < dim; ++d) acc[d] += p[j] * vj[d];
  }
}

void scalar_scores_block(const float* q, int64_t n_rows, int64_t dk, const float* kt, int64_t kt_stride,
                         int64_t n_keys, float* s, int64_t s_stride) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* sr = s + r * s_stride;
    std::fill(sr, sr + n_keys, 0.0f);
    for (int64_t e = 0; e < dk; ++e) {
      const float qe = q[r * dk + e];
      const float* ke = kt + e * kt_stride;
      for (int64_t j = 0; j < n_keys; ++j) sr[j] += qe * ke[j];
    }
  }
}

void scalar_accumulate_block(float* acc, const float* c, int64_t n_rows, const float* p, int64_t p_stride,
                             const float* v, int64_t n_keys, int64_t dv) {
  for (int64_t r = 0; r < n_rows; ++r) scalar_accumulate(acc + r * dv, c[r], p + r * p_stride, v, n_keys, dv);
}

void scalar_transpose(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst,
                      int64_t dst_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

void scalar_to_f32(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < 32; ++j) dst[i * 32 + j] = d * b[i].qs[j];
      }
      return;
    }
    default: throw Error(std::string("KV cache type ") + traits(type).name + " is not supported");
  }
}

void scalar_from_f32(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case DType::Q8_0: {
      BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
      for (int64_t i = 0; i < n / 32; ++i) {
        const float* x = src + i * 32;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < 32; ++j) b[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      }
      return;
    }
    default: throw Error(std::string("KV cache type ") + traits(type).name + " is not supported");
  }
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k{scalar_dots,   scalar_exp_sum,   scalar_accumulate, scalar_scores_block, scalar_accumulate_block,
                         scalar_transpose, scalar_to_f32, scalar_from_f32};
  return k;
}

const Kernels& active_kernels() {
  return select_for_isa(&scalar_kernels, FLATLINE_X86_ONLY(&avx2_kernels), FLATLINE_X86_ONLY(&avx512_kernels),
                        FLATLINE_ARM_ONLY(&neon_kernels), FLATLINE_ARM_ONLY(&neon_kernels))();
}

}  // namespace attention_detail

using attention_detail::Kernels;

namespace {

// Keys converted and scored together. Decode reads each key once for a few
// query rows, so it takes long runs (the hardware prefetcher streams them
// better); prompt tiles are reused by many rows and stay in L1/L2.
constexpr int64_t kDecodeTile = 256;
constexpr int64_t kPromptTile = 64;
constexpr int64_t kMaxRows = 64;        // query rows (tokens x group heads) per work item
constexpr int64_t kMaxSplits = 16;      // key ranges of one decode query processed in parallel
constexpr int64_t kMinSplitKeys = 256;  // below this a key range is not worth splitting
constexpr int64_t kMinParallelFlops = 1 << 16;  // smaller calls run on the calling thread

int64_t rows_per_tile(int64_t group) { return std::max<int64_t>(1, kMaxRows / group); }
// Rows a thread's tiles must hold for any group size up to max_group.
int64_t max_rows(int64_t max_group) { return std::max(kMaxRows, max_group); }

struct ThreadTiles {
  float* q;    // [rows][dk], already scaled
  float* k;    // [kDecodeTile][dk], or transposed [dk][kPromptTile]
  float* v;    // [kDecodeTile][dv]
  float* s;    // [rows][kDecodeTile]
  float* acc;  // [rows][dv]
  float* m;    // [rows] running max
  float* l;    // [rows] running sum
  float* c;    // [rows] rescale factor of the current tile
  float* row;  // [kPromptTile][dk] keys before transposing
};

size_t thread_floats(int64_t rows, int64_t dk, int64_t dv) {
  auto r = static_cast<size_t>(rows);
  return r * dk + kDecodeTile * (dk + dv) + kPromptTile * dk + r * kDecodeTile + r * dv + 3 * r;
}

ThreadTiles carve(float* base, int64_t rows, int64_t dk, int64_t dv) {
  ThreadTiles t;
  t.q = base;
  t.k = t.q + rows * dk;
  t.v = t.k + kDecodeTile * dk;
  t.s = t.v + kDecodeTile * dv;
  t.acc = t.s + rows * kDecodeTile;
  t.m = t.acc + rows * dv;
  t.l = t.m + rows;
  t.c = t.l + rows;
  t.row = t.c + rows;
  return t;
}

// One work item: the queries of tokens [t0, t1) in the heads of KV head g,
// against keys [key_begin, key_end) (clipped per row to what it may see).
struct WorkItem {
  int64_t g, t0, t1, key_begin, key_end;
};

class AttentionRun {
 public:
  AttentionRun(const AttentionArgs& a, const Kernels& kernels)
      : a_(a), kern_(kernels), group_(a.n_head / a.n_head_kv) {}

  int64_t group() const { return group_; }
  int64_t first_visible(int64_t pos) const {
    return a_.causal && a_.window > 0 ? std::max<int64_t>(0, pos - a_.window + 1) : 0;
  }
  // One past the last key a query at `pos` sees.
  int64_t end_visible(int64_t pos) const { return a_.causal ? pos + 1 : a_.n_keys; }

  // Computes one item; writes final rows to args.out, or (partial != null)
  // the unnormalised state [m, l, acc...] of each row for a later merge.
  void run(const WorkItem& item, ThreadTiles& t, float* partial) const {
    const int64_t dk = a_.head_dim_k, dv = a_.head_dim_v;
    const int64_t rows = (item.t1 - item.t0) * group_;
    load_queries(item, t);
    std::fill(t.m, t.m + rows, -std::numeric_limits<float>::infinity());
    std::fill(t.l, t.l + rows, 0.0f);
    std::fill(t.acc, t.acc + rows * dv, 0.0f);
    const KvRows& kr = a_.k[item.g];
    const KvRows& vr = a_.v[item.g];
    // One query position (decode): few rows, scored key by key. Several
    // positions (prompt chunks): blocks of rows against transposed key tiles.
    const bool one_position = item.t1 - item.t0 == 1;
    const int64_t tile = one_position ? kDecodeTile : kPromptTile;
    for (int64_t j0 = item.key_begin; j0 < item.key_end; j0 += tile) {
      const int64_t j1 = std::min(j0 + tile, item.key_end);
      if (one_position) {
        load_rows(kr, j0, j1, dk, t.k);
      } else {
        load_rows(kr, j0, j1, dk, t.row);
        kern_.transpose(t.row, j1 - j0, dk, dk, t.k, kPromptTile);
      }
      load_rows(vr, j0, j1, dv, t.v);
      if (one_position) {
        prefetch_rows(kr, j1, std::min(j1 + tile, item.key_end));
        prefetch_rows(vr, j1, std::min(j1 + tile, item.key_end));
      }
      if (one_position) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t pos = a_.first_pos + item.t0 + r / group_;
          const int64_t a = std::max(j0, first_visible(pos));
          const int64_t b = std::min(j1, end_visible(pos));
          if (a >= b) continue;
          update_row(t, r, a - j0, b - a);
        }
      } else {
        update_block(t, item, rows, j0, j1);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* acc = t.acc + r * dv;
      if (partial) {
        float* p = partial + r * (dv + 2);
        p[0] = t.m[r];
        p[1] = t.l[r];
        std::memcpy(p + 2, acc, static_cast<size_t>(dv) * sizeof(float));
      } else {
        float* out = output_row(item.t0 + r / group_, item.g * group_ + r % group_);
        const float inv = t.l[r] > 0 ? 1.0f / t.l[r] : 0.0f;
        for (int64_t d = 0; d < dv; ++d) out[d] = acc[d] * inv;
      }
    }
  }

  // Combines the partial states of n_splits key ranges for KV head g.
  void merge(int64_t g, const float* partials, int64_t n_splits) const {
    const int64_t dv = a_.head_dim_v;
    const size_t row_floats = static_cast<size_t>(dv + 2);
    for (int64_t r = 0; r < group_; ++r) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < n_splits; ++s) m = std::max(m, partials[(s * group_ + r) * row_floats]);
      float* out = output_row(0, g * group_ + r);
      std::fill(out, out + dv, 0.0f);
      float l = 0;
      for (int64_t s = 0; s < n_splits; ++s) {
        const float* p = partials + (s * group_ + r) * row_floats;
        if (p[1] == 0.0f) continue;
        const float w = std::exp(p[0] - m);
        l += p[1] * w;
        for (int64_t d = 0; d < dv; ++d) out[d] += p[2 + d] * w;
      }
      const float inv = l > 0 ? 1.0f / l : 0.0f;
      for (int64_t d = 0; d < dv; ++d) out[d] *= inv;
    }
  }

 private:
  float* output_row(int64_t token, int64_t head) const {
    return a_.out + (token * a_.n_head + head) * a_.head_dim_v;
  }

  // Converts the rows of positions [j0, j1) to f32, [j1 - j0][dim]. Rows of
  // one page are contiguous in storage, so each run within a page is one
  // conversion call.
  void load_rows(const KvRows& rows, int64_t j0, int64_t j1, int64_t dim, float* dst) const {
    for (int64_t j = j0; j < j1;) {
      const int64_t run = std::min(j1 - j, rows.run_from(j));
      kern_.to_f32(rows.type, rows.row_at(j), dst + (j - j0) * dim, run * dim);
      j += run;
    }
  }

  // Asks for the next tile's rows while this one is computed: decode reads
  // the cache once, in short runs per head, which the hardware prefetcher
  // alone follows poorly.
  static void prefetch_rows(const KvRows& rows, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1;) {
      const int64_t run = std::min(j1 - j, rows.run_from(j));
      const uint8_t* p = rows.row_at(j);
      const size_t bytes = static_cast<size_t>(run) * rows.row_bytes;
      for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
      j += run;
    }
  }

  void load_queries(const WorkItem& item, ThreadTiles& t) const {
    const int64_t dk = a_.head_dim_k;
    for (int64_t tok = item.t0; tok < item.t1; ++tok) {
      for (int64_t h = 0; h < group_; ++h) {
        const float* src = a_.q + (tok * a_.n_head + item.g * group_ + h) * dk;
        float* dst = t.q + ((tok - item.t0) * group_ + h) * dk;
        for (int64_t d = 0; d < dk; ++d) dst[d] = src[d] * a_.scale;
      }
    }
  }

  // Online softmax step for all rows over the keys [j0, j1) of a
  // transposed key tile; keys a row may not see get probability 0.
  void update_block(ThreadTiles& t, const WorkItem& item, int64_t rows, int64_t j0, int64_t j1) const {
    const int64_t n = j1 - j0;
    kern_.scores_block(t.q, rows, a_.head_dim_k, t.k, kPromptTile, n, t.s, kPromptTile);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = a_.first_pos + item.t0 + r / group_;
      const int64_t a = std::max(j0, first_visible(pos)) - j0;
      const int64_t b = std::min(j1, end_visible(pos)) - j0;
      float* s = t.s + r * kPromptTile;
      if (a >= b) {
        std::fill(s, s + n, 0.0f);
        t.c[r] = 1.0f;
        continue;
      }
      float tile_max = s[a];
      for (int64_t j = a + 1; j < b; ++j) tile_max = std::max(tile_max, s[j]);
      const float m_old = t.m[r];
      const float m_new = std::max(m_old, tile_max);
      t.c[r] = m_old == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m_old - m_new);
      const float sum = kern_.exp_sum(s + a, b - a, m_new);
      std::fill(s, s + a, 0.0f);
      std::fill(s + b, s + n, 0.0f);
      t.l[r] = t.l[r] * t.c[r] + sum;
      t.m[r] = m_new;
    }
    kern_.accumulate_block(t.acc, t.c, rows, t.s, kPromptTile, t.v, n, a_.head_dim_v);
  }

  // Online softmax step for row r over n keys starting at tile offset off.
  void update_row(ThreadTiles& t, int64_t r, int64_t off, int64_t n) const {
    const int64_t dk = a_.head_dim_k, dv = a_.head_dim_v;
    float* s = t.s + r * kDecodeTile;
    kern_.dots(t.q + r * dk, t.k + off * dk, n, dk, s);
    float tile_max = s[0];
    for (int64_t j = 1; j < n; ++j) tile_max = std::max(tile_max, s[j]);
    const float m_old = t.m[r];
    const float m_new = std::max(m_old, tile_max);
    const float c = m_old == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m_old - m_new);
    const float sum = kern_.exp_sum(s, n, m_new);
    t.l[r] = t.l[r] * c + sum;
    t.m[r] = m_new;
    kern_.accumulate(t.acc + r * dv, c, s, t.v + off * dv, n, dv);
  }

  const AttentionArgs& a_;
  const Kernels& kern_;
  int64_t group_;
};

void check_shape(const AttentionArgs& a, int64_t group, int64_t n_head_kv, int64_t dk, int64_t dv, int threads,
                 int pool_threads) {
  if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0)
    throw Error("attention: " + std::to_string(a.n_head) + " heads do not split into " +
                std::to_string(a.n_head_kv) + " KV groups");
  if (a.n_head / a.n_head_kv > group || a.n_head_kv > n_head_kv || a.head_dim_k > dk || a.head_dim_v > dv ||
      pool_threads > threads)
    throw Error("attention: call shape exceeds the scratch it was given");
}

}  // namespace

AttentionScratch::AttentionScratch(int n_threads, int64_t n_head, int64_t n_head_kv, int64_t head_dim_k,
                                   int64_t head_dim_v)
    : n_threads_(n_threads),
      group_(std::max<int64_t>(1, n_head / std::max<int64_t>(1, n_head_kv))),
      head_dim_k_(head_dim_k),
      head_dim_v_(head_dim_v),
      n_head_kv_(n_head_kv) {
  const int64_t rows = max_rows(group_);
  per_thread_ = thread_floats(rows, head_dim_k, head_dim_v);
  partials_at_ = per_thread_ * static_cast<size_t>(n_threads);
  const size_t partial_floats = static_cast<size_t>(n_head_kv * kMaxSplits * group_ * (head_dim_v + 2));
  buffer_.assign(partials_at_ + partial_floats, 0.0f);
  slot_busy_ = std::make_unique<std::atomic<bool>[]>(static_cast<size_t>(n_threads));
}

void attention(const AttentionArgs& args, AttentionScratch& scratch, ThreadPool& pool) {
  check_shape(args, scratch.group_, scratch.n_head_kv_, scratch.head_dim_k_, scratch.head_dim_v_,
              scratch.n_threads_, pool.size());
  if (args.n_tokens <= 0) return;
  const Kernels& kernels = attention_detail::active_kernels();
  AttentionRun run(args, kernels);
  const int64_t group = run.group();
  const int64_t tile_tokens = rows_per_tile(group);
  const int64_t n_tiles = (args.n_tokens + tile_tokens - 1) / tile_tokens;
  const int64_t alloc_rows = max_rows(scratch.group_);

  // A single query per head (decode) gives too few items to keep every
  // thread busy, so its key range is split and the parts merged after.
  int64_t n_splits = 1;
  const int64_t last_pos = args.first_pos + args.n_tokens - 1;
  const int64_t key_lo = run.first_visible(args.first_pos);
  const int64_t key_end = run.end_visible(last_pos);
  if (args.n_tokens == 1 && args.n_head_kv < 2 * pool.size()) {
    const int64_t wanted = (2 * pool.size() + args.n_head_kv - 1) / args.n_head_kv;
    const int64_t span = key_end - key_lo;
    n_splits = std::clamp<int64_t>(std::min(wanted, span / kMinSplitKeys), 1, kMaxSplits);
  }
  const int64_t n_items = args.n_head_kv * n_tiles * n_splits;
  float* partials = scratch.buffer_.data() + scratch.partials_at_;
  const size_t split_floats = static_cast<size_t>(group * (args.head_dim_v + 2));

  auto item_at = [&](int64_t i) {
    WorkItem w;
    w.g = i / (n_tiles * n_splits);
    const int64_t tile = (i / n_splits) % n_tiles;
    const int64_t split = i % n_splits;
    w.t0 = tile * tile_tokens;
    w.t1 = std::min(args.n_tokens, w.t0 + tile_tokens);
    const int64_t lo = run.first_visible(args.first_pos + w.t0);
    const int64_t hi = run.end_visible(args.first_pos + w.t1 - 1);  // exclusive
    const int64_t per = (hi - lo + n_splits - 1) / n_splits;
    w.key_begin = std::min(hi, lo + split * per);
    w.key_end = std::min(hi, w.key_begin + per);
    return w;
  };

  auto work = [&](int64_t i, int slot) {
    float* base = scratch.buffer_.data() + scratch.per_thread_ * static_cast<size_t>(slot);
    ThreadTiles tiles = carve(base, alloc_rows, scratch.head_dim_k_, scratch.head_dim_v_);
    WorkItem w = item_at(i);
    float* partial = n_splits > 1 ? partials + (w.g * n_splits + i % n_splits) * split_floats : nullptr;
    run.run(w, tiles, partial);
  };
  // Small problems (short contexts of small models) are not worth waking the pool for.
  const int64_t span = key_end - key_lo;
  const int64_t flops = args.n_tokens * span * args.n_head * (args.head_dim_k + args.head_dim_v);
  if (n_items == 1 || flops < kMinParallelFlops) {
    for (int64_t i = 0; i < n_items; ++i) work(i, 0);
  } else {
    // Items go to whichever threads come first (a descheduled worker is not
    // waited for), so the scratch tiles are claimed per item: at most
    // pool.size() items run at once, so a free slot always exists.
    std::atomic<bool>* busy = scratch.slot_busy_.get();
    pool.parallel_chunks(n_items, 1, [&](int64_t begin, int64_t end) {
      int slot = 0;
      for (bool expected = false; !busy[slot].compare_exchange_strong(expected, true); expected = false)
        slot = (slot + 1) % scratch.n_threads_;
      for (int64_t i = begin; i < end; ++i) work(i, slot);
      busy[slot].store(false, std::memory_order_release);
    });
  }
  if (n_splits > 1)
    for (int64_t g = 0; g < args.n_head_kv; ++g) run.merge(g, partials + g * n_splits * split_floats, n_splits);
}

bool kv_type_supported(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::Q8_0; }

void kv_row_from_f32(DType type, const float* src, void* dst, int64_t n) {
  attention_detail::active_kernels().from_f32(type, src, dst, n);
}

void kv_row_to_f32(DType type, const void* src, float* dst, int64_t n) {
  attention_detail::active_kernels().to_f32(type, src, dst, n);
}

}  // namespace flatline
