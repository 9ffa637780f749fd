// The keys and values of a transformer conversation: one block per layer,
// allocated once for the context size and never resized.
//
// Layer l keeps, for each KV head, `capacity` rows of keys and of values in
// the cache's element type (F32, F16 or Q8_0); position p lives in row
// p % capacity. Full-attention layers get capacity n_ctx. Sliding-window
// layers need only the last window - 1 positions plus the chunk being
// processed, so they may get a smaller capacity and are used as a ring.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tensor/attention.h"
#include "tensor/dtype.h"

namespace flatline {

struct KvLayerShape {
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t window = 0;    // 0: full attention; W: the layer sees the last W positions
  int64_t capacity = 0;  // rows kept per head

  bool operator==(const KvLayerShape&) const = default;
};

class KvCache {
 public:
  KvCache(DType type, std::vector<KvLayerShape> layers);

  // Bytes a cache of this type and shape allocates.
  static uint64_t bytes_for(DType type, const std::vector<KvLayerShape>& layers);

  DType type() const { return type_; }
  const std::vector<KvLayerShape>& layers() const { return layers_; }
  uint64_t bytes() const { return bytes_; }
  size_t k_row_bytes(int64_t layer) const { return row_bytes(type_, layers_[layer].head_dim_k); }
  size_t v_row_bytes(int64_t layer) const { return row_bytes(type_, layers_[layer].head_dim_v); }

  uint8_t* k_row(int64_t layer, int64_t head, int64_t pos) { return block(layer, head, pos, false); }
  uint8_t* v_row(int64_t layer, int64_t head, int64_t pos) { return block(layer, head, pos, true); }
  KvRows k_rows(int64_t layer, int64_t head) const;
  KvRows v_rows(int64_t layer, int64_t head) const;

  // Copies the K and V rows of positions [lo, hi) of one layer from a cache
  // of the same type and shape (hi - lo <= capacity).
  void copy_positions(const KvCache& from, int64_t layer, int64_t lo, int64_t hi);
  // Appends / reads the K then V rows of positions [lo, hi), head by head in
  // position order. read_positions returns the bytes it consumed.
  void append_positions(std::vector<uint8_t>& out, int64_t layer, int64_t lo, int64_t hi) const;
  size_t read_positions(std::span<const uint8_t> in, int64_t layer, int64_t lo, int64_t hi);
  // Bytes append_positions writes for n positions of one layer.
  uint64_t payload_bytes(int64_t layer, int64_t n_positions) const;

 private:
  uint8_t* block(int64_t layer, int64_t head, int64_t pos, bool value) const;
  // Calls fn(first_row, count, first_pos) for the row runs holding [lo, hi).
  template <typename F>
  void for_each_run(int64_t layer, int64_t lo, int64_t hi, F&& fn) const;

  DType type_;
  std::vector<KvLayerShape> layers_;
  std::vector<size_t> layer_offset_;  // start of layer l: K of every head, then V of every head
  uint64_t bytes_ = 0;
  std::unique_ptr<uint8_t[]> data_;
};

}  // namespace flatline
