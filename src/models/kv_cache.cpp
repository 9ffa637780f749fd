#include "models/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "util/error.h"

namespace flatline {

namespace {

uint64_t layer_bytes(DType type, const KvLayerShape& s) {
  return static_cast<uint64_t>(s.n_head_kv) * static_cast<uint64_t>(s.capacity) *
         (row_bytes(type, s.head_dim_k) + row_bytes(type, s.head_dim_v));
}

}  // namespace

uint64_t KvCache::bytes_for(DType type, const std::vector<KvLayerShape>& layers) {
  uint64_t total = 0;
  for (const auto& s : layers) total += layer_bytes(type, s);
  return total;
}

KvCache::KvCache(DType type, std::vector<KvLayerShape> layers) : type_(type), layers_(std::move(layers)) {
  if (!kv_type_supported(type))
    throw Error(std::string("KV cache type must be F32, F16 or Q8_0, found ") + traits(type).name);
  for (const auto& s : layers_) {
    layer_offset_.push_back(bytes_);
    bytes_ += layer_bytes(type, s);
  }
  // Default-initialised: pages are committed only when tokens are written.
  data_.reset(new uint8_t[bytes_ ? bytes_ : 1]);
}

uint8_t* KvCache::block(int64_t layer, int64_t head, int64_t pos, bool value) const {
  const KvLayerShape& s = layers_[layer];
  const size_t k_bytes = row_bytes(type_, s.head_dim_k);
  const size_t v_bytes = row_bytes(type_, s.head_dim_v);
  const size_t cap = static_cast<size_t>(s.capacity);
  size_t off = layer_offset_[layer];
  if (value) off += static_cast<size_t>(s.n_head_kv) * cap * k_bytes + static_cast<size_t>(head) * cap * v_bytes;
  else off += static_cast<size_t>(head) * cap * k_bytes;
  off += static_cast<size_t>(pos % s.capacity) * (value ? v_bytes : k_bytes);
  return data_.get() + off;
}

KvRows KvCache::k_rows(int64_t layer, int64_t head) const {
  return KvRows{type_, block(layer, head, 0, false), k_row_bytes(layer), layers_[layer].capacity};
}

KvRows KvCache::v_rows(int64_t layer, int64_t head) const {
  return KvRows{type_, block(layer, head, 0, true), v_row_bytes(layer), layers_[layer].capacity};
}

template <typename F>
void KvCache::for_each_run(int64_t layer, int64_t lo, int64_t hi, F&& fn) const {
  const int64_t cap = layers_[layer].capacity;
  int64_t pos = lo;
  while (pos < hi) {
    const int64_t row = pos % cap;
    const int64_t count = std::min(hi - pos, cap - row);
    fn(row, count, pos);
    pos += count;
  }
}

void KvCache::copy_positions(const KvCache& from, int64_t layer, int64_t lo, int64_t hi) {
  const KvLayerShape& s = layers_[layer];
  for_each_run(layer, lo, hi, [&](int64_t, int64_t count, int64_t pos) {
    for (int64_t h = 0; h < s.n_head_kv; ++h) {
      std::memcpy(k_row(layer, h, pos), from.block(layer, h, pos, false), count * k_row_bytes(layer));
      std::memcpy(v_row(layer, h, pos), from.block(layer, h, pos, true), count * v_row_bytes(layer));
    }
  });
}

uint64_t KvCache::payload_bytes(int64_t layer, int64_t n_positions) const {
  return static_cast<uint64_t>(layers_[layer].n_head_kv) * static_cast<uint64_t>(n_positions) *
         (k_row_bytes(layer) + v_row_bytes(layer));
}

void KvCache::append_positions(std::vector<uint8_t>& out, int64_t layer, int64_t lo, int64_t hi) const {
  const KvLayerShape& s = layers_[layer];
  for (int value = 0; value < 2; ++value) {
    const size_t rb = value ? v_row_bytes(layer) : k_row_bytes(layer);
    for (int64_t h = 0; h < s.n_head_kv; ++h) {
      for_each_run(layer, lo, hi, [&](int64_t, int64_t count, int64_t pos) {
        const uint8_t* src = block(layer, h, pos, value != 0);
        out.insert(out.end(), src, src + count * rb);
      });
    }
  }
}

size_t KvCache::read_positions(std::span<const uint8_t> in, int64_t layer, int64_t lo, int64_t hi) {
  const KvLayerShape& s = layers_[layer];
  size_t used = 0;
  for (int value = 0; value < 2; ++value) {
    const size_t rb = value ? v_row_bytes(layer) : k_row_bytes(layer);
    for (int64_t h = 0; h < s.n_head_kv; ++h) {
      for_each_run(layer, lo, hi, [&](int64_t, int64_t count, int64_t pos) {
        std::memcpy(block(layer, h, pos, value != 0), in.data() + used, count * rb);
        used += count * rb;
      });
    }
  }
  return used;
}

}  // namespace flatline
