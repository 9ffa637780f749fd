#include "runtime/grammar_constraint.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <list>
#include <mutex>

namespace flatline {

namespace {
constexpr size_t kMaxCachedMasks = 256;      // per request
constexpr size_t kMaxMatcherStates = 50000;  // then the matcher forgets its cache
constexpr size_t kMaxTries = 4;              // models whose tries stay built
}  // namespace

// ---------------------------------------------------------------------------
// VocabTrie

VocabTrie::VocabTrie(const Tokenizer& tok) : n_vocab_(tok.n_vocab()) {
  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(static_cast<size_t>(n_vocab_));
  for (int32_t id = 0; id < n_vocab_; ++id) {
    if (tok.is_end_of_generation(id)) {
      eog_.push_back(id);
      continue;
    }
    const TokenType type = tok.token_type(id);
    if (type == TokenType::Control || type == TokenType::Unknown || type == TokenType::Unused) continue;
    std::string bytes = tok.token_bytes(id);
    if (bytes.empty() || bytes.size() > 4096) continue;
    entries.emplace_back(std::move(bytes), id);
  }
  std::sort(entries.begin(), entries.end());
  // Sorted strings give the preorder directly: each adds nodes for the
  // bytes past its common prefix with the previous one.
  std::vector<uint32_t> path;  // open nodes, one per depth
  const std::string* prev = nullptr;
  for (const auto& [bytes, id] : entries) {
    size_t lcp = 0;
    if (prev)
      while (lcp < prev->size() && lcp < bytes.size() && (*prev)[lcp] == bytes[lcp]) ++lcp;
    while (path.size() > lcp) {
      skip_[path.back()] = static_cast<uint32_t>(byte_.size());
      path.pop_back();
    }
    for (size_t d = lcp; d < bytes.size(); ++d) {
      path.push_back(static_cast<uint32_t>(byte_.size()));
      byte_.push_back(static_cast<uint8_t>(bytes[d]));
      depth_.push_back(static_cast<uint16_t>(d + 1));
      skip_.push_back(0);
      token_begin_.push_back(static_cast<uint32_t>(token_ids_.size()));
      max_depth_ = std::max<uint16_t>(max_depth_, static_cast<uint16_t>(d + 1));
    }
    token_ids_.push_back(id);
    prev = &bytes;
  }
  while (!path.empty()) {
    skip_[path.back()] = static_cast<uint32_t>(byte_.size());
    path.pop_back();
  }
  token_begin_.push_back(static_cast<uint32_t>(token_ids_.size()));
}

std::shared_ptr<const VocabTrie> VocabTrie::for_model(const Tokenizer& tok, const std::string& key) {
  static std::mutex mutex;
  static std::list<std::pair<std::string, std::shared_ptr<const VocabTrie>>> cache;  // most recent first
  std::lock_guard<std::mutex> lock(mutex);
  for (auto it = cache.begin(); it != cache.end(); ++it)
    if (it->first == key) {
      cache.splice(cache.begin(), cache, it);
      return cache.front().second;
    }
  auto trie = std::make_shared<const VocabTrie>(tok);
  cache.emplace_front(key, trie);
  if (cache.size() > kMaxTries) cache.pop_back();
  return trie;
}

// ---------------------------------------------------------------------------
// GrammarConstraint

GrammarConstraint::GrammarConstraint(std::shared_ptr<const Grammar> grammar, const Tokenizer& tok,
                                     std::shared_ptr<const VocabTrie> trie, GrammarConstraintOptions options)
    : matcher_(std::move(grammar)), tok_(tok), trie_(std::move(trie)), options_(std::move(options)) {
  walk_states_.resize(static_cast<size_t>(trie_->max_depth_) + 1);
  if (options_.trigger.empty()) {
    active_ = true;
    state_ = matcher_.start();
    if (state_ == GrammarMatcher::kDead) failed_ = true;
  }
}

bool GrammarConstraint::complete() const {
  return active_ && !failed_ && state_ != GrammarMatcher::kDead && matcher_.accepts(state_);
}

std::string GrammarConstraint::token_text(int32_t id) const {
  const bool special = std::find(options_.special_tokens.begin(), options_.special_tokens.end(), id) !=
                       options_.special_tokens.end();
  return tok_.token_bytes(id, special);
}

void GrammarConstraint::walk(GrammarMatcher::State s, int64_t limit, std::vector<uint64_t>& bits, uint32_t& max_next) {
  const VocabTrie& t = *trie_;
  bits.assign((static_cast<size_t>(t.n_vocab_) + 63) / 64, 0);
  max_next = 0;
  uint32_t best = std::numeric_limits<uint32_t>::max();
  bool any = false;
  walk_states_[0] = s;
  const size_t n = t.byte_.size();
  size_t visited = 0;
  for (size_t i = 0; i < n;) {
    ++visited;
    const uint16_t d = t.depth_[i];
    const GrammarMatcher::State next = matcher_.next(walk_states_[d - 1], t.byte_[i]);
    if (next == GrammarMatcher::kDead) {
      i = t.skip_[i];
      continue;
    }
    walk_states_[d] = next;
    const uint32_t tb = t.token_begin_[i], te = t.token_begin_[i + 1];
    if (tb != te) {
      const uint32_t rem = matcher_.min_remaining(next);
      best = std::min(best, rem);
      if (limit < 0 || rem <= limit) {
        any = true;
        max_next = std::max(max_next, rem);
        for (uint32_t k = tb; k < te; ++k) {
          const int32_t id = t.token_ids_[k];
          bits[static_cast<size_t>(id) >> 6] |= uint64_t(1) << (id & 63);
        }
      }
    }
    ++i;
  }
  stats_.nodes_visited += visited;
  // Nothing finishes in time: the tokens that come closest.
  if (limit >= 0 && !any && best != std::numeric_limits<uint32_t>::max() && !matcher_.accepts(s))
    walk(s, best, bits, max_next);
}

const GrammarConstraint::Mask& GrammarConstraint::state_mask(GrammarMatcher::State s) {
  auto it = masks_.find(s);
  if (it != masks_.end()) {
    ++stats_.cache_hits;
    return it->second;
  }
  if (masks_.size() >= kMaxCachedMasks) masks_.clear();
  Mask m;
  walk(s, -1, m.bits, m.max_next_remaining);
  return masks_.emplace(s, std::move(m)).first->second;
}

bool GrammarConstraint::allowed_by_limit(GrammarMatcher::State s, int64_t limit) const {
  return s != GrammarMatcher::kDead && (limit < 0 || matcher_.min_remaining(s) <= limit);
}

bool GrammarConstraint::apply(std::span<float> logits) {
  if (!active_ || failed_ || ended_) return true;
  const auto start = std::chrono::steady_clock::now();
  const bool any = mask(logits);
  stats_.mask_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  stats_.states = matcher_.state_count();
  return any;
}

bool GrammarConstraint::mask(std::span<float> logits) {
  ++stats_.masks;
  if (matcher_.state_count() > kMaxMatcherStates) {
    state_ = matcher_.compact(state_);
    masks_.clear();
  }
  constexpr float kNo = -std::numeric_limits<float>::infinity();
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(logits.size()), trie_->n_vocab_);
  const bool end_ok = matcher_.accepts(state_);
  if (matcher_.finished(state_)) {
    // Complete: only the end of generation may follow.
    std::vector<float> keep;
    for (int32_t id : trie_->eog_) keep.push_back(id < n ? logits[static_cast<size_t>(id)] : kNo);
    std::fill(logits.begin(), logits.end(), kNo);
    for (size_t k = 0; k < trie_->eog_.size(); ++k)
      if (trie_->eog_[k] < n) logits[static_cast<size_t>(trie_->eog_[k])] = keep[k];
    return std::any_of(trie_->eog_.begin(), trie_->eog_.end(), [&](int32_t id) { return id < n; });
  }
  // Room left after this token, keeping one step for the end of generation.
  const int64_t limit = options_.budget < 0 ? -1 : std::max<int64_t>(0, options_.budget - accepted_ - 2);
  const Mask& cached = state_mask(state_);
  const std::vector<uint64_t>* bits = &cached.bits;
  if (limit >= 0 && cached.max_next_remaining > limit) {
    uint32_t unused;
    walk(state_, limit, scratch_, unused);
    bits = &scratch_;
  }
  // Control tokens the grammar spells out, and the end when it is complete:
  // neither is in the trie, so their logits are kept aside first.
  std::vector<std::pair<int32_t, float>> extra;
  for (int32_t id : options_.special_tokens)
    if (id >= 0 && id < n && allowed_by_limit(matcher_.feed(state_, tok_.token_bytes(id, true)), limit))
      extra.push_back({id, logits[static_cast<size_t>(id)]});
  if (end_ok)
    for (int32_t id : trie_->eog_)
      if (id < n) extra.push_back({id, logits[static_cast<size_t>(id)]});
  bool any = !extra.empty();
  for (int64_t id = 0; id < n; ++id) {
    if (((*bits)[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1) any = true;
    else logits[static_cast<size_t>(id)] = kNo;
  }
  for (size_t id = static_cast<size_t>(n); id < logits.size(); ++id) logits[id] = kNo;
  for (const auto& [id, value] : extra) logits[static_cast<size_t>(id)] = value;
  return any;
}

std::vector<int32_t> GrammarConstraint::allowed_tokens() {
  std::vector<float> logits(static_cast<size_t>(trie_->n_vocab_), 0.0f);
  std::vector<int32_t> out;
  if (active_ && !failed_ && !ended_) {
    const bool any = mask(logits);
    --stats_.masks;  // a look, not a sampling step
    if (!any) return out;
  }
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] != -std::numeric_limits<float>::infinity()) out.push_back(static_cast<int32_t>(i));
  return out;
}

void GrammarConstraint::activate(size_t grammar_text_start) {
  active_ = true;
  state_ = matcher_.feed(matcher_.start(), std::string_view(raw_).substr(grammar_text_start));
  if (state_ == GrammarMatcher::kDead) failed_ = true;
}

void GrammarConstraint::accept(int32_t id) {
  ++accepted_;
  if (ended_ || failed_) return;
  if (tok_.is_end_of_generation(id)) {
    ended_ = true;
    return;
  }
  const std::string text = token_text(id);
  if (active_) {
    state_ = matcher_.feed(state_, text);
    if (state_ == GrammarMatcher::kDead) failed_ = true;
    return;
  }
  if (never_) return;
  const size_t before = raw_.size();
  raw_ += text;
  const std::string& trigger = options_.trigger;
  if (options_.trigger_at_start) {
    const size_t b = raw_.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return;
    const std::string_view rest = std::string_view(raw_).substr(b);
    if (rest.size() >= trigger.size()) {
      if (rest.substr(0, trigger.size()) == trigger) activate(options_.grammar_includes_trigger ? b : b + trigger.size());
      else never_ = true;
    } else if (std::string_view(trigger).substr(0, rest.size()) != rest) {
      never_ = true;
    }
    return;
  }
  const size_t from = before >= trigger.size() ? before - trigger.size() + 1 : 0;
  const size_t at = raw_.find(trigger, from);
  if (at != std::string::npos) activate(options_.grammar_includes_trigger ? at : at + trigger.size());
}

}  // namespace flatline
