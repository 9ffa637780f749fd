// The keys and values of the attention layers of one conversation, in pages
// that snapshots share.
//
// Each attention layer keeps its positions in pages of kPageRows positions;
// a page holds, for every KV head, the K rows and then the V rows of its
// positions in the cache's element type (F32, F16 or Q8_0). Pages are
// reference counted: clone() copies only the page table, and a page is
// copied the first time a shared one is written (copy on write). Because a
// conversation only appends, a snapshot and the live conversation share every
// page but the last partly filled one, so N snapshots of one conversation cost
// about one KV plus N pages per layer, not N KVs.
//
// Pages are allocated as tokens arrive, so a state for a 32k context that
// holds 100 tokens takes the memory of 100 tokens. Sliding-window layers
// release the pages no later query can see.
#pragma once

#include <cstdint>
#include <functional>
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
  int64_t window = 0;          // 0: full attention; W: a query sees itself and the W - 1 positions before it
  bool keep_all = false;       // window layers: keep every page anyway (so truncate() can go back far)

  bool operator==(const KvLayerShape&) const = default;
};

class KvPart {
 public:
  static constexpr int64_t kPageRows = 64;

  KvPart() = default;
  KvPart(DType type, std::vector<KvLayerShape> layers);

  DType type() const { return type_; }
  const std::vector<KvLayerShape>& layers() const { return layers_; }
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  bool empty() const { return layers_.empty(); }
  size_t k_row_bytes(int64_t layer) const { return row_bytes(type_, layers_[layer].head_dim_k); }
  size_t v_row_bytes(int64_t layer) const { return row_bytes(type_, layers_[layer].head_dim_v); }
  // Bytes of one page of a layer, and the bytes one position adds to a layer.
  uint64_t page_bytes(int64_t layer) const;
  uint64_t position_bytes(int64_t layer) const;
  // Upper bound of the bytes a part with this shape holds for n positions
  // (full layers: every position; window layers: the pages a window spans).
  static uint64_t bytes_for(DType type, const std::vector<KvLayerShape>& layers, int64_t n_positions);

  // Makes the pages that hold positions [lo, hi) of a layer present and not
  // shared, so k_row / v_row may be written. Allocates; call it before the
  // writes of a chunk, not per row.
  void make_writable(int64_t layer, int64_t lo, int64_t hi);
  uint8_t* k_row(int64_t layer, int64_t head, int64_t pos);
  uint8_t* v_row(int64_t layer, int64_t head, int64_t pos);
  KvRows k_rows(int64_t layer, int64_t head) const;
  KvRows v_rows(int64_t layer, int64_t head) const;

  // Copies the K and V rows of positions [lo, hi) from one layer to another
  // of the same shape (looped models fill the KV of loops a token skipped).
  void copy_positions(int64_t from_layer, int64_t to_layer, int64_t lo, int64_t hi);
  // Releases the pages of every position below `pos` (window layers after a
  // forward: no later query sees them). Full and keep_all layers keep them.
  void release_unseen(int64_t layer, int64_t next_pos);
  // Releases the pages that only hold positions >= pos (after truncation).
  void release_from(int64_t layer, int64_t pos);
  // Lowest position whose page is still held in a layer (0 for full layers).
  int64_t kept_from(int64_t layer) const { return kept_from_[layer]; }
  void reset();

  // Appends the K then V rows of positions [lo, hi) of one layer, head by
  // head in position order; read_positions is its inverse (it makes the pages
  // writable) and returns the bytes it consumed.
  void append_positions(std::vector<uint8_t>& out, int64_t layer, int64_t lo, int64_t hi) const;
  size_t read_positions(std::span<const uint8_t> in, int64_t layer, int64_t lo, int64_t hi);
  uint64_t payload_bytes(int64_t layer, int64_t n_positions) const;
  void set_kept_from(int64_t layer, int64_t pos) { kept_from_[layer] = pos; }

  // Memory: every held page, and those of them another state also holds.
  uint64_t bytes() const;
  uint64_t shared_bytes() const;
  // Calls fn(page identity, bytes) for each held page (the state cache counts
  // pages shared between snapshots once).
  void for_each_page(const std::function<void(const void*, uint64_t)>& fn) const;

 private:
  using Page = std::shared_ptr<uint8_t[]>;
  struct Layer {
    std::vector<Page> pages;               // index = position / kPageRows; null where released
    std::vector<const uint8_t*> pointers;  // the same, raw, for KvRows
  };
  uint8_t* page_row(int64_t layer, int64_t head, int64_t pos, bool value) const;
  void release_pages(int64_t layer, int64_t first_page, int64_t end_page);

  DType type_ = DType::F16;
  std::vector<KvLayerShape> layers_;
  std::vector<Layer> data_;
  std::vector<int64_t> kept_from_;
};

}  // namespace flatline
