// Constrained sampling: a grammar (runtime/grammar.h) turned into a token
// mask for any tokenizer. Each token's bytes are walked through the
// grammar's matcher; a trie of the vocabulary's byte strings, built once per
// model, shares that walk between tokens with a common prefix and skips a
// whole subtree at the first byte the grammar refuses. Masks are cached per
// matcher state, so a state met again (inside a JSON string, the next
// array item) costs one lookup.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/grammar.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace flatline {

// The text tokens of a vocabulary in a preorder trie of their bytes.
// Control, unknown and unused tokens are left out (they are not text), so are
// end-of-generation tokens (allowed when the grammar is complete).
class VocabTrie {
 public:
  explicit VocabTrie(const Tokenizer& tok);
  // Built once per model (keyed by `key`, e.g. the model fingerprint) and shared.
  static std::shared_ptr<const VocabTrie> for_model(const Tokenizer& tok, const std::string& key);

  size_t nodes() const { return byte_.size(); }
  int32_t n_vocab() const { return n_vocab_; }
  const std::vector<int32_t>& end_of_generation() const { return eog_; }

 private:
  friend class GrammarConstraint;
  // Node i (preorder): the byte on the edge into it, its depth (1 = a child
  // of the root), the index after its subtree, and the tokens whose bytes
  // end here: token_ids_[token_begin_[i] .. token_begin_[i + 1]).
  std::vector<uint8_t> byte_;
  std::vector<uint16_t> depth_;
  std::vector<uint32_t> skip_;
  std::vector<uint32_t> token_begin_;
  std::vector<int32_t> token_ids_;
  std::vector<int32_t> eog_;
  int32_t n_vocab_ = 0;
  uint16_t max_depth_ = 0;
};

struct GrammarConstraintOptions {
  // Unconstrained until this text appears in the output (e.g. "<tool_call>"),
  // then constrained from where it starts; "" = constrained from the start.
  std::string trigger;
  // The trigger must begin the output (leading whitespace aside); if the
  // output starts otherwise the grammar never applies.
  bool trigger_at_start = false;
  // The grammar's text begins with the trigger (else it begins after it).
  bool grammar_includes_trigger = true;
  // Control tokens the grammar may produce by their text (e.g. "[TOOL_CALLS]").
  std::vector<int32_t> special_tokens;
  // Tokens the generation may still produce (num_predict or the room left
  // in the context); near the end only tokens from which the grammar can
  // still be completed in time are allowed, so the text is always complete.
  // < 0: no limit known.
  int64_t budget = -1;
};

struct GrammarMaskStats {
  uint64_t masks = 0;          // apply() calls that masked
  uint64_t cache_hits = 0;     // ... answered from the per-state cache
  uint64_t nodes_visited = 0;  // trie nodes walked
  uint64_t states = 0;         // matcher states at the end
  uint64_t mask_ns = 0;        // time spent in apply()
};

class GrammarConstraint final : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const Grammar> grammar, const Tokenizer& tok, std::shared_ptr<const VocabTrie> trie,
                    GrammarConstraintOptions options = {});

  bool apply(std::span<float> logits) override;
  void accept(int32_t id) override;

  bool active() const { return active_; }
  // The grammar's text is complete (it accepts what was generated).
  bool complete() const;
  // A sampled token the grammar did not allow (a bug or a mask that was not applied).
  bool failed() const { return failed_; }
  const GrammarMaskStats& stats() const { return stats_; }

  // The token ids allowed now (for tests): the mask apply() would set.
  std::vector<int32_t> allowed_tokens();

 private:
  struct Mask {
    std::vector<uint64_t> bits;   // allowed text tokens
    uint32_t max_next_remaining;  // largest min_remaining after one allowed token
  };
  bool mask(std::span<float> logits);
  std::string token_text(int32_t id) const;
  const Mask& state_mask(GrammarMatcher::State s);
  // Tokens allowed from `s`; with `limit` >= 0 only those after which the
  // grammar can finish within `limit` bytes (or, if none can, the ones that
  // come closest).
  void walk(GrammarMatcher::State s, int64_t limit, std::vector<uint64_t>& bits, uint32_t& max_next);
  bool allowed_by_limit(GrammarMatcher::State s, int64_t limit) const;
  void activate(size_t grammar_text_start);

  GrammarMatcher matcher_;
  const Tokenizer& tok_;
  std::shared_ptr<const VocabTrie> trie_;
  GrammarConstraintOptions options_;
  bool active_ = false, failed_ = false, ended_ = false, never_ = false;
  GrammarMatcher::State state_ = GrammarMatcher::kDead;
  std::string raw_;        // every token's text so far (special tokens of the grammar rendered)
  int64_t accepted_ = 0;   // tokens seen
  std::unordered_map<GrammarMatcher::State, Mask> masks_;
  std::vector<GrammarMatcher::State> walk_states_;  // per trie depth
  std::vector<uint64_t> scratch_;
  GrammarMaskStats stats_;
};

// Several hooks as one: apply() in order (a mask first, observers after it
// see the masked logits), accept() to all.
class ConstraintChain final : public TokenConstraint {
 public:
  void add(TokenConstraint* c) {
    if (c) hooks_.push_back(c);
  }
  bool empty() const { return hooks_.empty(); }
  bool apply(std::span<float> logits) override {
    for (TokenConstraint* h : hooks_)
      if (!h->apply(logits)) return false;
    return true;
  }
  void accept(int32_t id) override {
    for (TokenConstraint* h : hooks_) h->accept(id);
  }

 private:
  std::vector<TokenConstraint*> hooks_;
};

}  // namespace flatline
