#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "runtime/generator.h"
#include "util/error.h"
#include "util/log.h"

namespace flatline {

namespace {


bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// FNV-1a over the file header (metadata + tensor table) and the file size:
// any re-conversion or re-quantisation changes it.
std::string fingerprint_of(const gguf::File& file) {
  uint64_t h = 1469598103934665603ull;
  auto bytes = file.bytes();
  for (uint64_t i = 0; i < file.data_offset() && i < bytes.size(); ++i) {
    h ^= bytes[i];
    h *= 1099511628211ull;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016llx-%llu", static_cast<unsigned long long>(h),
                static_cast<unsigned long long>(file.file_size()));
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// LoadedModel

std::unique_ptr<LoadedModel> LoadedModel::load(const std::string& path, const LoadOptions& options,
                                               MemoryBudget* budget, int64_t n_ctx) {
  auto lm = std::unique_ptr<LoadedModel>(new LoadedModel());
  lm->path_ = path;
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  if (budget) {
    // Weights are mapped, not copied, but a decode step touches all of them:
    // they must fit in RAM or every token would come from disk.
    budget->require(file->file_size(), "model " + path + " (weights)");
  }
  lm->file_ = file;
  lm->model_ = load_model(file, options);
  lm->tokenizer_ = Tokenizer::from_gguf(*file);
  if (lm->tokenizer_->n_vocab() > lm->model_->info().n_vocab)
    throw Error(path + ": the tokenizer has " + std::to_string(lm->tokenizer_->n_vocab()) +
                " tokens but the model only " + std::to_string(lm->model_->info().n_vocab));
  lm->template_ = ChatTemplate::from_gguf(*file);
  lm->fingerprint_ = fingerprint_of(*file);
  // Options that change what a state holds (a looped model's loops, exit
  // policy and KV sharing) are part of the identity: a state computed under
  // one is no state of the other.
  for (const auto& [key, value] : options.family) lm->fingerprint_ += ";" + key + "=" + value;
  if (budget) lm->fit_context_to_budget(*budget, n_ctx);
  return lm;
}

// A transformer's KV cache is sized up front: when the requested context
// does not fit the budget, the largest that does is used (and said), as long
// as it is a usable size; otherwise loading is refused.
void LoadedModel::fit_context_to_budget(const MemoryBudget& budget, int64_t n_ctx) {
  const std::string what = "model " + path_ + " with a " + std::to_string(n_ctx) + "-token context";
  if (resident_estimate(n_ctx) <= budget.free()) return;
  constexpr int64_t kSmallestUsefulContext = 256;
  if (!traits().has_context_limit || resident_estimate(std::min(n_ctx, kSmallestUsefulContext)) > budget.free())
    budget.require(resident_estimate(n_ctx), what);  // throws with the full figure
  int64_t lo = std::min(n_ctx, kSmallestUsefulContext), hi = n_ctx;  // lo fits, hi does not
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (resident_estimate(mid) <= budget.free() ? lo : hi) = mid;
  }
  context_limit_ = lo;
  LOG_WARN(what << " needs " << format_bytes(resident_estimate(n_ctx)) << " but the memory budget has "
                << format_bytes(budget.free()) << " free: the context is limited to " << lo << " tokens");
}

namespace {
volatile uint64_t g_prefault_sink;  // keeps the page reads from being optimised away
}  // namespace

void LoadedModel::prefault(const std::string& display_name) const {
  auto bytes = file_->bytes();
  const size_t page = 4096;
  const size_t report_every = bytes.size() >= (256u << 20) ? bytes.size() / 4 : 0;
  size_t next_report = report_every;
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += page) {
    sum += static_cast<const volatile uint8_t&>(bytes[i]);
    if (report_every && i >= next_report) {
      LOG_INFO("loading " << display_name << ": " << (100 * i / bytes.size()) << "%");
      next_report += report_every;
    }
  }
  g_prefault_sink = sum;
}

uint64_t LoadedModel::resident_estimate(int64_t n_ctx) const {
  return model_->resident_bytes(n_ctx);
}

// ---------------------------------------------------------------------------
// Conversation

Conversation Conversation::clone() const {
  Conversation c;
  c.state = state ? state->clone() : nullptr;
  c.fed_text = fed_text;
  c.tokens = tokens;
  c.pending_tokens = pending_tokens;
  c.pending_text = pending_text;
  c.last_logits = last_logits;
  return c;
}

uint64_t Conversation::memory_bytes() const {
  return (state ? state->memory_bytes() : 0) + fed_text.size() + tokens.size() * sizeof(int32_t) +
         last_logits.size() * sizeof(float) + pending_text.size() + sizeof(*this);
}

// ---------------------------------------------------------------------------
// Engine

Engine::Engine(LoadedModel& model) : model_(model), workspace_(model.model().new_workspace()) {}

Conversation Engine::new_conversation(int64_t n_ctx) const {
  Conversation c;
  c.state = model_.model().new_state(n_ctx);
  return c;
}

std::vector<int32_t> Engine::tokenize_continuation(const Conversation& conv, std::string_view suffix) const {
  const Tokenizer& tok = model_.tokenizer();
  std::vector<int32_t> ids;
  if (conv.state->n_past() == 0 && conv.pending_tokens.empty() && adds_bos()) ids.push_back(tok.bos_id());
  if (!conv.pending_tokens.empty() && starts_with(suffix, conv.pending_text)) {
    ids.insert(ids.end(), conv.pending_tokens.begin(), conv.pending_tokens.end());
    suffix.remove_prefix(conv.pending_text.size());
  }
  // Where the text so far ends decides whether the rest starts a fresh
  // fragment (SentencePiece's space prefix): at the very start or after a
  // special token, as when the whole history is tokenized at once.
  int32_t last = -1;
  if (!ids.empty()) last = ids.back();
  else if (!conv.tokens.empty()) last = conv.tokens.back();
  const bool after_special = last < 0 ? conv.state->n_past() == 0
                                      : tok.token_type(last) == TokenType::Control ||
                                            tok.token_type(last) == TokenType::UserDefined;
  auto rest = tok.encode_continuation(suffix, /*parse_special=*/true, after_special);
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

bool Engine::adds_bos() const {
  const Tokenizer& tok = model_.tokenizer();
  return tok.add_bos() && tok.bos_id() >= 0;
}

std::vector<int32_t> Engine::tokenize_prompt(std::string_view prompt) const {
  std::vector<int32_t> ids;
  if (adds_bos()) ids.push_back(model_.tokenizer().bos_id());
  auto rest = model_.tokenizer().encode(prompt, /*parse_special=*/true);
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

int64_t Engine::count_prompt_tokens(std::string_view prompt) const {
  return (adds_bos() ? 1 : 0) + static_cast<int64_t>(model_.tokenizer().encode(prompt, /*parse_special=*/true).size());
}

int64_t Engine::feed_prompt(Conversation& conv, std::string_view prompt) {
  return feed_prompt(conv, prompt, {}, {});
}

std::vector<size_t> Engine::token_end_offsets(std::span<const int32_t> ids, std::string_view suffix) const {
  const Tokenizer& tok = model_.tokenizer();
  std::vector<size_t> ends;
  ends.reserve(ids.size());
  size_t at = 0;
  bool prefix_space_allowed = true;  // SentencePiece's "start of text" space, once
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = tok.token_bytes(ids[i], /*render_special=*/true);
    if (suffix.compare(at, piece.size(), piece) == 0) {
      at += piece.size();
    } else if (i == 0 && ids[i] == tok.bos_id() && adds_bos()) {
      // The BOS the tokenizer adds stands for no text.
    } else if (prefix_space_allowed && !piece.empty() && piece[0] == ' ' &&
               suffix.compare(at, piece.size() - 1, std::string_view(piece).substr(1)) == 0) {
      at += piece.size() - 1;
    } else {
      return {};
    }
    if (!piece.empty() && !tok.is_control(ids[i])) prefix_space_allowed = false;
    ends.push_back(at);
  }
  if (at != suffix.size()) return {};
  return ends;
}

int64_t Engine::feed_prompt(Conversation& conv, std::string_view prompt, std::span<const size_t> stops,
                            const std::function<void(const Conversation&)>& at_stop) {
  if (!starts_with(prompt, conv.fed_text)) throw Error("internal error: prompt does not extend the conversation");
  const size_t base = conv.fed_text.size();
  const std::string_view suffix = prompt.substr(base);
  std::vector<int32_t> ids = tokenize_continuation(conv, suffix);
  if (ids.empty()) {
    if (conv.last_logits.empty()) throw Error("empty prompt: nothing to generate from");
    conv.pending_tokens.clear();
    conv.pending_text.clear();
    return 0;
  }
  ModelState& st = *conv.state;
  const int64_t n_ctx = st.n_ctx();
  if (n_ctx > 0 && st.n_past() + static_cast<int64_t>(ids.size()) > n_ctx) {
    throw ContextOverflowError("the prompt needs " + std::to_string(st.n_past() + ids.size()) +
                               " tokens but the context holds " + std::to_string(n_ctx) + " (" +
                               std::to_string(ids.size()) + " new tokens after " + std::to_string(st.n_past()) +
                               " already in it); raise num_ctx or start a new conversation");
  }
  // Where the token sequence can be cut: (tokens before the cut, text offset in the prompt).
  std::vector<std::pair<size_t, size_t>> cuts;
  if (!stops.empty() && at_stop) {
    const std::vector<size_t> ends = token_end_offsets(ids, suffix);
    for (size_t stop : stops) {
      if (ends.empty() || stop <= base || stop >= prompt.size()) continue;
      const size_t rel = stop - base;
      auto it = std::lower_bound(ends.begin(), ends.end(), rel);
      if (it == ends.end() || *it != rel) continue;  // inside a token
      // The last of several tokens ending there (zero-width ones such as BOS).
      auto last = std::upper_bound(it, ends.end(), rel);
      const size_t n_before = static_cast<size_t>(last - ends.begin());
      if (n_before == 0 || n_before >= ids.size() || (!cuts.empty() && n_before <= cuts.back().first)) continue;
      cuts.push_back({n_before, stop});
    }
  }
  conv.last_logits.resize(static_cast<size_t>(model_.info().n_vocab));
  size_t from = 0;
  auto feed_until = [&](size_t to, size_t text_end) {
    forward(st, std::span<const int32_t>(ids).subspan(from, to - from), conv.last_logits.data());
    conv.tokens.insert(conv.tokens.end(), ids.begin() + static_cast<std::ptrdiff_t>(from),
                       ids.begin() + static_cast<std::ptrdiff_t>(to));
    conv.fed_text.assign(prompt.substr(0, text_end));
    conv.pending_tokens.clear();
    conv.pending_text.clear();
    from = to;
  };
  for (const auto& [n_before, stop] : cuts) {
    feed_until(n_before, stop);
    at_stop(conv);
  }
  feed_until(ids.size(), prompt.size());
  return static_cast<int64_t>(ids.size());
}

void Engine::set_loop_exit(std::optional<LoopExit> policy) { loop_exit_ = policy; }

std::string Engine::cache_variant() const {
  return loop_exit_ ? ";request loops: " + describe_loop_exit(*loop_exit_) : std::string();
}

void Engine::forward(ModelState& state, std::span<const int32_t> ids, float* logits) {
  SequenceInput in{&state, ids, LogitsMode::Last, logits, &stats_};
  ForwardArgs args;
  if (loop_exit_) args.loop_exit = &*loop_exit_;
  args.sequences = std::span<const SequenceInput>(&in, 1);
  model_.model().forward(args, *workspace_);
}

int64_t Engine::feed_ids(Conversation& conv, std::span<const int32_t> ids) {
  if (ids.empty()) throw Error("empty prompt: no token ids given");
  ModelState& st = *conv.state;
  if (st.n_ctx() > 0 && st.n_past() + static_cast<int64_t>(ids.size()) > st.n_ctx())
    throw ContextOverflowError("the prompt needs " + std::to_string(st.n_past() + ids.size()) +
                               " tokens but the context holds " + std::to_string(st.n_ctx()));
  conv.last_logits.resize(static_cast<size_t>(model_.info().n_vocab));
  forward(st, ids, conv.last_logits.data());
  const Tokenizer& tok = model_.tokenizer();
  for (int32_t id : ids) {
    conv.tokens.push_back(id);
    if (id >= 0 && id < tok.n_vocab()) conv.fed_text += tok.token_bytes(id, /*render_special=*/true);
  }
  conv.pending_tokens.clear();
  conv.pending_text.clear();
  return static_cast<int64_t>(ids.size());
}

void Engine::feed_token(Conversation& conv, int32_t id, const std::string& bytes) {
  forward(*conv.state, std::span<const int32_t>(&id, 1), conv.last_logits.data());
  conv.tokens.push_back(id);
  conv.fed_text += bytes;
}

GenerateResult Engine::generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                                const TextCallback& on_text) {
  EventSink sink;
  if (on_text)
    sink = [&](const GenerationEvent& e) { return e.kind != GenerationEvent::Kind::Text || on_text(e.text); };
  return make_generator(*this)->generate(conv, prompt, options, sink);
}

const char* done_reason_name(DoneReason reason) {
  switch (reason) {
    case DoneReason::Stop: return "stop";
    case DoneReason::Length: return "length";
    case DoneReason::Cancelled: return "cancelled";
  }
  return "stop";
}

}  // namespace flatline
