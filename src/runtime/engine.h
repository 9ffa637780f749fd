// One loaded model and the generation loop every front end shares (the CLI's
// run/chat, the server, `bench turns`): feed a prompt after what a
// conversation state already holds, then sample, stream and stop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "models/model.h"
#include "runtime/chat_template.h"
#include "runtime/memory_budget.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace flatline {

class LoadedModel {
 public:
  // Maps the file, builds model + tokenizer + chat template. When a budget
  // is given, refuses (MemoryBudgetError) before allocating if the weights,
  // scratch buffers and one state of n_ctx tokens would not fit.
  static std::unique_ptr<LoadedModel> load(const std::string& path, const LoadOptions& options,
                                           MemoryBudget* budget = nullptr, int64_t n_ctx = 4096);

  const std::string& path() const { return path_; }
  Model& model() { return *model_; }
  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return template_; }
  const gguf::File& file() const { return *file_; }
  const ModelInfo& info() const { return model_->info(); }
  // Identifies the exact weights: used to refuse states saved by another model.
  const std::string& fingerprint() const { return fingerprint_; }
  uint64_t resident_estimate(int64_t n_ctx) const;  // weights + workspace + one state
  const ModelTraits& traits() const { return model_->traits(); }
  // The context to use when `requested` tokens were asked for: smaller when
  // load() found that the budget only holds a shorter KV cache.
  int64_t usable_context(int64_t requested) const {
    return context_limit_ > 0 && requested > context_limit_ ? context_limit_ : requested;
  }
  // Reads one byte of every page of the mapped weights, so the first request
  // does not pay for page faults, resident memory does not creep up as new
  // embedding rows are touched, and large loads can show progress.
  void prefault(const std::string& display_name) const;

 private:
  std::string path_;
  std::shared_ptr<const gguf::File> file_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate template_{ChatFormat::Plain};
  std::string fingerprint_;
  int64_t context_limit_ = 0;  // 0: none

  void fit_context_to_budget(const MemoryBudget& budget, int64_t n_ctx);
};

// What a model state has consumed. `fed_text` is the exact text whose tokens
// are in the state; `pending` is the last sampled token, which was shown but
// not yet fed (feeding it would cost a decode step nobody may need).
struct Conversation {
  std::unique_ptr<ModelState> state;
  std::string fed_text;
  std::vector<int32_t> tokens;  // ids in the state, oldest first
  std::vector<int32_t> pending_tokens;
  std::string pending_text;
  std::vector<float> last_logits;  // logits after the last fed token (empty if none yet)

  Conversation clone() const;
  uint64_t memory_bytes() const;
};

// Masked-diffusion decoding (runtime/diffusion.h).
// EntropyHighFirst is llama-diffusion-cli's entropy ordering (its sign fills
// the most uncertain positions first); kept only to reproduce its outputs.
enum class DiffusionAlgorithm { Default, Origin, Entropy, EntropyHighFirst, Margin, Random, Confidence };

struct DiffusionOptions {
  int64_t steps = 0;          // refinement steps in all (0: one per generated token)
  int64_t gen_length = 0;     // canvas positions to fill (0: num_predict, else 64)
  int64_t block_length = -1;  // > 0: blocks decoded left to right (LLaDA); 0: one timestep schedule (Dream); -1: the model's default
  double eps = 1e-3;          // timestep schedule: t runs from 1 to eps
  DiffusionAlgorithm algorithm = DiffusionAlgorithm::Default;  // Default: LLaDA confidence, Dream entropy
  // Approximate caching: 0 = exact (every step a full pass over the canvas);
  // N > 0 = steps inside a block compute only the block's rows against the
  // canvas K/V of the last full pass, which is redone at each block start and
  // every N steps.
  int64_t cache_refresh = 0;
  bool canvas_events = false;  // emit the canvas after every step
};

// The log-probability of one generated token under the model's
// distribution at that step (log-softmax of the logits after any grammar
// mask, before penalties and temperature, as OpenAI and Ollama report it),
// with the most likely alternatives.
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first, at most GenerateOptions::top_logprobs
};

struct GenerateOptions {
  SamplerParams sampling;
  // >= 0: record every generated token's TokenLogprob with this many
  // alternatives (at most kMaxTopLogprobs); < 0: none (no cost).
  int32_t top_logprobs = -1;
  static constexpr int32_t kMaxTopLogprobs = 20;
  // Where the records go as they are made, so a streaming caller can read
  // the ones made since its last text piece (optional; the result's
  // `logprobs` holds them all in any case). Not owned.
  std::vector<TokenLogprob>* logprob_log = nullptr;
  DiffusionOptions diffusion;
  int64_t num_predict = -1;         // < 0: until end of generation or context
  std::vector<std::string> stop;    // extra stop strings (the template's are added)
  bool use_template_stops = true;
  // Polled before every token: return true to stop (DoneReason::Cancelled),
  // e.g. on Ctrl-C or a closed connection, even while nothing visible is produced.
  std::function<bool()> should_stop;
  // Masks the logits before each sampling step and sees each sampled token
  // (structured output, tool calls, log-probabilities). Not owned.
  TokenConstraint* constraint = nullptr;
};

enum class DoneReason { Stop, Length, Cancelled };
// "stop", "length" or "cancelled" (Ollama's and llama.cpp's words).
const char* done_reason_name(DoneReason reason);

struct GenerateResult {
  std::string text;                 // the reply, stop string removed
  std::vector<int32_t> generated;   // sampled ids (without the end-of-generation token)
  std::vector<TokenLogprob> logprobs;  // one per generated id when GenerateOptions::top_logprobs >= 0
  int64_t prompt_tokens = 0;        // tokens of the whole prompt (cached + evaluated)
  int64_t prompt_eval_count = 0;    // tokens actually evaluated for this prompt
  int64_t prompt_eval_ns = 0;
  int64_t eval_count = 0;           // generated tokens
  int64_t eval_ns = 0;
  DoneReason done_reason = DoneReason::Stop;
  std::string stop_string;          // the stop string that ended the reply (a request's or the template's), else ""
  // Looped models: loops used by each token evaluated for this request, the
  // prompt's first (prompt_eval_count of them), then each generated token's.
  std::vector<int32_t> loops_used;
  // Diffusion: refinement steps run and how many of them were full passes
  // over the canvas (the rest, with cache_refresh, only the block's rows).
  int64_t diffusion_steps = 0;
  int64_t diffusion_full_passes = 0;
};

// Called with each piece of visible text; return false to cancel.
using TextCallback = std::function<bool(std::string_view)>;

// Runs one loaded model for one thread: owns the workspace its forward
// passes use and the logits buffer, feeds prompts into conversations. Two
// engines on one LoadedModel may run in two threads at once.
class Engine {
 public:
  explicit Engine(LoadedModel& model);

  Conversation new_conversation(int64_t n_ctx) const;

  // Feeds `prompt` into `conv`. `prompt` must start with conv.fed_text; only
  // the rest is tokenized and evaluated (plus a pending token when the
  // prompt continues with its text). Throws ContextOverflowError if it does
  // not fit, leaving conv unchanged. Returns the number of tokens evaluated.
  int64_t feed_prompt(Conversation& conv, std::string_view prompt);
  // feed_prompt that also stops at `stops` (offsets into `prompt`, ascending)
  // where the tokens of the whole continuation have a boundary: there
  // `at_stop` sees the conversation holding exactly prompt[0, stop) (the
  // chat service snapshots message boundaries this way). The tokens fed are
  // exactly those feed_prompt would feed, from one tokenization of the whole
  // continuation, so the end state is the same; a stop inside a token, at or
  // before conv.fed_text's end or at the prompt's end is skipped, and so is
  // every stop when the tokens' text is not exactly the prompt's.
  int64_t feed_prompt(Conversation& conv, std::string_view prompt, std::span<const size_t> stops,
                      const std::function<void(const Conversation&)>& at_stop);
  // Feeds token ids as they are (no tokenizer, no BOS added): for checking
  // against other engines. The conversation's text becomes the ids' bytes.
  int64_t feed_ids(Conversation& conv, std::span<const int32_t> ids);
  // Feeds one sampled token (the decode step), updating conv.last_logits.
  void feed_token(Conversation& conv, int32_t id, const std::string& bytes);

  // How many tokens `prompt` takes when fed into a fresh conversation (BOS
  // included when the model adds one).
  int64_t count_prompt_tokens(std::string_view prompt) const;
  // The ids of `prompt` as a fresh conversation would get them (BOS first
  // when the model adds one).
  std::vector<int32_t> tokenize_prompt(std::string_view prompt) const;

  // feed_prompt + the generator the model's traits call for (generator.h).
  GenerateResult generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                          const TextCallback& on_text = {});

  LoadedModel& loaded() { return model_; }
  Workspace& workspace() { return *workspace_; }
  // Per-token facts of the forward passes since the last reset (loops used).
  const ForwardStats& stats() const { return stats_; }
  void reset_stats() { stats_.loops_used.clear(); }
  // Looped models: the exit policy of the forward passes from now on
  // (nullopt: the one the model was loaded with). A server request that
  // overrides it sets it before its prompt and clears it after.
  void set_loop_exit(std::optional<LoopExit> policy);
  const std::optional<LoopExit>& loop_exit() const { return loop_exit_; }
  // Appended to the model's fingerprint in state-cache keys: states computed
  // under a request's own loop policy only serve requests with that policy.
  std::string cache_variant() const;

  // The chat template prompts are rendered with and whose stop strings end
  // a reply: the model's, unless a server request for an alias with its own
  // TEMPLATE set one (nullptr: the model's again).
  const ChatTemplate& chat_template() const { return template_override_ ? *template_override_ : model_.chat_template(); }
  void set_chat_template(std::shared_ptr<const ChatTemplate> tmpl) { template_override_ = std::move(tmpl); }

 private:
  std::vector<int32_t> tokenize_continuation(const Conversation& conv, std::string_view suffix) const;
  // Offset in `suffix` after each of `ids` (the continuation of `conv`), or
  // empty when their text is not exactly `suffix`.
  std::vector<size_t> token_end_offsets(std::span<const int32_t> ids, std::string_view suffix) const;
  bool adds_bos() const;  // a fresh conversation starts with the model's BOS token

  void forward(ModelState& state, std::span<const int32_t> ids, float* logits);

  LoadedModel& model_;
  std::unique_ptr<Workspace> workspace_;
  ForwardStats stats_;
  std::optional<LoopExit> loop_exit_;
  std::shared_ptr<const ChatTemplate> template_override_;
};

}  // namespace flatline
