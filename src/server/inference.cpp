// The generation path shared by the Ollama and OpenAI routes.
#include <algorithm>
#include <chrono>

#include "runtime/diffusion.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

CatalogEntry resolve_model(ServerContext& ctx, const std::optional<std::string>& name) {
  if (!name || name->empty()) throw HttpError(400, "model is required");
  auto entry = ctx.models->catalog().find(*name);
  if (!entry) throw HttpError(404, "model \"" + *name + "\" not found, try pulling it first");
  return *entry;
}

namespace {

// /api/generate's `context`: the ids an earlier response returned, turned
// back into the text they stand for (a leading BOS is the tokenizer's, not
// text).
std::string context_text(const LoadedModel& model, const std::vector<int32_t>& ids) {
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> rest;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= tok.n_vocab())
      throw HttpError(400, "context: token id " + std::to_string(ids[i]) + " is outside the model's vocabulary of " +
                               std::to_string(tok.n_vocab()) + " tokens");
    if (i == 0 && tok.add_bos() && ids[i] == tok.bos_id()) continue;
    rest.push_back(ids[i]);
  }
  std::string text;
  for (int32_t id : rest) text += tok.token_bytes(id, /*render_special=*/true);
  return text;
}

// The messages /api/generate renders: the system text, then the prompt.
std::vector<ChatMessage> generate_messages(const InferenceRequest& request) {
  std::vector<ChatMessage> messages;
  if (!request.system.empty()) messages.push_back({"system", request.system});
  messages.push_back({"user", request.prompt});
  return messages;
}

std::string build_prompt(Engine& engine, const InferenceRequest& request, const json& vars) {
  if (request.chat) return ChatService::render(engine, request.messages, vars);
  if (request.raw) return request.prompt;
  return context_text(engine.loaded(), request.context) + ChatService::render(engine, generate_messages(request), vars);
}

// An alias's TEMPLATE for this turn (cleared when the turn ends).
void apply_alias_template(ActiveTurn& turn, const CatalogEntry& entry) {
  Engine& engine = turn.lease->engine();
  engine.set_chat_template(nullptr);
  if (!entry.defaults.template_text) return;
  try {
    engine.set_chat_template(std::make_shared<const ChatTemplate>(
        ChatTemplate::from_gguf(turn.lease->loaded().file(), *entry.defaults.template_text)));
  } catch (const std::exception& e) {
    throw HttpError(500, "the TEMPLATE of " + turn.model_name + " cannot be used: " + e.what());
  }
  turn.template_set = true;
}

// The token mask for a constrained request. Its budget is the number of
// tokens the reply may have, so the mask steers towards a complete text
// before the reply is cut off.
void attach_grammar(ActiveTurn& turn, const OutputFormat& format, GrammarConstraintOptions options = {},
                    bool keep_template_stops = false) {
  LoadedModel& model = turn.lease->loaded();
  if (model.traits().generation != GenerationKind::Autoregressive)
    throw HttpError(400, "structured output (" + format.what + ") needs an autoregressive model; " +
                             turn.model_name + " is a diffusion model");
  const int64_t prompt_tokens = static_cast<int64_t>(turn.prepared.conv.tokens.size());
  const TurnOptions& o = turn.turn_options;
  int64_t budget = o.num_predict >= 0 ? o.num_predict : o.recurrent_reply_cap;
  if (model.traits().has_context_limit) {
    const int64_t room = turn.lease->n_ctx() - prompt_tokens;
    budget = o.num_predict >= 0 ? std::min(budget, room) : room;
  }
  options.budget = std::max<int64_t>(budget, 0);
  const Tokenizer& tok = model.tokenizer();
  turn.grammar = std::make_unique<GrammarConstraint>(format.grammar, tok, VocabTrie::for_model(tok, model.fingerprint()),
                                                     options);
  turn.turn_options.constraint = turn.grammar.get();
  // The grammar decides where the text ends; a template's stop strings
  // ("\n\nUser:") could otherwise cut a JSON string value short.
  turn.turn_options.use_template_stops = keep_template_stops;
  LOG_INFO(turn.model_name << ": output constrained by " << format.what << ", budget " << options.budget << " tokens");
}

// A looped model's loop policy for this request (options loops /
// exit_threshold / exit_mode); other models refuse those options. Set on the
// engine before the prompt is evaluated, cleared when the turn ends.
void apply_loop_policy(ActiveTurn& turn, const ParsedOptions& o) {
  Engine& engine = turn.lease->engine();
  engine.set_loop_exit(std::nullopt);
  if (!o.overrides_loops()) return;
  const ModelInfo& info = turn.lease->loaded().info();
  if (info.n_loops <= 1)
    throw HttpError(400, "options loops, exit_threshold and exit_mode are for looped models (Ouro); \"" +
                             turn.model_name + "\" is a " + info.architecture + " model");
  LoopExit policy;
  try {
    policy = override_loop_exit(info.loop_exit, info.n_loops, o.loops, o.exit_threshold, o.exit_mode);
  } catch (const Error& e) {
    throw HttpError(400, std::string("option ") + e.what());
  }
  if (policy.fixed_loops == 0 && policy.threshold < 1.0f && !info.has_exit_gate)
    throw HttpError(400, "option exit_threshold below 1 needs an exit gate, and \"" + turn.model_name +
                             "\" has none (ouro.exit_gate.weight); give loops instead");
  if (policy == info.loop_exit) return;  // the model's own: its cached states apply
  engine.set_loop_exit(policy);
  turn.loop_policy_set = true;
  LOG_INFO(turn.model_name << ": this request runs " << describe_loop_exit(policy) << " (the model: "
                           << describe_loop_exit(info.loop_exit) << ")");
}

// The control token whose text is `marker` (Mistral's [TOOL_CALLS]), so a
// grammar that spells the marker may produce it; none when it is plain text.
std::vector<int32_t> marker_tokens(const Tokenizer& tok, const std::string& marker) {
  if (marker.empty()) return {};
  const int32_t id = tok.find_token(marker);
  if (id < 0 || !tok.is_control(id)) return {};
  return {id};
}

// Tools and reasoning for this turn: how the reply is split, and for
// tool_choice required / a named function the grammar that makes the reply
// calls whose arguments match the tools' schemas. With tool_choice auto,
// formats whose calls open with a plain-text marker get the same grammar
// from the marker on (a lazy grammar), so a call the model starts is
// always complete and valid.
void setup_reply(ActiveTurn& turn, const InferenceRequest& request, const ChatTemplate& tmpl, const json& vars) {
  const std::string& prompt = turn.prepared.prompt;
  turn.reply.separate_thinking = tmpl.supports_thinking();
  turn.reply.starts_in_thinking = tmpl.supports_thinking() && prompt_opens_thinking(prompt);
  turn.keep_thinking = request.think.think.value_or(true);
  turn.parallel_calls = request.tools.parallel;
  const ToolRequest& tools = request.tools;
  if (!tools.active()) return;
  const ToolCallFormat format = tmpl.tool_call_format();
  turn.reply.tools = format;
  const ToolCallSyntax& syntax = tool_call_syntax(format);
  const bool autoregressive = turn.lease->loaded().traits().generation == GenerationKind::Autoregressive;
  // Not while the model may be reasoning: a marker it mentions inside
  // <think> would start the grammar there.
  const bool may_reason = tmpl.supports_thinking() && request.think.think.value_or(true);
  const bool lazy = !tools.constrained() && !syntax.list && autoregressive && !may_reason;
  if (!tools.constrained() && !lazy) return;
  if (request.format) {
    if (tools.constrained())
      throw HttpError(400, "tool_choice \"" + std::string(tools.choice == ToolChoice::Named ? tools.named : "required") +
                               "\" constrains the reply to tool calls, so it cannot be combined with " + request.format.what);
    return;  // the request's own format wins over the lazy call grammar
  }
  ToolGrammarOptions o;
  o.only = tools.choice == ToolChoice::Named ? tools.named : "";
  o.parallel = tools.parallel;
  if (tools.constrained()) {
    o.open_reasoning = turn.reply.starts_in_thinking;
    o.lead_in = reply_lead_in(tmpl, request.messages, vars, prompt);
  }
  OutputFormat grammar;
  try {
    grammar.grammar = Grammar::parse(tool_call_gbnf(format, tools.tools, o));
  } catch (const Error& e) {
    throw HttpError(400, std::string("invalid tools: ") + e.what());
  }
  grammar.what = tools.constrained() ? "tool_choice " + (o.only.empty() ? std::string("required") : "\"" + o.only + "\"")
                                     : "tool call syntax (" + std::string(tool_call_format_name(format)) + ")";
  GrammarConstraintOptions options;
  options.special_tokens = marker_tokens(turn.lease->loaded().tokenizer(), syntax.open);
  if (lazy) {
    options.trigger = syntax.open.empty() ? "{" : syntax.open;
    options.trigger_at_start = syntax.open.empty();  // Llama 3: a call is the whole reply
  }
  attach_grammar(turn, grammar, options, /*keep_template_stops=*/lazy);
}

}  // namespace

ReplyParts visible_parts(const ActiveTurn& turn, ReplyParts parts, size_t calls_so_far) {
  if (!turn.keep_thinking) parts.thinking.clear();
  if (!turn.parallel_calls) {
    const size_t room = calls_so_far >= 1 ? 0 : 1;
    if (parts.calls.size() > room) parts.calls.resize(room);
  }
  return parts;
}

ActiveTurn::~ActiveTurn() {
  if (lease && loop_policy_set) lease->engine().set_loop_exit(std::nullopt);
  if (lease && template_set) lease->engine().set_chat_template(nullptr);
}

void apply_alias_prompt_defaults(InferenceRequest& request) {
  const ModelDefaults& d = request.entry.defaults;
  if (!request.chat) {
    if (!request.raw && request.system.empty() && d.system) request.system = *d.system;
    return;
  }
  std::vector<ChatMessage> head;
  const bool has_system = !request.messages.empty() && request.messages.front().role == "system";
  if (d.system && !has_system) head.push_back({"system", *d.system});
  head.insert(head.end(), d.messages.begin(), d.messages.end());
  if (head.empty()) return;
  // The request's own system message stays first.
  const auto at = has_system ? request.messages.begin() + 1 : request.messages.begin();
  request.messages.insert(at, head.begin(), head.end());
}

int32_t parse_logprobs_request(const FieldReader& f) {
  const bool wanted = f.boolean("logprobs").value_or(false);
  const std::optional<int64_t> top = f.integer("top_logprobs");
  if (top && (*top < 0 || *top > GenerateOptions::kMaxTopLogprobs))
    throw HttpError(400, "top_logprobs must be between 0 and " + std::to_string(GenerateOptions::kMaxTopLogprobs) +
                             " (got " + std::to_string(*top) + ")");
  if (!wanted) {
    if (top && *top > 0) throw HttpError(400, "top_logprobs needs logprobs: true");
    return -1;
  }
  return static_cast<int32_t>(top.value_or(0));
}

namespace {
json token_entry(const Tokenizer& tok, int32_t id, float logprob) {
  const std::string text = tok.token_bytes(id);
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return json{{"token", text}, {"logprob", logprob}, {"bytes", std::move(bytes)}};
}
}  // namespace

json take_logprobs(const ActiveTurn& turn) {
  json out = json::array();
  const Tokenizer& tok = turn.lease->loaded().tokenizer();
  for (; turn.logprobs_sent < turn.logprob_log.size(); ++turn.logprobs_sent) {
    const TokenLogprob& t = turn.logprob_log[turn.logprobs_sent];
    json entry = token_entry(tok, t.id, t.logprob);
    json top = json::array();
    for (const auto& [id, lp] : t.top) top.push_back(token_entry(tok, id, lp));
    entry["top_logprobs"] = std::move(top);
    out.push_back(std::move(entry));
  }
  return out;
}

void add_loop_stats(json& out, const TurnResult& r) {
  const std::vector<int32_t>& loops = r.generation.loops_used;
  if (loops.empty()) return;
  double sum = 0;
  for (int32_t n : loops) sum += n;
  out["loops_used"] = loops;
  out["loops_mean"] = sum / static_cast<double>(loops.size());
}

std::unique_ptr<ModelManager::Lease> acquire_model(ServerContext& ctx, const InferenceRequest& request) {
  try {
    return ctx.models->acquire(request.entry, request.options.num_ctx, request.keep_alive);
  } catch (const ServerBusyError& e) {
    throw HttpError(503, e.what(), e.retry_after_seconds());
  } catch (const MemoryBudgetError& e) {
    throw HttpError(500, std::string("model requires more system memory than is available: ") + e.what());
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(500, "error loading model " + request.model_name + ": " + e.what());
  }
}

std::shared_ptr<ActiveTurn> start_turn(ServerContext& ctx, const InferenceRequest& request, int64_t start_ns) {
  auto turn = std::make_shared<ActiveTurn>();
  turn->start_ns = start_ns;
  turn->turn_options = request.options.turn;
  if (turn->turn_options.top_logprobs >= 0) turn->turn_options.logprob_log = &turn->logprob_log;
  turn->lease = acquire_model(ctx, request);
  if (ctx.stopping) throw HttpError(503, "the server is shutting down");
  turn->model_name = request.model_name;
  turn->load_ns = turn->lease->load_ns();
  turn->turn_options.recurrent_reply_cap = turn->lease->n_ctx();
  apply_loop_policy(*turn, request.options);
  apply_alias_template(*turn, request.entry);
  const ChatTemplate& tmpl = turn->lease->engine().chat_template();
  if (request.refuse_unsupported_thinking && request.think.think.value_or(false) && !tmpl.supports_thinking())
    throw HttpError(400, "\"" + request.model_name + "\" does not support thinking");
  const json vars = request.raw ? json::object() : template_vars(request.tools, request.think, tmpl);
  const std::string prompt = build_prompt(turn->lease->engine(), request, vars);
  if (prompt.empty()) throw HttpError(400, "the prompt is empty");
  try {
    if (request.chat) {
      const ContextPolicy policy = request.truncate ? (*request.truncate ? ContextPolicy::DropOldest : ContextPolicy::Refuse)
                                                    : ctx.options.context_policy;
      turn->prepared = ctx.chat->prepare_chat(turn->lease->engine(), turn->lease->n_ctx(), request.messages, policy,
                                              nullptr, turn->turn_options.num_predict, vars);
    } else {
      turn->prepared = ctx.chat->prepare(turn->lease->engine(), turn->lease->n_ctx(), prompt);
    }
    // A diffusion canvas that cannot fit is refused before the reply starts.
    if (turn->lease->loaded().traits().generation == GenerationKind::MaskedDiffusion)
      check_canvas_fits(turn->lease->engine().count_prompt_tokens(turn->prepared.prompt),
                        diffusion_gen_length(turn->turn_options.diffusion, turn->turn_options.num_predict),
                        turn->lease->n_ctx());
  } catch (const ContextOverflowError& e) {
    throw HttpError(400, e.what());
  }
  if (request.format) attach_grammar(*turn, request.format);
  if (!request.raw) setup_reply(*turn, request, tmpl, vars);
  return turn;
}

TurnResult finish_turn(ServerContext& ctx, ActiveTurn& turn, const TextCallback& on_text) {
  const ModelManager::Lease& lease = *turn.lease;
  const int64_t timeout_ms = ctx.options.request_timeout_ms;
  const int64_t deadline_ns = timeout_ms > 0 ? turn.start_ns + timeout_ms * 1000000 : INT64_MAX;
  bool timed_out = false;
  auto stop = [&ctx, &lease, deadline_ns, &timed_out] {
    if (ctx.cancelled() || lease.file_faulted()) return true;
    timed_out = steady_now_ns() >= deadline_ns;
    return timed_out;
  };
  TurnResult r = ctx.chat->finish(turn.lease->engine(), std::move(turn.prepared), turn.turn_options, on_text, stop);
  // Stopped by the clock, not by the client: an ordinary reply cut short.
  if (timed_out && r.generation.done_reason == DoneReason::Cancelled) {
    r.generation.done_reason = DoneReason::Length;
    LOG_INFO(turn.model_name << ": reply stopped at --request-timeout (" << timeout_ms / 1000 << " s) after "
                             << r.generation.eval_count << " tokens");
  }
  const GenerateResult& g = r.generation;
  if (turn.grammar) {
    const GrammarMaskStats& s = turn.grammar->stats();
    LOG_INFO(turn.model_name << ": grammar mask: " << s.masks << " masks, " << s.cache_hits << " from the cache, "
                             << s.nodes_visited << " trie nodes walked, " << s.mask_ns / 1000 << " us"
                             << (turn.grammar->complete() ? "" : "; the text is not complete"));
  }
  ctx.metrics.count_turn(turn.model_name, g.prompt_tokens, r.cached_tokens, g.prompt_eval_count, g.eval_count,
                         g.done_reason == DoneReason::Cancelled);
  record_turn(ctx, turn, r);
  if (lease.file_changed())
    throw HttpError(500, "the file of model " + turn.model_name +
                             " changed on disk while this request was using it, so the reply was discarded; "
                             "the next request loads the file as it is now");
  return r;
}

void stream_canvas(ActiveTurn& turn, std::function<bool(json)> emit) {
  if (!turn.turn_options.diffusion.canvas_events) return;
  LoadedModel& model = turn.lease->loaded();
  if (model.traits().generation != GenerationKind::MaskedDiffusion) return;
  turn.turn_options.on_canvas = [&model, emit = std::move(emit)](const GenerationEvent& e) {
    return emit(json{{"canvas", canvas_text(model, e.canvas)}, {"step", e.step}, {"steps", e.steps}});
  };
}

void guarded(httplib::Response& res, const ErrorWriter& write_error, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const HttpError& e) {
    if (e.status() >= 500) LOG_WARN("request failed: " << e.what());
    write_error(res, e.status(), e.what());
    if (e.retry_after_seconds() > 0) res.set_header("Retry-After", std::to_string(e.retry_after_seconds()));
  } catch (const ContextOverflowError& e) {
    write_error(res, 400, e.what());
  } catch (const MemoryBudgetError& e) {
    write_error(res, 500, std::string("model requires more system memory than is available: ") + e.what());
  } catch (const Error& e) {
    LOG_WARN("request failed: " << e.what());
    write_error(res, 500, e.what());
  } catch (const std::exception& e) {
    LOG_ERROR("internal error: " << e.what());
    write_error(res, 500, std::string("internal error: ") + e.what());
  }
}

void write_json(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(dump(body), "application/json; charset=utf-8");
}

void write_ollama_error(httplib::Response& res, int status, const std::string& message) {
  write_json(res, json{{"error", scrub_private_paths(message)}}, status);
}

void write_openai_error(httplib::Response& res, int status, const std::string& message) {
  const char* type = status == 400 || status == 413 ? "invalid_request_error" : status == 404 ? "not_found_error" : "api_error";
  write_json(res,
             json{{"error", {{"message", scrub_private_paths(message)}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}},
             status);
}

void stream_response(httplib::Response& res, const char* content_type, std::shared_ptr<ActiveTurn> turn,
                     std::function<void(ActiveTurn&, httplib::DataSink&)> produce) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      content_type,
      [turn, produce](size_t, httplib::DataSink& sink) mutable {
        if (turn) {
          try {
            produce(*turn, sink);
          } catch (const std::exception& e) {
            LOG_ERROR("stream failed: " << e.what());
          }
          turn.reset();  // give the model back as soon as the reply is done
        }
        sink.done();
        return true;
      });
}

}  // namespace flatline::server
