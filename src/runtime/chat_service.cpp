#include "runtime/chat_service.h"

#include <algorithm>

#include "util/error.h"

#include <chrono>

#include "util/log.h"

namespace flatline {

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::string ChatService::render(const LoadedModel& model, const std::vector<ChatMessage>& messages) {
  return model.chat_template().render(messages, /*add_generation_prompt=*/true);
}

std::string ChatService::render(const Engine& engine, const std::vector<ChatMessage>& messages) {
  return engine.chat_template().render(messages, /*add_generation_prompt=*/true);
}

std::string ChatService::render(const Engine& engine, const std::vector<ChatMessage>& messages,
                                const nlohmann::ordered_json& template_vars) {
  return engine.chat_template().render(messages, /*add_generation_prompt=*/true, template_vars);
}

PreparedTurn ChatService::prepare(Engine& engine, int64_t n_ctx, const std::string& prompt) {
  return prepare_at(engine, n_ctx, prompt, {});
}

PreparedTurn ChatService::prepare_messages(Engine& engine, int64_t n_ctx, const std::vector<ChatMessage>& messages,
                                          const nlohmann::ordered_json& template_vars) {
  const ChatTemplate& tmpl = engine.chat_template();
  const std::string prompt = render(engine, messages, template_vars);
  return prepare_at(engine, n_ctx, prompt,
                    [&](size_t after) { return message_boundaries(tmpl, messages, prompt, after, template_vars); });
}

std::vector<size_t> ChatService::message_boundaries(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                                    const std::string& prompt, size_t after,
                                                    const nlohmann::ordered_json& template_vars) {
  std::vector<size_t> out;
  const size_t n = messages.size();
  for (size_t step = 1; step < n; step *= 2) {
    const size_t last = n - 1 - step;  // the boundary after messages[last]
    std::string head;
    try {
      head = tmpl.render(std::vector<ChatMessage>(messages.begin(), messages.begin() + last + 1),
                                          /*add_generation_prompt=*/false, template_vars);
    } catch (const std::exception&) {
      continue;  // a template may refuse a history that ends there
    }
    if (head.size() < after + kMinBoundaryGap) break;  // the earlier ones are older still
    // Templates that render earlier messages differently once more follow
    // (e.g. reasoning kept only in the last turn) have no boundary there.
    if (head.size() + kMinBoundaryGap > prompt.size() || prompt.compare(0, head.size(), head) != 0) continue;
    out.push_back(head.size());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

PreparedTurn ChatService::prepare_at(Engine& engine, int64_t n_ctx, const std::string& prompt,
                                     const std::function<std::vector<size_t>(size_t after)>& boundaries) {
  LoadedModel& model = engine.loaded();
  const int64_t t0 = now_ns();
  PreparedTurn turn;
  if (model.traits().generation != GenerationKind::Autoregressive) {
    // A diffusion model's generator takes the whole prompt into its canvas.
    turn.conv = engine.new_conversation(n_ctx);
    turn.prompt = prompt;
    return turn;
  }
  // A model whose states cannot be continued (bidirectional diffusion) gets
  // no cache lookups and leaves no snapshots.
  const bool reusable = model.traits().prefix_reusable;
  std::optional<Conversation> cached = reusable ? cache_.lookup(model, n_ctx, prompt, engine.cache_variant()) : std::nullopt;
  turn.conv = cached ? std::move(*cached) : engine.new_conversation(n_ctx);
  turn.cached_tokens = static_cast<int64_t>(turn.conv.tokens.size());
  const std::vector<size_t> stops =
      reusable && boundaries ? boundaries(turn.conv.fed_text.size()) : std::vector<size_t>{};
  engine.reset_stats();
  turn.prompt_eval_count = engine.feed_prompt(turn.conv, prompt, stops, [&](const Conversation& at_boundary) {
    cache_.store(model, at_boundary.clone(), /*persist=*/false, SnapshotKind::Boundary, engine.cache_variant());
  });
  turn.prompt = prompt;
  turn.prompt_eval_ns = now_ns() - t0;
  turn.prompt_loops = engine.stats().loops_used;
  // Snapshot after the prompt: a regenerated reply or an edited last answer
  // starts here instead of from scratch.
  if (reusable && (turn.prompt_eval_count > 0 || !cached))
    cache_.store(model, turn.conv.clone(), /*persist=*/true, SnapshotKind::PromptEnd, engine.cache_variant());
  return turn;
}

int64_t ChatService::reply_reserve(int64_t n_ctx, int64_t num_predict) {
  if (n_ctx <= 0) return 0;
  const int64_t wanted = num_predict > 0 ? num_predict : n_ctx / 4;
  return std::min(wanted, n_ctx / 2);
}

namespace {
// Removes the oldest message that is neither a system message nor the last
// one, with the reply after it, so the history still starts with a user turn.
// Returns how many messages went (0: nothing left to drop).
int drop_oldest_exchange(std::vector<ChatMessage>& messages) {
  if (messages.empty()) return 0;
  auto oldest = std::find_if(messages.begin(), messages.end() - 1,
                             [](const ChatMessage& m) { return m.role != "system"; });
  if (oldest == messages.end() - 1) return 0;
  auto end = oldest + 1;
  if (oldest->role == "user" && end != messages.end() - 1 && end->role == "assistant") ++end;
  const int n = static_cast<int>(end - oldest);
  messages.erase(oldest, end);
  return n;
}
}  // namespace

PreparedTurn ChatService::prepare_chat(Engine& engine, int64_t n_ctx, std::vector<ChatMessage> messages,
                                       ContextPolicy policy, int* dropped, int64_t num_predict,
                                       const nlohmann::ordered_json& template_vars) {
  int removed = 0;
  const bool bounded = engine.loaded().traits().has_context_limit;
  if (policy == ContextPolicy::DropOldest && bounded) {
    const int64_t limit = n_ctx - reply_reserve(n_ctx, num_predict);
    while (engine.count_prompt_tokens(render(engine, messages, template_vars)) > limit) {
      const int n = drop_oldest_exchange(messages);
      if (n == 0) break;
      removed += n;
    }
  }
  for (;;) {
    try {
      PreparedTurn turn = prepare_messages(engine, n_ctx, messages, template_vars);
      if (dropped) *dropped = removed;
      if (removed > 0)
        LOG_INFO(engine.loaded().info().name << ": dropped the " << removed << " oldest messages to fit the "
                                             << n_ctx << "-token context");
      return turn;
    } catch (const ContextOverflowError& e) {
      if (policy == ContextPolicy::Refuse) throw;
      const int n = drop_oldest_exchange(messages);
      if (n == 0) throw ContextOverflowError(std::string(e.what()) + " (even after dropping every earlier message)");
      removed += n;
    }
  }
}

TurnResult ChatService::finish(Engine& engine, PreparedTurn turn, const TurnOptions& options,
                               const TextCallback& on_text, const std::function<bool()>& should_stop) {
  LoadedModel& model = engine.loaded();
  GenerateOptions g;
  g.sampling = options.sampling;
  g.diffusion = options.diffusion;
  g.num_predict = options.num_predict;
  if (g.num_predict < 0 && !model.traits().has_context_limit) g.num_predict = options.recurrent_reply_cap;
  g.stop = options.stop;
  g.use_template_stops = options.use_template_stops;
  g.should_stop = should_stop;
  g.constraint = options.constraint;
  g.top_logprobs = options.top_logprobs;
  g.logprob_log = options.logprob_log;

  TurnResult out;
  // The prompt is already in the state: generate() evaluates nothing more.
  if (options.on_canvas && model.traits().generation == GenerationKind::MaskedDiffusion) {
    g.diffusion.canvas_events = true;
    EventSink sink = [&](const GenerationEvent& e) {
      if (e.kind == GenerationEvent::Kind::Canvas) return options.on_canvas(e);
      return !on_text || on_text(e.text);
    };
    out.generation = make_generator(engine)->generate(turn.conv, turn.prompt, g, sink);
  } else {
    out.generation = engine.generate(turn.conv, turn.prompt, g, on_text);
  }
  if (model.traits().generation == GenerationKind::Autoregressive) {
    out.generation.prompt_eval_count = turn.prompt_eval_count;
    out.generation.prompt_eval_ns = turn.prompt_eval_ns;
    // As GenerateResult says: the prompt's tokens first, then the reply's.
    std::vector<int32_t>& loops = out.generation.loops_used;
    loops.insert(loops.begin(), turn.prompt_loops.begin(), turn.prompt_loops.end());
  }
  out.cached_tokens = turn.cached_tokens;
  out.context = turn.conv.tokens;
  out.context.insert(out.context.end(), turn.conv.pending_tokens.begin(), turn.conv.pending_tokens.end());
  out.state_memory = turn.conv.state->memory();
  const GenerateResult& r = out.generation;
  LOG_INFO(model.info().name << ": prompt " << r.prompt_tokens << " tokens (cache_n " << out.cached_tokens
                             << ", evaluated " << r.prompt_eval_count << " in " << r.prompt_eval_ns / 1000000
                             << " ms), generated " << r.eval_count << " tokens in " << r.eval_ns / 1000000
                             << " ms, done_reason " << done_reason_name(r.done_reason));
  // Snapshot after the reply: the next turn (history + this reply + a new
  // message) extends exactly this text.
  if (model.traits().prefix_reusable)
    cache_.store(model, std::move(turn.conv), /*persist=*/true, SnapshotKind::ReplyEnd,
                 engine.cache_variant());
  return out;
}

TurnResult ChatService::run(Engine& engine, int64_t n_ctx, const std::string& prompt, const TurnOptions& options,
                            const TextCallback& on_text, const std::function<bool()>& should_stop) {
  return finish(engine, prepare(engine, n_ctx, prompt), options, on_text, should_stop);
}

}  // namespace flatline
