// A read-only trie over byte strings for longest-prefix matching. Built in
// one pass from a sorted key list: nodes are laid out breadth first, so the
// children of a node are contiguous and sorted by byte. Internal to
// src/tokenizer/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flatline::tokenizer_detail {

class ByteTrie {
 public:
  struct Entry {
    std::string key;
    int32_t value;
  };
  struct Match {
    int32_t value = -1;  // -1: no key is a prefix of the text
    size_t length = 0;
  };

  ByteTrie() = default;
  // Keys may repeat; the entry that comes last in `entries` wins. Empty keys
  // are ignored.
  explicit ByteTrie(std::vector<Entry> entries);

  // The longest key that is a prefix of `text`.
  Match longest_prefix(std::string_view text) const;
  // Value of the key equal to `text`, or -1.
  int32_t find(std::string_view text) const;
  size_t node_count() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t first_child = 0;
    uint16_t child_count = 0;
    uint8_t label = 0;
    int32_t value = -1;
  };
  static constexpr uint32_t kNone = 0xFFFFFFFF;
  uint32_t child(uint32_t node, uint8_t byte) const;

  std::vector<Node> nodes_;  // nodes_[0] is the root
  std::array<uint32_t, 256> root_children_{};
};

}  // namespace flatline::tokenizer_detail
