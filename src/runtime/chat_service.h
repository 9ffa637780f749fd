// One chat turn or completion as every front end runs it (the server's
// /api/chat, /api/generate and /v1/* routes, and `flatline bench turns`):
// render the messages with the model's template, start from the longest
// cached snapshot the prompt extends, evaluate only the rest, generate, and
// leave snapshots for the next request.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/state_cache.h"

namespace flatline {

// What to do when a chat no longer fits the context (transformers; recurrent
// models have no limit).
enum class ContextPolicy {
  Refuse,      // ContextOverflowError saying how many tokens fit (the default)
  DropOldest,  // drop the oldest non-system messages until it fits, re-process the rest
};

struct TurnOptions {
  SamplerParams sampling;
  DiffusionOptions diffusion;  // diffusion models only
  // < 0: until the model ends its turn or the context is full; recurrent
  // models never run out of context, so there it means at most
  // `recurrent_reply_cap` tokens (the server passes num_ctx), lest a reply
  // run forever.
  int64_t num_predict = -1;
  int64_t recurrent_reply_cap = 4096;
  std::vector<std::string> stop;
  bool use_template_stops = true;
  // Diffusion models: called after every refinement step with the canvas
  // (generated part, mask id where still masked); return false to cancel.
  std::function<bool(const GenerationEvent&)> on_canvas;
  TokenConstraint* constraint = nullptr;  // grammar mask / token observer (not owned)
  int32_t top_logprobs = -1;                   // GenerateOptions::top_logprobs
  std::vector<TokenLogprob>* logprob_log = nullptr;  // GenerateOptions::logprob_log (not owned)
};

// A prompt already evaluated into a conversation, waiting for generation.
struct PreparedTurn {
  Conversation conv;
  std::string prompt;
  int64_t cached_tokens = 0;      // tokens the starting snapshot held
  int64_t prompt_eval_count = 0;  // tokens evaluated now
  int64_t prompt_eval_ns = 0;     // cache lookup + evaluation
  std::vector<int32_t> prompt_loops;  // looped models: loops run for each token evaluated now
};

struct TurnResult {
  GenerateResult generation;     // text, counts, durations, done_reason
  int64_t cached_tokens = 0;     // prompt tokens reused from a snapshot ("cache_n")
  std::vector<int32_t> context;  // token ids the conversation holds after the reply
  StateMemory state_memory;      // the conversation's model state after the reply (the snapshot stored)
};

class ChatService {
 public:
  explicit ChatService(StateCache& cache) : cache_(cache) {}

  static std::string render(const LoadedModel& model, const std::vector<ChatMessage>& messages);
  // With the engine's chat template (an alias's TEMPLATE when one is set).
  static std::string render(const Engine& engine, const std::vector<ChatMessage>& messages);
  // ... with more template variables (tools, enable_thinking, ...; see
  // ChatTemplate::render), an object or null.
  static std::string render(const Engine& engine, const std::vector<ChatMessage>& messages,
                            const nlohmann::ordered_json& template_vars);

  // Starts from the longest cached snapshot `prompt` extends (or a fresh
  // state with room for `n_ctx` tokens) and evaluates the rest; snapshots
  // the result. Throws ContextOverflowError (nothing changed) when the
  // prompt does not fit. The server calls this before it answers, so such
  // errors get a proper HTTP status.
  PreparedTurn prepare(Engine& engine, int64_t n_ctx, const std::string& prompt);
  // prepare() for the rendering of `messages`, also snapshotting the message
  // boundaries it feeds across (message_boundaries), so a client that later
  // rewrites an earlier message resumes from the boundary before it.
  PreparedTurn prepare_messages(Engine& engine, int64_t n_ctx, const std::vector<ChatMessage>& messages,
                                const nlohmann::ordered_json& template_vars = nullptr);
  // Offsets in `prompt` (the rendering of `messages` with the generation
  // prompt) where a message ends and more than `after` bytes have been
  // consumed: the rendering of each leading part of the messages (without
  // generation prompt) that the prompt begins with, for the messages before
  // the last one at doubling distances from it (the second-to-last, the
  // third-, fifth-, ninth-to-last, ...), leaving out ends within
  // kMinBoundaryGap bytes of `after` or of the prompt's end. Ascending.
  static std::vector<size_t> message_boundaries(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                                const std::string& prompt, size_t after,
                                                const nlohmann::ordered_json& template_vars = nullptr);
  static constexpr size_t kMinBoundaryGap = 16;
  // prepare() for a chat: renders `messages`; with DropOldest, when the
  // prompt does not leave `reply_reserve(n_ctx, num_predict)` tokens free
  // for the reply it drops the oldest user/assistant messages (system
  // messages and the last message stay) until it does, or until only the
  // last message is left. `dropped` gets the number of messages dropped.
  // Throws ContextOverflowError when even the last message alone does not
  // fit, or with Refuse.
  PreparedTurn prepare_chat(Engine& engine, int64_t n_ctx, std::vector<ChatMessage> messages, ContextPolicy policy,
                            int* dropped = nullptr, int64_t num_predict = -1,
                            const nlohmann::ordered_json& template_vars = nullptr);
  // Room DropOldest keeps for the reply: num_predict when set, else a quarter
  // of the context, at most half of it (a dropped history is re-processed
  // whole, so dropping just enough for a few tokens would repeat that cost on
  // every following turn).
  static int64_t reply_reserve(int64_t n_ctx, int64_t num_predict);
  // Generates the reply and snapshots the conversation after it.
  TurnResult finish(Engine& engine, PreparedTurn turn, const TurnOptions& options, const TextCallback& on_text = {},
                    const std::function<bool()>& should_stop = {});

  // prepare + finish for `prompt` (already rendered, or raw).
  TurnResult run(Engine& engine, int64_t n_ctx, const std::string& prompt, const TurnOptions& options,
                 const TextCallback& on_text = {}, const std::function<bool()>& should_stop = {});

  TurnResult chat(Engine& engine, int64_t n_ctx, const std::vector<ChatMessage>& messages,
                  const TurnOptions& options, const TextCallback& on_text = {},
                  const std::function<bool()>& should_stop = {}) {
    return finish(engine, prepare_messages(engine, n_ctx, messages), options, on_text, should_stop);
  }

  StateCache& cache() { return cache_; }

 private:
  // prepare(), with `boundaries(after)` giving the offsets to snapshot at.
  PreparedTurn prepare_at(Engine& engine, int64_t n_ctx, const std::string& prompt,
                          const std::function<std::vector<size_t>(size_t after)>& boundaries);

  StateCache& cache_;
};

}  // namespace flatline
