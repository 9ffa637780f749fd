#include "models/state/model_state.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "util/error.h"

namespace flatline {

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

// Reads a T at `at`, or throws naming what was being read.
template <typename T>
T get(std::span<const uint8_t> in, size_t& at, const char* what) {
  if (in.size() - at < sizeof(T))
    throw Error(std::string("state: payload ends after ") + std::to_string(in.size()) + " bytes, inside " + what);
  T v;
  std::memcpy(&v, in.data() + at, sizeof v);
  at += sizeof v;
  return v;
}

std::string describe(const KvLayerShape& s) {
  return std::to_string(s.n_head_kv) + " heads of " + std::to_string(s.head_dim_k) + "/" +
         std::to_string(s.head_dim_v) + (s.window ? ", window " + std::to_string(s.window) : "");
}

}  // namespace

uint64_t StateLayout::recurrent_bytes() const {
  uint64_t n = 0;
  for (int64_t s : recurrent_slabs) n += static_cast<uint64_t>(s);
  return n * sizeof(float);
}

RecurrentPart::RecurrentPart(const std::vector<int64_t>& slab_sizes) {
  size_t total = 0;
  for (int64_t s : slab_sizes) {
    if (s < 0) throw Error("recurrent state: negative slab size " + std::to_string(s));
    offsets_.push_back(total);
    total += static_cast<size_t>(s);
  }
  data_.assign(total, 0.0f);
}

void RecurrentPart::reset() { std::fill(data_.begin(), data_.end(), 0.0f); }

ModelState::ModelState(StateLayout layout, int64_t n_ctx)
    : layout_(std::move(layout)),
      n_ctx_(n_ctx),
      kv_(layout_.kv_type, layout_.kv_layers),
      recurrent_(layout_.recurrent_slabs) {
  if (n_ctx < 0) throw Error("state: negative context size " + std::to_string(n_ctx));
  if (layout_.has_kv() && n_ctx == 0) throw Error("state: a state with attention layers needs a context size");
}

std::unique_ptr<ModelState> ModelState::clone() const { return std::make_unique<ModelState>(*this); }

void ModelState::reset() {
  kv_.reset();
  recurrent_.reset();
  n_past_ = 0;
}

StateMemory ModelState::memory() const {
  StateMemory m;
  m.fixed = recurrent_.bytes() + sizeof(*this) + layout_.kv_layers.size() * 64;
  m.kv = kv_.bytes();
  m.kv_shared = kv_.shared_bytes();
  return m;
}

int64_t ModelState::lowest_visible(int64_t layer, int64_t pos) const {
  const KvLayerShape& s = layout_.kv_layers[layer];
  return s.window > 0 ? std::max<int64_t>(0, pos - s.window + 1) : 0;
}

void ModelState::save(std::vector<uint8_t>& out) const {
  put<uint32_t>(out, kPayloadMagic);
  put<uint32_t>(out, kPayloadVersion);
  put<int64_t>(out, n_past_);
  put<uint32_t>(out, static_cast<uint32_t>(layout_.kv_type));
  put<uint32_t>(out, static_cast<uint32_t>(layout_.kv_layers.size()));
  for (const auto& s : layout_.kv_layers) {
    put<uint32_t>(out, static_cast<uint32_t>(s.n_head_kv));
    put<uint32_t>(out, static_cast<uint32_t>(s.head_dim_k));
    put<uint32_t>(out, static_cast<uint32_t>(s.head_dim_v));
    put<int64_t>(out, s.window);
  }
  put<uint32_t>(out, static_cast<uint32_t>(layout_.recurrent_slabs.size()));
  for (int64_t s : layout_.recurrent_slabs) put<uint64_t>(out, static_cast<uint64_t>(s));
  for (int64_t l = 0; l < kv_.n_layers(); ++l) {
    const int64_t lo = std::max(kv_.kept_from(l), lowest_visible(l, n_past_));
    put<int64_t>(out, lo);
    kv_.append_positions(out, l, lo, n_past_);
  }
  const auto floats = recurrent_.all();
  const auto* p = reinterpret_cast<const uint8_t*>(floats.data());
  out.insert(out.end(), p, p + floats.size() * sizeof(float));
}

void ModelState::load(std::span<const uint8_t> in) {
  // Everything is validated before the state is touched.
  size_t at = 0;
  const uint32_t magic = get<uint32_t>(in, at, "the header");
  if (magic != kPayloadMagic) throw Error("state: not a flatline state payload (bad magic)");
  const uint32_t version = get<uint32_t>(in, at, "the header");
  if (version != kPayloadVersion)
    throw Error("state: payload version " + std::to_string(version) + ", this build reads version " +
                std::to_string(kPayloadVersion));
  const int64_t n_past = get<int64_t>(in, at, "the header");
  if (n_past < 0) throw Error("state: negative token count " + std::to_string(n_past));
  if (n_ctx_ > 0 && n_past > n_ctx_)
    throw Error("state: saved state holds " + std::to_string(n_past) + " tokens, this context fits " +
                std::to_string(n_ctx_));
  const uint32_t type = get<uint32_t>(in, at, "the header");
  const uint32_t n_kv = get<uint32_t>(in, at, "the header");
  if (n_kv != layout_.kv_layers.size())
    throw Error("state: saved state has " + std::to_string(n_kv) + " attention layers, this model " +
                std::to_string(layout_.kv_layers.size()));
  if (n_kv > 0 && type != static_cast<uint32_t>(layout_.kv_type))
    throw Error(std::string("state: KV type of this context is ") + traits(layout_.kv_type).name +
                ", the saved state's type id is " + std::to_string(type));
  for (uint32_t l = 0; l < n_kv; ++l) {
    KvLayerShape s;
    s.n_head_kv = get<uint32_t>(in, at, "the layer shapes");
    s.head_dim_k = get<uint32_t>(in, at, "the layer shapes");
    s.head_dim_v = get<uint32_t>(in, at, "the layer shapes");
    s.window = get<int64_t>(in, at, "the layer shapes");
    KvLayerShape mine = layout_.kv_layers[l];
    mine.keep_all = false;
    if (!(s == mine))
      throw Error("state: attention layer " + std::to_string(l) + " was saved as " + describe(s) + ", this model has " +
                  describe(mine));
  }
  const uint32_t n_slabs = get<uint32_t>(in, at, "the header");
  if (n_slabs != layout_.recurrent_slabs.size())
    throw Error("state: saved state has " + std::to_string(n_slabs) + " recurrent slabs, this model " +
                std::to_string(layout_.recurrent_slabs.size()));
  for (uint32_t i = 0; i < n_slabs; ++i) {
    const uint64_t n = get<uint64_t>(in, at, "the slab sizes");
    if (n != static_cast<uint64_t>(layout_.recurrent_slabs[i]))
      throw Error("state: recurrent slab " + std::to_string(i) + " holds " + std::to_string(n) +
                  " floats, this model's " + std::to_string(layout_.recurrent_slabs[i]));
  }
  std::vector<int64_t> first(n_kv);
  std::vector<size_t> offset(n_kv);
  for (uint32_t l = 0; l < n_kv; ++l) {
    first[l] = get<int64_t>(in, at, "a layer's first position");
    const int64_t expected = lowest_visible(l, n_past);
    // Full layers save every position; window layers what the next token sees.
    if (first[l] != expected)
      throw Error("state: attention layer " + std::to_string(l) + " should start at position " +
                  std::to_string(expected) + ", found " + std::to_string(first[l]));
    offset[l] = at;
    const uint64_t bytes = kv_.payload_bytes(l, n_past - first[l]);
    if (in.size() - at < bytes)
      throw Error("state: payload too short: attention layer " + std::to_string(l) + " needs " +
                  std::to_string(bytes) + " bytes, " + std::to_string(in.size() - at) + " remain");
    at += bytes;
  }
  const uint64_t rec_bytes = recurrent_.bytes();
  if (in.size() - at != rec_bytes)
    throw Error("state: expected " + std::to_string(at + rec_bytes) + " bytes, found " + std::to_string(in.size()));

  KvPart kv(layout_.kv_type, layout_.kv_layers);
  for (uint32_t l = 0; l < n_kv; ++l) {
    kv.read_positions(in.subspan(offset[l]), l, first[l], n_past);
    kv.set_kept_from(l, first[l] / KvPart::kPageRows * KvPart::kPageRows);
  }
  kv_ = std::move(kv);
  if (rec_bytes) std::memcpy(recurrent_.all().data(), in.data() + at, rec_bytes);
  n_past_ = n_past;
}

bool ModelState::truncate(int64_t n_tokens) {
  if (n_tokens == n_past_) return true;
  if (n_tokens < 0 || n_tokens > n_past_ || layout_.has_recurrent()) return false;
  for (int64_t l = 0; l < kv_.n_layers(); ++l)
    if (kv_.kept_from(l) > lowest_visible(l, n_tokens)) return false;
  for (int64_t l = 0; l < kv_.n_layers(); ++l) kv_.release_from(l, n_tokens);
  n_past_ = n_tokens;
  return true;
}

}  // namespace flatline
