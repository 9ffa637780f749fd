// Grammars for constrained generation: a context-free grammar written in
// GBNF (the notation llama.cpp introduced; docs/GRAMMAR.md describes the
// subset read here), compiled to rules over *bytes*, and a matcher that
// follows the set of parse stacks byte by byte.
//
// Why bytes: tokens are byte strings (a token may end inside a UTF-8
// character), so the token mask is computed by walking each token's bytes.
// Character classes and literals are written in Unicode code points and
// compiled to UTF-8 byte sequences, so every accepted text is valid UTF-8.
//
// The matcher is a lazily built DFA over stack sets: a state is an interned
// set of parse stacks, and the transition for (state, byte) is computed once
// and cached. Repeated situations (inside a JSON string, the next array item)
// map to the same state, so walking a vocabulary trie costs one table lookup
// per trie node once the states are known.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flatline {

class Grammar {
 public:
  // Parses GBNF text; `root` names the start rule. Throws Error with the
  // line, the column and what was expected (an undefined rule, left
  // recursion, a rule that can never finish, a bad escape, ...).
  static std::shared_ptr<const Grammar> parse(std::string_view gbnf, const std::string& root = "root");

  struct Element {
    enum Kind : uint8_t { Bytes, Rule, End };
    Kind kind = End;
    uint32_t value = 0;  // Bytes: index into byte_sets(); Rule: rule index
  };
  // Every alternative of every rule is a run of elements closed by End.
  const std::vector<Element>& elements() const { return elements_; }
  const std::vector<std::bitset<256>>& byte_sets() const { return sets_; }
  // Start index (in elements()) of each alternative of rule `r`.
  const std::vector<uint32_t>& alternatives(uint32_t r) const { return rules_[r]; }
  uint32_t root() const { return root_; }
  // Fewest bytes that complete the alternative from element `pos` on.
  uint32_t min_rest(uint32_t pos) const { return min_rest_[pos]; }
  size_t rule_count() const { return rules_.size(); }
  const std::string& rule_name(uint32_t r) const { return names_[r]; }

 private:
  friend class GrammarCompiler;
  std::vector<Element> elements_;
  std::vector<std::bitset<256>> sets_;
  std::vector<std::vector<uint32_t>> rules_;
  std::vector<std::string> names_;
  std::vector<uint32_t> min_rest_;
  uint32_t root_ = 0;
};

// Follows one generation through a grammar. Not thread-safe (one per request).
class GrammarMatcher {
 public:
  using State = int32_t;
  static constexpr State kDead = -1;

  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  State start() const { return start_; }
  // The state after `byte`, or kDead when the grammar does not allow it.
  State next(State s, uint8_t byte) {
    int32_t* t = transitions(s);
    const int32_t cached = t[byte];
    return cached != kUnknown ? cached : compute_next(s, byte);
  }
  State feed(State s, std::string_view bytes);
  // The text so far is a complete sentence of the grammar.
  bool accepts(State s) const { return info_[s].accepts; }
  // Complete, and no byte can follow.
  bool finished(State s) const { return info_[s].accepts && info_[s].stacks.size() == 1; }
  // Fewest bytes that complete the text (0 when it accepts).
  uint32_t min_remaining(State s) const { return info_[s].min_remaining; }

  size_t state_count() const { return info_.size(); }
  // Forgets every cached state except `keep` (its new id is returned), so a
  // long generation through a grammar with many states stays bounded.
  State compact(State keep);

  const Grammar& grammar() const { return *grammar_; }

 private:
  static constexpr int32_t kUnknown = -2;
  using Stack = std::vector<uint32_t>;  // element positions, top last
  struct StackHash {
    size_t operator()(const std::vector<uint32_t>& v) const;
  };
  struct StateInfo {
    std::vector<uint32_t> stacks;  // sorted stack ids
    bool accepts = false;
    uint32_t min_remaining = 0;
    std::unique_ptr<int32_t[]> next;  // 256 transitions, allocated on first use
  };

  int32_t* transitions(State s);
  State compute_next(State s, uint8_t byte);
  void close(Stack stack, std::vector<uint32_t>& out, std::unordered_map<Stack, char, StackHash>& seen);
  uint32_t intern_stack(const Stack& stack);
  State intern_state(std::vector<uint32_t> stack_ids);

  std::shared_ptr<const Grammar> grammar_;
  std::vector<Stack> stacks_;
  std::unordered_map<Stack, uint32_t, StackHash> stack_ids_;
  std::vector<StateInfo> info_;
  std::unordered_map<std::vector<uint32_t>, State, StackHash> state_ids_;
  State start_ = kDead;
};

}  // namespace flatline
