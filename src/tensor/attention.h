// Softmax attention (causal, or bidirectional over a set of keys) of a chunk of queries against a KV cache, for
// one layer: out = softmax(scale * Q K^T + mask) V per head, with grouped
// KV heads (GQA) and an optional sliding window.
//
// Keys and values are read straight from the cache in its storage type (F32,
// F16 or Q8_0) tile by tile and combined with an online softmax, so no
// buffer grows with the context length. Work is split over (KV head, query
// tile, key range) items on the thread pool; the inner loops use AVX2 or
// AVX-512 when active_isa() allows (src/tensor/isa.h).
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/thread_pool.h"

namespace flatline {

// Row storage of one KV head in one layer, in pages: position p lives in
// row p % page_rows of page p / page_rows. Pages of one layer are separate
// allocations so that snapshots of a conversation can share them (see
// models/state/kv_part.h); a contiguous buffer is a single page. Pages a
// query cannot see (outside a sliding window) may be null.
struct KvRows {
  DType type = DType::F16;
  const uint8_t* const* pages = nullptr;
  size_t offset = 0;  // bytes from a page's start to this head's first row
  size_t row_bytes = 0;
  int64_t page_rows = 0;

  const uint8_t* row_at(int64_t pos) const {
    return pages[pos / page_rows] + offset + static_cast<size_t>(pos % page_rows) * row_bytes;
  }
  // Rows from pos on that are contiguous in memory (up to the page's end).
  int64_t run_from(int64_t pos) const { return page_rows - pos % page_rows; }
};

struct AttentionArgs {
  int64_t n_tokens = 0;    // queries, at consecutive positions first_pos, first_pos + 1, ...
  int64_t first_pos = 0;
  int64_t n_head = 0;      // query heads; head h reads KV head h / (n_head / n_head_kv)
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t window = 0;      // 0: every earlier key; W: key j visible from query i iff i - W < j <= i
  bool causal = true;      // false: every query sees keys [0, n_keys) (bidirectional; window ignored)
  int64_t n_keys = 0;      // keys when not causal
  float scale = 1.0f;      // multiplies q.k before the softmax
  const float* q = nullptr;  // [n_tokens][n_head][head_dim_k]
  float* out = nullptr;      // [n_tokens][n_head][head_dim_v]
  const KvRows* k = nullptr;  // [n_head_kv]; must hold every visible position
  const KvRows* v = nullptr;  // [n_head_kv]
};

// Buffers the attention needs, fixed for a model shape: per-thread tiles
// and room for the partial results of split key ranges. Allocated once at
// model load; attention() itself allocates nothing.
class AttentionScratch {
 public:
  AttentionScratch() = default;
  AttentionScratch(int n_threads, int64_t n_head, int64_t n_head_kv, int64_t head_dim_k, int64_t head_dim_v);
  size_t bytes() const { return buffer_.size() * sizeof(float); }

 private:
  friend void attention(const AttentionArgs& args, AttentionScratch& scratch, ThreadPool& pool);
  int n_threads_ = 0;
  int64_t group_ = 0, head_dim_k_ = 0, head_dim_v_ = 0, n_head_kv_ = 0;
  size_t per_thread_ = 0;     // floats of one thread's tiles
  size_t partials_at_ = 0;    // offset of the split-key partial results
  std::vector<float> buffer_;
  std::unique_ptr<std::atomic<bool>[]> slot_busy_;  // per-thread tiles in use
};

// Runs the attention. The pool may have no more threads, and the GQA group
// (n_head / n_head_kv), n_head_kv and head dims must be no larger, than
// those the scratch was made for; otherwise it throws Error.
void attention(const AttentionArgs& args, AttentionScratch& scratch, ThreadPool& pool);

// Conversions between f32 rows and KV storage rows (F32, F16 or Q8_0; Q8_0
// needs n to be a multiple of 32). Q8_0 follows ggml: d = max|x| / 127 as
// f16, q = round(x / d).
void kv_row_from_f32(DType type, const float* src, void* dst, int64_t n);
void kv_row_to_f32(DType type, const void* src, float* dst, int64_t n);
bool kv_type_supported(DType type);

}  // namespace flatline
