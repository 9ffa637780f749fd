// Anthropic's Messages API, as Ollama offers it: POST /v1/messages
// (system, messages with string or content-block content, max_tokens,
// temperature, top_p, top_k, stop_sequences, stream). Requests map onto the
// chat path of /api/chat, so a client that resends its history resumes the
// cached state as any other. docs/SERVER.md "Anthropic Messages".
#include <algorithm>

#include "server/response_store.h"
#include "server/routes.h"
#include "util/limits.h"
#include "util/log.h"

namespace flatline::server {

namespace {

constexpr const char* kStruct = "MessagesRequest";

// Text blocks are joined; earlier turns' thinking blocks are left out;
// images, documents and tool blocks are refused.
std::string block_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw HttpError(400, where + " must be a string or an array of content blocks, got " + go_json_kind(content));
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& block = content[j];
    const std::string at = where + "[" + std::to_string(j) + "]";
    if (!block.is_object() || !block.contains("type") || !block["type"].is_string())
      throw HttpError(400, at + " must be an object with a \"type\"");
    const std::string type = block["type"].get<std::string>();
    if (type == "thinking" || type == "redacted_thinking") continue;
    if (type == "image" || type == "document")
      throw HttpError(400, at + " is " + type + ": flatline does not support images or documents");
    if (type == "tool_use" || type == "tool_result")
      throw HttpError(400, at + " is " + type + ": flatline does not support tools");
    if (type != "text") throw HttpError(400, at + ".type \"" + type + "\" is not supported (text)");
    if (!block.contains("text") || !block["text"].is_string()) throw HttpError(400, at + ".text must be a string");
    text += block["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json* messages) {
  if (!messages || messages->empty()) throw HttpError(400, "messages: at least one message is required");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw HttpError(400, where + " must be an object, got " + go_json_kind(m));
    if (!m.contains("role") || !m["role"].is_string() || (m["role"] != "user" && m["role"] != "assistant"))
      throw HttpError(400, where + ".role must be \"user\" or \"assistant\"");
    if (!m.contains("content") || m["content"].is_null()) throw HttpError(400, where + ".content is required");
    out.push_back({m["role"].get<std::string>(), block_text(m["content"], where + ".content")});
  }
  return out;
}

void read_sampling(const FieldReader& f, ParsedOptions& o) {
  o.turn = ollama_default_options();
  SamplerParams& s = o.turn.sampling;
  s.temperature = static_cast<float>(f.number("temperature").value_or(1.0));
  s.top_p = static_cast<float>(f.number("top_p").value_or(1.0));
  if (auto k = f.integer("top_k")) {
    if (*k < 0 || *k > limits::kMaxTopK)
      throw HttpError(400, "top_k must be between 0 and " + std::to_string(limits::kMaxTopK) + " (got " +
                               std::to_string(*k) + ")");
    s.top_k = static_cast<int32_t>(*k);
  }
  check_sampling(s, "openai");
  auto max_tokens = f.integer("max_tokens");
  if (!max_tokens) throw HttpError(400, "max_tokens: Field required");
  if (*max_tokens < 1) throw HttpError(400, "max_tokens must be at least 1, got " + std::to_string(*max_tokens));
  o.turn.num_predict = checked_num_predict("max_tokens", *max_tokens);
  if (const json* stops = f.array("stop_sequences")) {
    for (const json& s2 : *stops) {
      if (!s2.is_string()) throw HttpError(400, std::string("stop_sequences must hold strings, got ") + go_json_kind(s2));
      if (!s2.get<std::string>().empty()) o.turn.stop.push_back(s2.get<std::string>());
    }
    o.turn.stop = checked_stop_strings("stop_sequences", std::move(o.turn.stop));
  } else if (f.raw("stop_sequences")) {
    throw HttpError(400, "stop_sequences must be an array of strings");
  }
}

InferenceRequest parse_request(ServerContext& ctx, const json& body) {
  FieldReader f(body, kStruct);
  InferenceRequest ir;
  ir.chat = true;
  auto model = f.string("model");
  ir.entry = resolve_model(ctx, model);
  ir.model_name = *model;
  if (const json* tools = f.array("tools"); tools && !tools->empty())
    throw HttpError(400, "\"" + ir.model_name + "\" does not support tools");
  read_sampling(f, ir.options);
  apply_loop_fields(body, ir.options);
  if (const json* system = f.raw("system")) {
    const std::string text = block_text(*system, "system");
    if (!text.empty()) ir.messages.push_back({"system", text});
  }
  std::vector<ChatMessage> messages = parse_messages(f.array("messages"));
  ir.messages.insert(ir.messages.end(), messages.begin(), messages.end());
  return ir;
}

// ---------------------------------------------------------------------------
// Responses

// stop_reason and stop_sequence: a request's stop sequence that ended the
// reply is reported as such; the model's end of turn (or a template stop
// string) is end_turn.
std::pair<const char*, json> stop_reason(const TurnResult& r, const std::vector<std::string>& stops) {
  if (r.generation.done_reason == DoneReason::Length) return {"max_tokens", nullptr};
  const std::string& hit = r.generation.stop_string;
  if (!hit.empty() && std::find(stops.begin(), stops.end(), hit) != stops.end()) return {"stop_sequence", hit};
  return {"end_turn", nullptr};
}

// Anthropic counts cache reads apart: input_tokens are the ones evaluated now.
json usage_json(int64_t evaluated, int64_t cached, int64_t output) {
  return json{{"input_tokens", evaluated},
              {"cache_creation_input_tokens", 0},
              {"cache_read_input_tokens", cached},
              {"output_tokens", output}};
}

json message_json(const std::string& id, const std::string& model, json content, json usage) {
  return json{{"id", id},           {"type", "message"}, {"role", "assistant"}, {"model", model},
              {"content", content}, {"stop_reason", nullptr}, {"stop_sequence", nullptr}, {"usage", usage}};
}

void write_event(httplib::DataSink& sink, const char* type, json data) {
  json event = {{"type", type}};
  event.update(data);
  const std::string text = std::string("event: ") + type + "\ndata: " + dump(event) + "\n\n";
  sink.write(text.data(), text.size());
}

void stream_message(ServerContext& ctx, const std::string& id, const std::vector<std::string>& stops, ActiveTurn& t,
                    httplib::DataSink& sink) {
  const json start_usage = usage_json(t.prepared.prompt_eval_count, t.prepared.cached_tokens, 0);
  write_event(sink, "message_start", {{"message", message_json(id, t.model_name, json::array(), start_usage)}});
  write_event(sink, "content_block_start", {{"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}});
  write_event(sink, "ping", json::object());
  try {
    TurnResult r = finish_turn(ctx, t, [&](std::string_view piece) {
      write_event(sink, "content_block_delta", {{"index", 0}, {"delta", {{"type", "text_delta"}, {"text", std::string(piece)}}}});
      return sink.is_writable();
    });
    if (r.generation.done_reason == DoneReason::Cancelled) return;
    write_event(sink, "content_block_stop", {{"index", 0}});
    auto [reason, sequence] = stop_reason(r, stops);
    write_event(sink, "message_delta",
                {{"delta", {{"stop_reason", reason}, {"stop_sequence", sequence}}},
                 {"usage", {{"output_tokens", r.generation.eval_count}}}});
    write_event(sink, "message_stop", json::object());
  } catch (const std::exception& e) {
    LOG_WARN("message failed: " << e.what());
    write_event(sink, "error", {{"error", {{"type", "api_error"}, {"message", scrub_private_paths(e.what())}}}});
  }
}

void handle_messages(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, kStruct);
  const bool stream = FieldReader(body, kStruct).boolean("stream").value_or(false);
  InferenceRequest ir = parse_request(ctx, body);
  const std::vector<std::string> stops = ir.options.turn.stop;
  auto turn = start_turn(ctx, ir, start);
  const std::string id = ResponseStore::new_id("msg_");
  if (stream) {
    stream_response(res, "text/event-stream", std::move(turn), [&ctx, id, stops](ActiveTurn& t, httplib::DataSink& sink) {
      stream_message(ctx, id, stops, t, sink);
    });
    return;
  }
  TurnResult r = finish_turn(ctx, *turn);
  json content = json::array({json{{"type", "text"}, {"text", r.generation.text}}});
  json out = message_json(id, ir.model_name, content,
                          usage_json(r.generation.prompt_eval_count,
                                     r.generation.prompt_tokens - r.generation.prompt_eval_count, r.generation.eval_count));
  auto [reason, sequence] = stop_reason(r, stops);
  out["stop_reason"] = reason;
  out["stop_sequence"] = sequence;
  add_loop_stats(out, r);
  write_json(res, out);
}

}  // namespace

bool is_anthropic_path(const std::string& path) { return path == "/v1/messages" || path.rfind("/v1/messages/", 0) == 0; }

void write_anthropic_error(httplib::Response& res, int status, const std::string& message) {
  const char* type = status == 400   ? "invalid_request_error"
                     : status == 401 ? "authentication_error"
                     : status == 403 ? "permission_error"
                     : status == 404 ? "not_found_error"
                     : status == 413 ? "request_too_large"
                     : status == 429 ? "rate_limit_error"
                     : status == 503 ? "overloaded_error"
                                     : "api_error";
  write_json(res, json{{"type", "error"}, {"error", {{"type", type}, {"message", scrub_private_paths(message)}}}},
             status);
}

void register_anthropic_routes(Router& router, ServerContext& ctx) {
  router.post("/v1/messages", [&ctx](const httplib::Request&, const std::string& body, httplib::Response& res) {
    guarded(res, write_anthropic_error, [&] { handle_messages(ctx, body, res); });
  });
}

}  // namespace flatline::server
