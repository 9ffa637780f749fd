#include "tokenizer/byte_trie.h"

#include <algorithm>
#include <numeric>

namespace flatline::tokenizer_detail {

ByteTrie::ByteTrie(std::vector<Entry> entries) {
  root_children_.fill(kNone);
  std::vector<uint32_t> order(entries.size());
  std::iota(order.begin(), order.end(), 0u);
  // Sort by key; equal keys keep their input order so the last one wins below.
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return entries[a].key < entries[b].key; });
  order.erase(std::remove_if(order.begin(), order.end(), [&](uint32_t i) { return entries[i].key.empty(); }),
              order.end());

  // Breadth-first construction. Every node stands for the range of sorted
  // keys that share its prefix (of length `depth`); its children are the
  // groups of that range by the next byte, appended contiguously.
  struct Pending {
    uint32_t begin, end, depth;
  };
  std::vector<Pending> pending;
  nodes_.push_back(Node{});
  pending.push_back({0, static_cast<uint32_t>(order.size()), 0});
  for (size_t n = 0; n < nodes_.size(); ++n) {
    auto [begin, end, depth] = pending[n];
    const auto key = [&](uint32_t i) -> const std::string& { return entries[order[i]].key; };
    // Keys that end at this node sort first in the range.
    while (begin < end && key(begin).size() == depth) {
      nodes_[n].value = entries[order[begin]].value;
      ++begin;
    }
    nodes_[n].first_child = static_cast<uint32_t>(nodes_.size());
    while (begin < end) {
      const uint8_t byte = static_cast<uint8_t>(key(begin)[depth]);
      uint32_t group_end = begin + 1;
      while (group_end < end && static_cast<uint8_t>(key(group_end)[depth]) == byte) ++group_end;
      Node child;
      child.label = byte;
      if (n == 0) root_children_[byte] = static_cast<uint32_t>(nodes_.size());
      nodes_.push_back(child);
      pending.push_back({begin, group_end, depth + 1});
      ++nodes_[n].child_count;
      begin = group_end;
    }
  }
}

uint32_t ByteTrie::child(uint32_t node, uint8_t byte) const {
  if (node == 0) return root_children_[byte];
  const Node& parent = nodes_[node];
  const Node* first = nodes_.data() + parent.first_child;
  const Node* last = first + parent.child_count;
  if (parent.child_count <= 8) {
    for (const Node* c = first; c != last; ++c) {
      if (c->label == byte) return static_cast<uint32_t>(c - nodes_.data());
      if (c->label > byte) break;
    }
    return kNone;
  }
  const Node* it = std::lower_bound(first, last, byte, [](const Node& c, uint8_t b) { return c.label < b; });
  return it != last && it->label == byte ? static_cast<uint32_t>(it - nodes_.data()) : kNone;
}

ByteTrie::Match ByteTrie::longest_prefix(std::string_view text) const {
  Match best;
  if (nodes_.empty()) return best;
  uint32_t node = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    node = child(node, static_cast<uint8_t>(text[i]));
    if (node == kNone) break;
    if (nodes_[node].value >= 0) best = {nodes_[node].value, i + 1};
  }
  return best;
}

int32_t ByteTrie::find(std::string_view text) const {
  if (nodes_.empty() || text.empty()) return -1;
  uint32_t node = 0;
  for (char c : text) {
    node = child(node, static_cast<uint8_t>(c));
    if (node == kNone) return -1;
  }
  return nodes_[node].value;
}

}  // namespace flatline::tokenizer_detail
