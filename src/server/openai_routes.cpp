// The OpenAI-compatible shim, shaped like Ollama's (openai/openai.go,
// middleware/openai.go): /v1/chat/completions, /v1/completions, /v1/models.
// Requests map onto the same generation path as /api/chat and
// /api/generate; temperature and top_p default to 1.0 when absent.
#include <random>

#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

namespace {

std::string random_id(const char* prefix) {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::string(prefix) + std::to_string(std::uniform_int_distribution<int>(0, 998)(rng));
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* finish_reason_of(const TurnResult& r) { return r.generation.done_reason == DoneReason::Length ? "length" : "stop"; }

// OpenAI's usage: prompt_tokens counts the whole prompt, and the part served
// from the state cache is reported as prompt_tokens_details.cached_tokens.
constexpr int64_t kMaxChoices = 8;  // "n": each choice is a whole generation

json usage_json(const TurnResult& r) {
  const int64_t prompt = r.generation.prompt_tokens;
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", r.generation.eval_count},
              {"total_tokens", prompt + r.generation.eval_count},
              {"prompt_tokens_details", {{"cached_tokens", prompt - r.generation.prompt_eval_count}}}};
}

// Fields shared by both endpoints: sampling, stop, max_tokens, seed.
// `alias_parameters`: an alias's PARAMETERs, the defaults of fields the
// request leaves out (OpenAI's own defaults otherwise).
void read_sampling(const FieldReader& f, ParsedOptions& o, const json& alias_parameters) {
  o.turn = ollama_default_options();
  SamplerParams& s = o.turn.sampling;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  apply_options(alias_parameters, o);
  s.temperature = static_cast<float>(f.number("temperature").value_or(s.temperature));
  double top_p = f.number("top_p").value_or(s.top_p);
  s.top_p = static_cast<float>(top_p == 0.0 ? 1.0 : top_p);
  if (auto v = f.number("frequency_penalty")) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.number("presence_penalty")) s.presence_penalty = static_cast<float>(*v);
  if (auto v = f.integer("seed")) s.seed = *v;
  if (auto v = f.integer("max_tokens")) o.turn.num_predict = checked_num_predict("max_tokens", *v);
  else if (auto v2 = f.integer("max_completion_tokens"))
    o.turn.num_predict = checked_num_predict("max_completion_tokens", *v2);
  if (const json* stop = f.raw("stop")) {
    if (stop->is_string()) {
      o.turn.stop = {stop->get<std::string>()};
    } else if (stop->is_array()) {
      for (const auto& s2 : *stop) {
        if (!s2.is_string())
          throw HttpError(400, std::string("invalid type for 'stop' field: ") + go_json_kind(s2));
        if (!s2.get<std::string>().empty()) o.turn.stop.push_back(s2.get<std::string>());
      }
    } else {
      throw HttpError(400, std::string("invalid type for 'stop' field: ") + go_json_kind(*stop));
    }
    o.turn.stop = checked_stop_strings("stop", std::move(o.turn.stop));
  }
  check_sampling(s, "openai");
}

bool include_usage(const FieldReader& f) {
  const json* so = f.object("stream_options");
  if (!so) return false;
  FieldReader opts(*so, "StreamOptions");
  return opts.boolean("include_usage").value_or(false);
}

std::vector<ChatMessage> parse_openai_messages(const json& messages) {
  std::vector<ChatMessage> out;
  for (const auto& m : messages) {
    if (!m.is_object())
      throw HttpError(400, std::string("json: cannot unmarshal ") + go_json_kind(m) +
                               " into Go struct field ChatCompletionRequest.messages of type openai.Message");
    FieldReader f(m, "ChatCompletionRequest.messages");
    ChatMessage msg;
    msg.role = f.string("role").value_or("");
    const json* content = f.raw("content");
    if (!content) {
      if (!f.raw("tool_calls")) throw HttpError(400, "invalid message content type: <nil>");
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      // Parts: text parts are joined; images are not supported.
      for (const auto& part : *content) {
        if (!part.is_object() || !part.contains("type")) throw HttpError(400, "invalid message format");
        const json& type = part["type"];
        if (type == "text" && part.contains("text") && part["text"].is_string()) {
          msg.content += part["text"].get<std::string>();
        } else if (type == "image_url" || type == "input_audio") {
          throw HttpError(400, "flatline does not support images or audio");
        } else {
          throw HttpError(400, "invalid message format");
        }
      }
    } else {
      throw HttpError(400, std::string("invalid message content type: ") +
                               (content->is_number() ? "float64" : content->is_boolean() ? "bool" : "map[string]interface {}"));
    }
    read_openai_message_tools(m, msg, "messages[" + std::to_string(out.size()) + "]");
    out.push_back(std::move(msg));
  }
  return out;
}

// The assistant message of a whole reply: content null when the reply is
// only calls (OpenAI's shape), reasoning as reasoning_content.
json completion_message(const ReplyParts& parts) {
  json m{{"role", "assistant"}};
  m["content"] = parts.calls.empty() || !parts.content.empty() ? json(parts.content) : json(nullptr);
  if (!parts.thinking.empty()) m["reasoning_content"] = parts.thinking;
  if (!parts.calls.empty()) m["tool_calls"] = openai_tool_calls(parts.calls, 0, /*with_index=*/false);
  return m;
}

void write_sse(httplib::DataSink& sink, const std::string& data) {
  std::string event = "data: " + data + "\n\n";
  sink.write(event.data(), event.size());
}

// The chunk `stream_options.include_usage` asks for: no choices, the counts.
void write_usage_sse(httplib::DataSink& sink, json chunk, const TurnResult& r) {
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(r);
  add_loop_stats(chunk, r);
  write_sse(sink, dump(chunk));
}

// A failure after the stream has started (the status is already sent):
// OpenAI's error object as one more event.
void write_error_sse(httplib::DataSink& sink, const std::exception& e) {
  LOG_WARN("generation failed: " << e.what());
  write_sse(sink, dump(json{{"error",
                             {{"message", scrub_private_paths(e.what())}, {"type", "api_error"}, {"param", nullptr}, {"code", nullptr}}}}));
}

void handle_chat_completions(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, "ChatCompletionRequest");
  FieldReader f(body, "ChatCompletionRequest");
  const json* messages = f.array("messages");
  if (!messages || messages->empty()) throw HttpError(400, "[] is too short - 'messages'");
  InferenceRequest ir;
  ir.chat = true;
  ir.messages = parse_openai_messages(*messages);
  const bool stream = f.boolean("stream").value_or(false);
  const bool usage = include_usage(f);
  auto model = f.string("model");
  ir.entry = resolve_model(ctx, model);
  ir.model_name = *model;
  read_sampling(f, ir.options, ir.entry.defaults.parameters);
  apply_diffusion_fields(body, ir.options.turn);
  apply_loop_fields(body, ir.options);
  apply_alias_prompt_defaults(ir);
  ir.tools = parse_tool_request(f.raw("tools"), f.raw("tool_choice"), f.raw("parallel_tool_calls"));
  ir.think = parse_openai_reasoning(f.raw("reasoning_effort"), f.raw("reasoning"));
  ir.format = pick_output_format(openai_response_format(f.raw("response_format")), raw_grammar(f.raw("grammar")));
  ir.options.turn.top_logprobs = parse_logprobs_request(f);
  const bool logprobs = ir.options.turn.top_logprobs >= 0;
  const int64_t n_choices = f.integer("n").value_or(1);
  if (n_choices < 1 || n_choices > kMaxChoices)
    throw HttpError(400, "n must be between 1 and " + std::to_string(kMaxChoices) + " (got " + std::to_string(n_choices) + ")");
  if (n_choices > 1 && stream) throw HttpError(400, "n > 1 is not supported with stream: true");

  auto turn = start_turn(ctx, ir, start);
  const std::string id = random_id("chatcmpl-");
  const int64_t created = unix_now();
  const std::string name = ir.model_name;
  auto base = [id, created, name](const char* object) {
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", name}, {"system_fingerprint", "fp_flatline"}};
  };
  if (!stream) {
    json choices = json::array();
    auto one_choice = [&](std::shared_ptr<ActiveTurn> t) {
      TurnResult r = finish_turn(ctx, *t);
      const ReplyParts parts = visible_parts(*t, ReplySplitter::split(t->reply, r.generation.text), 0);
      choices.push_back(json{{"index", choices.size()},
                             {"message", completion_message(parts)},
                             {"logprobs", logprobs ? json{{"content", take_logprobs(*t)}} : json(nullptr)},
                             {"finish_reason", parts.calls.empty() ? finish_reason_of(r) : "tool_calls"}});
      return r;  // `t` ends here, giving the model turn back before the next choice takes it
    };
    const TurnResult r = one_choice(std::move(turn));
    // Further choices: the same prompt (its state comes from the cache) sampled
    // again, with seed + i when a seed was given.
    int64_t completion_tokens = r.generation.eval_count;
    for (int64_t i = 1; i < n_choices; ++i) {
      InferenceRequest again = ir;
      if (again.options.turn.sampling.seed >= 0) again.options.turn.sampling.seed += i;
      completion_tokens += one_choice(start_turn(ctx, again, start)).generation.eval_count;
    }
    json out = base("chat.completion");
    out["choices"] = std::move(choices);
    out["usage"] = usage_json(r);
    out["usage"]["completion_tokens"] = completion_tokens;
    out["usage"]["total_tokens"] = r.generation.prompt_tokens + completion_tokens;
    add_loop_stats(out, r);
    write_json(res, out);
    return;
  }
  stream_response(res, "text/event-stream", std::move(turn), [&ctx, base, usage, logprobs](ActiveTurn& t, httplib::DataSink& sink) {
    bool first = true;
    // Each chunk carries the log-probabilities of the tokens generated since the one before.
    auto chunk = [&](json delta, json finish_reason) {
      json c = base("chat.completion.chunk");
      json choice = {{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish_reason}};
      if (logprobs) choice["logprobs"] = json{{"content", take_logprobs(t)}};
      c["choices"] = json::array({std::move(choice)});
      return c;
    };
    auto content_delta = [&](std::string_view text) {
      json delta = {{"content", std::string(text)}};
      if (first) delta["role"] = "assistant";
      first = false;
      return delta;
    };
    // Reasoning, answer and whole calls (one delta per call, with its
    // index, id, name and complete arguments) as the splitter releases them.
    ReplySplitter splitter(t.reply);
    size_t calls_shown = 0;
    auto write_parts = [&](ReplyParts parts) {
      parts = visible_parts(t, std::move(parts), calls_shown);
      if (!parts.thinking.empty()) {
        json delta = {{"reasoning_content", parts.thinking}};
        if (first) delta["role"] = "assistant";
        first = false;
        write_sse(sink, dump(chunk(std::move(delta), nullptr)));
      }
      if (!parts.content.empty()) write_sse(sink, dump(chunk(content_delta(parts.content), nullptr)));
      if (!parts.calls.empty()) {
        json delta = {{"tool_calls", openai_tool_calls(parts.calls, calls_shown, /*with_index=*/true)}};
        if (first) {
          delta["role"] = "assistant";
          delta["content"] = nullptr;
        }
        first = false;
        calls_shown += parts.calls.size();
        write_sse(sink, dump(chunk(std::move(delta), nullptr)));
      }
      return sink.is_writable();
    };
    stream_canvas(t, [&](json canvas) {
      json c = chunk(json::object(), nullptr);
      c.update(canvas);
      write_sse(sink, dump(c));
      return sink.is_writable();
    });
    try {
      TurnResult r = finish_turn(
          ctx, t,
          [&](std::string_view piece) { return write_parts(splitter.push(piece)); });
      if (r.generation.done_reason == DoneReason::Cancelled) return;
      write_parts(splitter.finish());
      if (first) write_sse(sink, dump(chunk(content_delta(""), nullptr)));  // an empty reply still opens with the role
      write_sse(sink, dump(chunk(json::object(), calls_shown > 0 ? "tool_calls" : finish_reason_of(r))));
      if (usage) write_usage_sse(sink, base("chat.completion.chunk"), r);
    } catch (const std::exception& e) {
      write_error_sse(sink, e);
    }
    write_sse(sink, "[DONE]");
  });
}

void handle_completions(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, "CompletionRequest");
  FieldReader f(body, "CompletionRequest");
  InferenceRequest ir;
  ir.chat = false;
  ir.prompt = f.string("prompt").value_or("");
  const bool stream = f.boolean("stream").value_or(false);
  const bool usage = include_usage(f);
  auto model = f.string("model");
  ir.entry = resolve_model(ctx, model);
  ir.model_name = *model;
  read_sampling(f, ir.options, ir.entry.defaults.parameters);
  apply_diffusion_fields(body, ir.options.turn);
  apply_loop_fields(body, ir.options);
  if (!f.string("suffix").value_or("").empty()) throw HttpError(400, "\"" + ir.model_name + "\" does not support insert");
  if (ir.prompt.empty()) throw HttpError(400, "prompt is required");
  ir.format = pick_output_format(openai_response_format(f.raw("response_format")), raw_grammar(f.raw("grammar")));

  auto turn = start_turn(ctx, ir, start);
  const std::string id = random_id("cmpl-");
  const int64_t created = unix_now();
  const std::string name = ir.model_name;
  auto base = [id, created, name]() {
    return json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", name}, {"system_fingerprint", "fp_flatline"}};
  };
  auto choice = [](std::string_view text, json finish_reason) {
    return json::array({json{{"text", std::string(text)}, {"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}}});
  };
  if (!stream) {
    TurnResult r = finish_turn(ctx, *turn);
    json out = base();
    out["choices"] = choice(r.generation.text, finish_reason_of(r));
    out["usage"] = usage_json(r);
    add_loop_stats(out, r);
    write_json(res, out);
    return;
  }
  stream_response(res, "text/event-stream", std::move(turn), [&ctx, base, choice, usage](ActiveTurn& t, httplib::DataSink& sink) {
    stream_canvas(t, [&](json canvas) {
      json c = base();
      c["choices"] = choice("", nullptr);
      c.update(canvas);
      write_sse(sink, dump(c));
      return sink.is_writable();
    });
    try {
      TurnResult r = finish_turn(
          ctx, t,
          [&](std::string_view piece) {
            json c = base();
            c["choices"] = choice(piece, nullptr);
            write_sse(sink, dump(c));
            return sink.is_writable();
          });
      if (r.generation.done_reason == DoneReason::Cancelled) return;
      json last = base();
      last["choices"] = choice("", finish_reason_of(r));
      write_sse(sink, dump(last));
      if (usage) write_usage_sse(sink, base(), r);
    } catch (const std::exception& e) {
      write_error_sse(sink, e);
    }
    write_sse(sink, "[DONE]");
  });
}

json model_object(const CatalogEntry& e) {
  return json{{"id", ModelCatalog::display_name(e.name)},
              {"object", "model"},
              {"created", e.modified_unix_ns / 1000000000},
              {"owned_by", "library"}};
}

}  // namespace

void register_openai_routes(Router& router, ServerContext& ctx) {
  using Handler = void (*)(ServerContext&, const std::string&, httplib::Response&);
  auto openai = [&ctx](Handler fn) {
    return [&ctx, fn](const httplib::Request&, const std::string& body, httplib::Response& res) {
      guarded(res, write_openai_error, [&] { fn(ctx, body, res); });
    };
  };
  router.post("/v1/chat/completions", openai(handle_chat_completions));
  router.post("/v1/completions", openai(handle_completions));
  router.get("/v1/models", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_openai_error, [&] {
      json data = json::array();
      for (const CatalogEntry& e : ctx.models->catalog().list()) data.push_back(model_object(e));
      write_json(res, json{{"object", "list"}, {"data", data}});
    });
  });
  router.get(
      R"(/v1/models/(.+))",
      [&ctx](const httplib::Request& req, httplib::Response& res) {
        guarded(res, write_openai_error, [&] {
          const std::string name = req.matches[1];
          auto entry = ctx.models->catalog().find(name);
          if (!entry) throw HttpError(404, "model '" + name + "' not found");
          json m = model_object(*entry);
          m["id"] = name;
          write_json(res, m);
        });
      },
      "/v1/models/{model}");
}

}  // namespace flatline::server
