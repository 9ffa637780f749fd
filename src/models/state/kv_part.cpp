#include "models/state/kv_part.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "util/error.h"

namespace flatline {

KvPart::KvPart(DType type, std::vector<KvLayerShape> layers)
    : type_(type), layers_(std::move(layers)), data_(layers_.size()), kept_from_(layers_.size(), 0) {
  if (!kv_type_supported(type))
    throw Error(std::string("KV cache type must be F32, F16 or Q8_0, found ") + traits(type).name);
  for (const auto& s : layers_)
    if (s.n_head_kv <= 0 || s.head_dim_k <= 0 || s.head_dim_v <= 0 || s.window < 0)
      throw Error("KV layer shape must be positive: " + std::to_string(s.n_head_kv) + " heads of " +
                  std::to_string(s.head_dim_k) + "/" + std::to_string(s.head_dim_v) + ", window " +
                  std::to_string(s.window));
}

uint64_t KvPart::position_bytes(int64_t layer) const {
  return static_cast<uint64_t>(layers_[layer].n_head_kv) * (k_row_bytes(layer) + v_row_bytes(layer));
}

uint64_t KvPart::page_bytes(int64_t layer) const { return position_bytes(layer) * kPageRows; }

uint64_t KvPart::bytes_for(DType type, const std::vector<KvLayerShape>& layers, int64_t n_positions) {
  uint64_t total = 0;
  const int64_t full_pages = (std::max<int64_t>(0, n_positions) + kPageRows - 1) / kPageRows;
  for (const auto& s : layers) {
    int64_t pages = full_pages;
    // A window spans at most ceil((W - 1) / P) + 1 pages, plus the one being filled.
    if (s.window > 0 && !s.keep_all) pages = std::min(pages, (s.window + kPageRows - 2) / kPageRows + 2);
    const uint64_t per_pos = static_cast<uint64_t>(s.n_head_kv) * (row_bytes(type, s.head_dim_k) + row_bytes(type, s.head_dim_v));
    total += static_cast<uint64_t>(pages) * kPageRows * per_pos;
  }
  return total;
}

void KvPart::make_writable(int64_t layer, int64_t lo, int64_t hi) {
  if (hi <= lo) return;
  Layer& L = data_[layer];
  const int64_t first = lo / kPageRows, end = (hi - 1) / kPageRows + 1;
  if (static_cast<int64_t>(L.pages.size()) < end) {
    L.pages.resize(static_cast<size_t>(end));
    L.pointers.resize(static_cast<size_t>(end), nullptr);
  }
  const size_t bytes = static_cast<size_t>(page_bytes(layer));
  for (int64_t p = first; p < end; ++p) {
    Page& page = L.pages[p];
    if (page && page.use_count() == 1) continue;
    // Only this state can hand out new references to a page it holds alone,
    // so use_count() == 1 cannot change under us. A shared page is copied.
    Page fresh(new uint8_t[bytes]);
    if (page) std::memcpy(fresh.get(), page.get(), bytes);
    page = std::move(fresh);
    L.pointers[p] = page.get();
  }
  kept_from_[layer] = std::min(kept_from_[layer], first * kPageRows);
}

uint8_t* KvPart::page_row(int64_t layer, int64_t head, int64_t pos, bool value) const {
  const KvLayerShape& s = layers_[layer];
  const size_t kb = k_row_bytes(layer), vb = v_row_bytes(layer);
  size_t off = value ? static_cast<size_t>(s.n_head_kv) * kPageRows * kb + static_cast<size_t>(head) * kPageRows * vb
                     : static_cast<size_t>(head) * kPageRows * kb;
  off += static_cast<size_t>(pos % kPageRows) * (value ? vb : kb);
  return data_[layer].pages[pos / kPageRows].get() + off;
}

uint8_t* KvPart::k_row(int64_t layer, int64_t head, int64_t pos) { return page_row(layer, head, pos, false); }
uint8_t* KvPart::v_row(int64_t layer, int64_t head, int64_t pos) { return page_row(layer, head, pos, true); }

KvRows KvPart::k_rows(int64_t layer, int64_t head) const {
  return KvRows{type_, data_[layer].pointers.data(), static_cast<size_t>(head) * kPageRows * k_row_bytes(layer),
                k_row_bytes(layer), kPageRows};
}

KvRows KvPart::v_rows(int64_t layer, int64_t head) const {
  const size_t k_block = static_cast<size_t>(layers_[layer].n_head_kv) * kPageRows * k_row_bytes(layer);
  return KvRows{type_, data_[layer].pointers.data(), k_block + static_cast<size_t>(head) * kPageRows * v_row_bytes(layer),
                v_row_bytes(layer), kPageRows};
}

void KvPart::copy_positions(int64_t from_layer, int64_t to_layer, int64_t lo, int64_t hi) {
  make_writable(to_layer, lo, hi);
  for (int64_t h = 0; h < layers_[to_layer].n_head_kv; ++h)
    for (int64_t pos = lo; pos < hi; ++pos) {
      std::memcpy(k_row(to_layer, h, pos), page_row(from_layer, h, pos, false), k_row_bytes(to_layer));
      std::memcpy(v_row(to_layer, h, pos), page_row(from_layer, h, pos, true), v_row_bytes(to_layer));
    }
}

void KvPart::release_pages(int64_t layer, int64_t first_page, int64_t end_page) {
  Layer& L = data_[layer];
  end_page = std::min<int64_t>(end_page, static_cast<int64_t>(L.pages.size()));
  for (int64_t p = std::max<int64_t>(0, first_page); p < end_page; ++p) {
    L.pages[p].reset();
    L.pointers[p] = nullptr;
  }
}

void KvPart::release_unseen(int64_t layer, int64_t next_pos) {
  const KvLayerShape& s = layers_[layer];
  if (s.window == 0 || s.keep_all) return;
  const int64_t lowest_seen = std::max<int64_t>(0, next_pos - s.window + 1);
  const int64_t first_kept_page = lowest_seen / kPageRows;
  release_pages(layer, 0, first_kept_page);
  kept_from_[layer] = std::max(kept_from_[layer], first_kept_page * kPageRows);
}

void KvPart::release_from(int64_t layer, int64_t pos) {
  Layer& L = data_[layer];
  const int64_t first_unused = (pos + kPageRows - 1) / kPageRows;
  release_pages(layer, first_unused, static_cast<int64_t>(L.pages.size()));
  if (static_cast<int64_t>(L.pages.size()) > first_unused) {
    L.pages.resize(static_cast<size_t>(first_unused));
    L.pointers.resize(static_cast<size_t>(first_unused));
  }
}

void KvPart::reset() {
  for (auto& L : data_) {
    L.pages.clear();
    L.pointers.clear();
  }
  std::fill(kept_from_.begin(), kept_from_.end(), 0);
}

uint64_t KvPart::payload_bytes(int64_t layer, int64_t n_positions) const {
  return position_bytes(layer) * static_cast<uint64_t>(std::max<int64_t>(0, n_positions));
}

void KvPart::append_positions(std::vector<uint8_t>& out, int64_t layer, int64_t lo, int64_t hi) const {
  const KvLayerShape& s = layers_[layer];
  for (int value = 0; value < 2; ++value) {
    for (int64_t h = 0; h < s.n_head_kv; ++h) {
      const KvRows rows = value ? v_rows(layer, h) : k_rows(layer, h);
      for (int64_t pos = lo; pos < hi;) {
        const int64_t run = std::min(hi - pos, rows.run_from(pos));
        const uint8_t* src = rows.row_at(pos);
        out.insert(out.end(), src, src + run * rows.row_bytes);
        pos += run;
      }
    }
  }
}

size_t KvPart::read_positions(std::span<const uint8_t> in, int64_t layer, int64_t lo, int64_t hi) {
  make_writable(layer, lo, hi);
  const KvLayerShape& s = layers_[layer];
  size_t used = 0;
  for (int value = 0; value < 2; ++value) {
    for (int64_t h = 0; h < s.n_head_kv; ++h) {
      const size_t rb = value ? v_row_bytes(layer) : k_row_bytes(layer);
      for (int64_t pos = lo; pos < hi;) {
        const int64_t run = std::min(hi - pos, kPageRows - pos % kPageRows);
        uint8_t* dst = value ? v_row(layer, h, pos) : k_row(layer, h, pos);
        std::memcpy(dst, in.data() + used, static_cast<size_t>(run) * rb);
        used += static_cast<size_t>(run) * rb;
        pos += run;
      }
    }
  }
  return used;
}

uint64_t KvPart::bytes() const {
  uint64_t total = 0;
  for_each_page([&](const void*, uint64_t b) { total += b; });
  return total;
}

uint64_t KvPart::shared_bytes() const {
  uint64_t total = 0;
  for (size_t l = 0; l < data_.size(); ++l)
    for (const auto& p : data_[l].pages)
      if (p && p.use_count() > 1) total += page_bytes(static_cast<int64_t>(l));
  return total;
}

void KvPart::for_each_page(const std::function<void(const void*, uint64_t)>& fn) const {
  for (size_t l = 0; l < data_.size(); ++l)
    for (const auto& p : data_[l].pages)
      if (p) fn(p.get(), page_bytes(static_cast<int64_t>(l)));
}

}  // namespace flatline
