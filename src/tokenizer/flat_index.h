// Open-addressing hash tables for the tokenizers' hot lookups (token text ->
// id, token pair -> merge). One flat array each, so a lookup usually costs a
// single cache miss; std::unordered_map's node chains made vocabulary
// loading and BPE merging several times slower. Internal to src/tokenizer/.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace flatline::tokenizer_detail {

// 64-bit hash of a byte string (multiply-xorshift over 8-byte words).
inline uint64_t hash_bytes(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * kMul);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * kMul;
  h ^= h >> 32;
  return h * kMul;
}

inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

inline size_t table_capacity(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  return capacity;
}

// Maps the texts of ids [0, n) back to their ids. TextOf is a callable
// id -> std::string_view whose views stay valid for the table's lifetime.
class TextIndex {
 public:
  // Empties the table and sizes it for n texts (insert no more than n).
  void reset(size_t n) {
    slots_.assign(table_capacity(n), Slot{0, -1});
    mask_ = slots_.size() - 1;
  }
  // Returns the id already stored for an equal text (the insert is then
  // ignored), or -1 after inserting.
  template <typename TextOf>
  int32_t insert(std::string_view text, int32_t id, TextOf text_of) {
    const uint64_t h = hash_bytes(text);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {static_cast<uint32_t>(h >> 32), id};
        return -1;
      }
      if (s.hash == static_cast<uint32_t>(h >> 32) && text_of(s.id) == text) return s.id;
    }
  }
  template <typename TextOf>
  int32_t find(std::string_view text, TextOf text_of) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash_bytes(text);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == static_cast<uint32_t>(h >> 32) && text_of(s.id) == text) return s.id;
    }
  }

 private:
  struct Slot {
    uint32_t hash;  // high half of the hash, to skip most string compares
    int32_t id;     // -1: empty
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// uint64 key -> Value, first insert wins. Value must be trivially copyable.
template <typename Value>
class PairIndex {
 public:
  void reserve(size_t n) {
    slots_.assign(table_capacity(n), Slot{kEmpty, Value{}});
    mask_ = slots_.size() - 1;
  }
  size_t size() const { return size_; }
  void insert(uint64_t key, const Value& value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = hash_u64(key) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == kEmpty) {
        s = {key, value};
        ++size_;
        return;
      }
      if (s.key == key) return;
    }
  }
  const Value* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = hash_u64(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // no real pair of int32 ids >= 0 maps to it
  struct Slot {
    uint64_t key;
    Value value;
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    size_ = 0;
    for (const Slot& s : old) {
      if (s.key != kEmpty) insert(s.key, s.value);
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace flatline::tokenizer_detail
