// Grow-only buffers for one forward pass, addressed by slot: a block asks for
// the floats it needs for this chunk, and memory is allocated only the first
// time a chunk is larger than any before (so a decode step allocates nothing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flatline {

class Scratch {
 public:
  float* floats(size_t slot, size_t n) {
    if (slot >= floats_.size()) floats_.resize(slot + 1);
    auto& b = floats_[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
  }
  int32_t* ints(size_t slot, size_t n) {
    if (slot >= ints_.size()) ints_.resize(slot + 1);
    auto& b = ints_[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
  }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& b : floats_) n += b.capacity() * sizeof(float);
    for (const auto& b : ints_) n += b.capacity() * sizeof(int32_t);
    return n;
  }

 private:
  std::vector<std::vector<float>> floats_;
  std::vector<std::vector<int32_t>> ints_;
};

}  // namespace flatline
