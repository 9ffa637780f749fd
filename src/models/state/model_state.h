// Everything about one conversation that a model carries from token to
// token, built from two parts:
//   - a KV part: the keys and values of the attention layers (grows with the
//     context; pages shared between snapshots, see kv_part.h), and
//   - a recurrent part: fixed f32 slabs (RWKV-7's token shift and WKV
//     matrices, Mamba's convolution window and SSM state).
// A transformer has only the first, RWKV-7 and Mamba only the second, a
// hybrid both. Every architecture uses this one class, so cloning, saving,
// loading and measuring a state work the same everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "models/state/kv_part.h"

namespace flatline {

// The shape of a state: what a model creates and what it accepts.
struct StateLayout {
  DType kv_type = DType::F16;
  std::vector<KvLayerShape> kv_layers;
  std::vector<int64_t> recurrent_slabs;  // floats in each slab

  bool operator==(const StateLayout&) const = default;
  bool has_kv() const { return !kv_layers.empty(); }
  bool has_recurrent() const { return !recurrent_slabs.empty(); }
  uint64_t recurrent_bytes() const;
};

// The fixed slabs of a recurrent state, zero when fresh.
class RecurrentPart {
 public:
  RecurrentPart() = default;
  explicit RecurrentPart(const std::vector<int64_t>& slab_sizes);

  float* slab(int64_t i) { return data_.data() + offsets_[i]; }
  const float* slab(int64_t i) const { return data_.data() + offsets_[i]; }
  int64_t n_slabs() const { return static_cast<int64_t>(offsets_.size()); }
  std::span<float> all() { return data_; }
  std::span<const float> all() const { return data_; }
  void reset();
  uint64_t bytes() const { return data_.size() * sizeof(float); }

 private:
  std::vector<float> data_;
  std::vector<size_t> offsets_;
};

// Memory of a state: the fixed part (recurrent slabs and bookkeeping), the
// KV pages it holds, and how many of those another state also holds.
struct StateMemory {
  uint64_t fixed = 0;
  uint64_t kv = 0;
  uint64_t kv_shared = 0;
  uint64_t total() const { return fixed + kv; }
};

class ModelState {
 public:
  // n_ctx: most tokens the state may hold; 0 = unbounded (states without a
  // KV part only).
  ModelState(StateLayout layout, int64_t n_ctx);

  // A copy that shares the KV pages (copied only when one of the two writes
  // into a shared page) and copies the recurrent part.
  std::unique_ptr<ModelState> clone() const;
  void reset();  // back to the empty context

  int64_t n_past() const { return n_past_; }  // tokens consumed since reset
  int64_t n_ctx() const { return n_ctx_; }    // capacity (0 = unbounded)
  const StateLayout& layout() const { return layout_; }
  KvPart& kv() { return kv_; }
  const KvPart& kv() const { return kv_; }
  RecurrentPart& recurrent() { return recurrent_; }
  const RecurrentPart& recurrent() const { return recurrent_; }
  void advance(int64_t n) { n_past_ += n; }

  StateMemory memory() const;
  size_t memory_bytes() const { return static_cast<size_t>(memory().total()); }
  void for_each_kv_page(const std::function<void(const void*, uint64_t)>& fn) const { kv_.for_each_page(fn); }

  // Appends the versioned payload (format below) to `out`. load() checks it
  // against this state's layout and capacity and throws Error naming the
  // problem, leaving the state unchanged.
  void save(std::vector<uint8_t>& out) const;
  void load(std::span<const uint8_t> in);

  // Drops the newest tokens so n_tokens remain. Only states without a
  // recurrent part can (a recurrent state cannot be rolled back), and only as
  // far back as every sliding-window layer still holds what the next token
  // sees. Returns false (state unchanged) otherwise.
  bool truncate(int64_t n_tokens);

  // Payload format, all integers little-endian:
  //   u32 magic "FLST" (0x54534c46)   u32 version (kPayloadVersion)
  //   i64 n_past
  //   u32 KV type (DType id)   u32 KV layers, each: u32 heads, u32 dk, u32 dv, i64 window
  //   u32 recurrent slabs, each: u64 floats
  //   per KV layer: i64 first saved position, then the K and V rows of
  //     [first, n_past) (KvPart::append_positions); window layers save only
  //     what the next token sees
  //   the recurrent floats, slab after slab
  static constexpr uint32_t kPayloadMagic = 0x54534c46;
  static constexpr uint32_t kPayloadVersion = 1;

 private:
  int64_t lowest_visible(int64_t layer, int64_t pos) const;

  StateLayout layout_;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  KvPart kv_;
  RecurrentPart recurrent_;
};

}  // namespace flatline
