// A fast 64-bit content hash for checksums and cache file names (not
// cryptographic). Eight bytes at a time: xor, multiply by the FNV-64 prime,
// then fold the high half down so a change in any bit reaches every later
// bit. Tail bytes are zero-padded and the length is mixed in at the end, so
// inputs that differ only by trailing zeros still hash differently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace flatline {

class ContentHash {
 public:
  explicit ContentHash(uint64_t seed = 0) : h_(kOffset ^ seed) {}

  void update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    length_ += n;
    // Finish a partial word left by the previous update first.
    while (n > 0 && pending_bytes_ > 0) {
      pending_ |= static_cast<uint64_t>(*p++) << (8 * pending_bytes_);
      --n;
      if (++pending_bytes_ == 8) flush_pending();
    }
    while (n >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      mix(w);
      p += 8;
      n -= 8;
    }
    // Here either n == 0 or no partial word is pending.
    for (size_t i = 0; i < n; ++i) pending_ |= static_cast<uint64_t>(p[i]) << (8 * i);
    if (n > 0) pending_bytes_ = static_cast<int>(n);
  }
  void update(std::string_view s) { update(s.data(), s.size()); }

  uint64_t digest() const {
    ContentHash copy = *this;
    if (copy.pending_bytes_ > 0) copy.flush_pending();
    copy.mix(copy.length_);
    return copy.h_;
  }

  static uint64_t of(const void* data, size_t n, uint64_t seed = 0) {
    ContentHash h(seed);
    h.update(data, n);
    return h.digest();
  }
  static uint64_t of(std::string_view s, uint64_t seed = 0) { return of(s.data(), s.size(), seed); }

 private:
  static constexpr uint64_t kOffset = 14695981039346656037ull;
  static constexpr uint64_t kPrime = 1099511628211ull;
  void mix(uint64_t w) {
    h_ = (h_ ^ w) * kPrime;
    h_ ^= h_ >> 29;
  }
  void flush_pending() {
    mix(pending_);
    pending_ = 0;
    pending_bytes_ = 0;
  }

  uint64_t h_;
  uint64_t pending_ = 0;
  int pending_bytes_ = 0;
  uint64_t length_ = 0;
};

// 16 lowercase hex digits.
inline std::string hex64(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = digits[v & 15];
  return s;
}

}  // namespace flatline
