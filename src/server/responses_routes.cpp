// OpenAI's Responses API: POST /v1/responses, GET and DELETE
// /v1/responses/{id}. A request with previous_response_id continues a
// stored response: the server renders the stored conversation plus the new
// input, which begins with the text of the state cache's snapshot at the
// end of that response, so only the new tokens are evaluated (also after a
// restart with --state-dir, whose responses/ folder keeps the stored
// responses). docs/SERVER.md "Responses".
#include <chrono>

#include "server/response_store.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

namespace {

constexpr const char* kStruct = "ResponsesRequest";

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------
// Input items

// A message item's content: a string, or parts of type input_text /
// output_text (joined). Images, files and audio are refused.
std::string item_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw HttpError(400, where + ".content must be a string or an array of content parts, got " + go_json_kind(content));
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string at = where + ".content[" + std::to_string(j) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      throw HttpError(400, at + " must be an object with a \"type\"");
    const std::string type = part["type"].get<std::string>();
    if (type == "input_image" || type == "input_file" || type == "input_audio")
      throw HttpError(400, at + " is " + type + ": flatline does not support images, files or audio");
    if (type != "input_text" && type != "output_text" && type != "text")
      throw HttpError(400, at + ".type \"" + type + "\" is not supported (input_text or output_text)");
    if (!part.contains("text") || !part["text"].is_string()) throw HttpError(400, at + ".text must be a string");
    text += part["text"].get<std::string>();
  }
  return text;
}

ChatMessage message_item(const json& item, const std::string& where) {
  if (!item.contains("role") || !item["role"].is_string())
    throw HttpError(400, where + ".role must be one of user, assistant, system, developer");
  std::string role = item["role"].get<std::string>();
  if (role == "developer") role = "system";
  if (role != "user" && role != "assistant" && role != "system")
    throw HttpError(400, where + ".role \"" + role + "\" must be one of user, assistant, system, developer");
  if (!item.contains("content") || item["content"].is_null()) throw HttpError(400, where + ".content is required");
  return ChatMessage{role, item_text(item["content"], where)};
}

// `input`: a string (one user message) or a list of message items.
std::vector<ChatMessage> parse_input(const json* input) {
  if (!input) throw HttpError(400, "input is required (a string or a list of input items)");
  if (input->is_string()) {
    if (input->get<std::string>().empty()) throw HttpError(400, "input must not be empty");
    return {ChatMessage{"user", input->get<std::string>()}};
  }
  if (!input->is_array())
    throw HttpError(400, std::string("input must be a string or a list of input items, got ") + go_json_kind(*input));
  if (input->empty()) throw HttpError(400, "input must not be an empty list");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < input->size(); ++i) {
    const json& item = (*input)[i];
    const std::string where = "input[" + std::to_string(i) + "]";
    if (!item.is_object()) throw HttpError(400, where + " must be an object, got " + go_json_kind(item));
    const std::string type = item.contains("type") && item["type"].is_string() ? item["type"].get<std::string>() : "message";
    if (item.contains("type") && !item["type"].is_string()) throw HttpError(400, where + ".type must be a string");
    if (type == "item_reference")
      throw HttpError(400, where + " is an item_reference, which flatline does not resolve: continue a stored "
                               "response with previous_response_id instead");
    if (type != "message")
      throw HttpError(400, where + ".type \"" + type + "\" is not supported: flatline takes message items only "
                               "(no tool calls or reasoning items)");
    out.push_back(message_item(item, where));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The request

struct ResponsesCall {
  InferenceRequest ir;
  std::vector<ChatMessage> conversation;  // the previous one + this input (no instructions)
  bool store = true;
  bool stream = false;
  json echo;  // the request fields every response object repeats
};

std::optional<StoredResponse> previous_response(ServerContext& ctx, const FieldReader& f) {
  auto id = f.string("previous_response_id");
  if (!id) return std::nullopt;
  if (!ResponseStore::valid_id(*id))
    throw HttpError(400, "invalid previous_response_id '" + *id + "': expected an id that begins with 'resp_' "
                         "followed by 32 hex digits, as this server gives them");
  std::optional<StoredResponse> prev = ctx.responses->get(*id);
  if (!prev)
    throw HttpError(404, "previous response with id '" + *id + "' not found (never stored with \"store\": true, "
                         "deleted, or evicted beyond --max-responses)");
  return prev;
}

// `text.format`: the Responses form of response_format ({"type":
// "json_schema", "name", "schema", "strict"} at one level).
OutputFormat text_format(const FieldReader& f, json& echo) {
  echo["text"] = json{{"format", {{"type", "text"}}}};
  const json* text = f.object("text");
  if (!text || !text->contains("format") || (*text)["format"].is_null()) return {};
  const json& format = (*text)["format"];
  echo["text"]["format"] = format;
  if (!format.is_object()) throw HttpError(400, "text.format must be an object with a \"type\"");
  json as_chat = format;
  if (format.value("type", "") == "json_schema") {
    json inner = json::object();
    for (const char* key : {"name", "schema", "strict"})
      if (format.contains(key)) inner[key] = format[key];
    as_chat = json{{"type", "json_schema"}, {"json_schema", inner}};
  }
  return openai_response_format(&as_chat);
}

void read_sampling(const FieldReader& f, ResponsesCall& call) {
  ParsedOptions& o = call.ir.options;
  o.turn = ollama_default_options();
  SamplerParams& s = o.turn.sampling;
  const double temperature = f.number("temperature").value_or(1.0);
  const double top_p = f.number("top_p").value_or(1.0);
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p == 0.0 ? 1.0 : top_p);
  if (auto v = f.integer("seed")) s.seed = *v;
  check_sampling(s, "openai");
  call.echo["temperature"] = temperature;
  call.echo["top_p"] = top_p;
  call.echo["max_output_tokens"] = nullptr;
  if (auto v = f.integer("max_output_tokens")) {
    o.turn.num_predict = checked_num_predict("max_output_tokens", *v);
    call.echo["max_output_tokens"] = *v;
  }
}

void refuse_unsupported(const FieldReader& f, const std::string& model) {
  if (const json* tools = f.array("tools"); tools && !tools->empty())
    throw HttpError(400, "\"" + model + "\" does not support tools");
  if (f.boolean("background").value_or(false)) throw HttpError(400, "background responses are not supported");
  if (f.raw("conversation"))
    throw HttpError(400, "conversation objects are not supported: continue a response with previous_response_id");
  if (f.raw("prompt")) throw HttpError(400, "prompt templates are not supported: send input (and instructions)");
}

ResponsesCall parse_call(ServerContext& ctx, const json& body) {
  FieldReader f(body, kStruct);
  ResponsesCall call;
  std::optional<StoredResponse> prev = previous_response(ctx, f);
  std::vector<ChatMessage> input = parse_input(f.raw("input"));
  auto model = f.string("model");
  if (!model && prev) model = prev->model;
  call.ir.entry = resolve_model(ctx, model);
  call.ir.model_name = *model;
  refuse_unsupported(f, call.ir.model_name);
  call.store = f.boolean("store").value_or(true);
  call.stream = f.boolean("stream").value_or(false);
  read_sampling(f, call);
  apply_loop_fields(body, call.ir.options);
  if (auto truncation = f.string("truncation")) {
    if (*truncation != "auto" && *truncation != "disabled")
      throw HttpError(400, "truncation must be \"auto\" or \"disabled\", got \"" + *truncation + "\"");
    call.ir.truncate = *truncation == "auto";
    call.echo["truncation"] = *truncation;
  }
  call.ir.format = text_format(f, call.echo);
  if (prev) call.conversation = std::move(prev->conversation);
  call.conversation.insert(call.conversation.end(), input.begin(), input.end());

  auto instructions = f.string("instructions");
  call.ir.chat = true;
  if (instructions && !instructions->empty()) call.ir.messages.push_back({"system", *instructions});
  call.ir.messages.insert(call.ir.messages.end(), call.conversation.begin(), call.conversation.end());
  call.echo["instructions"] = instructions ? json(*instructions) : json(nullptr);
  call.echo["previous_response_id"] = prev ? json(prev->id) : json(nullptr);
  call.echo["store"] = call.store;
  const json* metadata = f.object("metadata");
  call.echo["metadata"] = metadata ? *metadata : json::object();
  call.echo["user"] = f.raw("user") ? *f.raw("user") : json(nullptr);
  return call;
}

// ---------------------------------------------------------------------------
// The response object

json usage_json(const TurnResult& r) {
  const int64_t input = r.generation.prompt_tokens;
  const int64_t output = r.generation.eval_count;
  return json{{"input_tokens", input},
              {"input_tokens_details", {{"cached_tokens", input - r.generation.prompt_eval_count}}},
              {"output_tokens", output},
              {"output_tokens_details", {{"reasoning_tokens", 0}}},
              {"total_tokens", input + output}};
}

json output_text_part(const std::string& text) {
  return json{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}};
}

json message_item_json(const std::string& id, const char* status, json content) {
  return json{{"id", id}, {"type", "message"}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
}

struct ResponseIds {
  std::string response = ResponseStore::new_id("resp_");
  std::string message = ResponseStore::new_id("msg_");
  int64_t created_at = unix_now();
};

json response_json(const ResponsesCall& call, const ResponseIds& ids, const char* status) {
  json out = {{"id", ids.response},
              {"object", "response"},
              {"created_at", ids.created_at},
              {"status", status},
              {"error", nullptr},
              {"incomplete_details", nullptr},
              {"instructions", call.echo["instructions"]},
              {"max_output_tokens", call.echo["max_output_tokens"]},
              {"model", call.ir.model_name},
              {"output", json::array()},
              {"parallel_tool_calls", true},
              {"previous_response_id", call.echo["previous_response_id"]},
              {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
              {"store", call.store},
              {"temperature", call.echo["temperature"]},
              {"text", call.echo["text"]},
              {"tool_choice", "auto"},
              {"tools", json::array()},
              {"top_p", call.echo["top_p"]},
              {"truncation", call.echo.value("truncation", "disabled")},
              {"usage", nullptr},
              {"user", call.echo["user"]},
              {"metadata", call.echo["metadata"]}};
  return out;
}

json finished_response(const ResponsesCall& call, const ResponseIds& ids, const TurnResult& r) {
  const bool cut = r.generation.done_reason == DoneReason::Length;
  json out = response_json(call, ids, cut ? "incomplete" : "completed");
  if (cut) out["incomplete_details"] = json{{"reason", "max_output_tokens"}};
  out["output"] = json::array({message_item_json(ids.message, cut ? "incomplete" : "completed",
                                                 json::array({output_text_part(r.generation.text)}))});
  out["usage"] = usage_json(r);
  add_loop_stats(out, r);
  return out;
}

// Stores the finished response (when asked) with the conversation it ended
// with: the next request continues from exactly this text.
void store_response(ServerContext& ctx, const ResponsesCall& call, const json& object, const TurnResult& r) {
  if (!call.store || r.generation.done_reason == DoneReason::Cancelled) return;
  StoredResponse stored;
  stored.id = object["id"];
  stored.model = call.ir.model_name;
  stored.conversation = call.conversation;
  stored.conversation.push_back({"assistant", r.generation.text});
  stored.object = object;
  try {
    ctx.responses->put(stored);
  } catch (const Error& e) {
    throw HttpError(500, std::string("could not store the response: ") + e.what());
  }
}

// ---------------------------------------------------------------------------
// Streaming: response.created, response.in_progress, output_item.added,
// content_part.added, output_text.delta..., output_text.done,
// content_part.done, output_item.done, then response.completed (or
// response.incomplete when max_output_tokens cut the reply; response.failed
// on an error).

class EventWriter {
 public:
  explicit EventWriter(httplib::DataSink& sink) : sink_(sink) {}
  bool emit(const char* type, json fields) {
    json event = {{"type", type}, {"sequence_number", sequence_++}};
    event.update(fields);
    const std::string text = std::string("event: ") + type + "\ndata: " + dump(event) + "\n\n";
    sink_.write(text.data(), text.size());
    return sink_.is_writable();
  }

 private:
  httplib::DataSink& sink_;
  int64_t sequence_ = 0;
};

void stream_reply(ServerContext& ctx, const ResponsesCall& call, const ResponseIds& ids, ActiveTurn& turn,
                  httplib::DataSink& sink) {
  EventWriter events(sink);
  const json position = {{"item_id", ids.message}, {"output_index", 0}, {"content_index", 0}};
  events.emit("response.created", {{"response", response_json(call, ids, "in_progress")}});
  events.emit("response.in_progress", {{"response", response_json(call, ids, "in_progress")}});
  events.emit("response.output_item.added",
              {{"output_index", 0}, {"item", message_item_json(ids.message, "in_progress", json::array())}});
  json part_added = position;
  part_added["part"] = output_text_part("");
  events.emit("response.content_part.added", part_added);
  try {
    TurnResult r = finish_turn(ctx, turn, [&](std::string_view piece) {
      json delta = position;
      delta["delta"] = std::string(piece);
      delta["logprobs"] = json::array();
      return events.emit("response.output_text.delta", delta);
    });
    if (r.generation.done_reason == DoneReason::Cancelled) return;
    const json done = finished_response(call, ids, r);
    store_response(ctx, call, done, r);
    json text_done = position;
    text_done["text"] = r.generation.text;
    text_done["logprobs"] = json::array();
    events.emit("response.output_text.done", text_done);
    json part_done = position;
    part_done["part"] = output_text_part(r.generation.text);
    events.emit("response.content_part.done", part_done);
    events.emit("response.output_item.done", {{"output_index", 0}, {"item", done["output"][0]}});
    events.emit(done["status"] == "completed" ? "response.completed" : "response.incomplete", {{"response", done}});
  } catch (const std::exception& e) {
    LOG_WARN("response failed: " << e.what());
    json failed = response_json(call, ids, "failed");
    failed["error"] = json{{"code", "server_error"}, {"message", scrub_private_paths(e.what())}};
    events.emit("response.failed", {{"response", failed}});
  }
}

void handle_create(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, kStruct);
  auto call = std::make_shared<ResponsesCall>(parse_call(ctx, body));
  auto turn = start_turn(ctx, call->ir, start);
  const ResponseIds ids;
  if (!call->stream) {
    TurnResult r = finish_turn(ctx, *turn);
    const json out = finished_response(*call, ids, r);
    store_response(ctx, *call, out, r);
    write_json(res, out);
    return;
  }
  stream_response(res, "text/event-stream", std::move(turn), [&ctx, call, ids](ActiveTurn& t, httplib::DataSink& sink) {
    stream_reply(ctx, *call, ids, t, sink);
  });
}

std::string checked_id(const std::string& id) {
  const std::string items = "/input_items";
  if (id.size() > items.size() && id.compare(id.size() - items.size(), items.size(), items) == 0)
    throw HttpError(501, "listing a response's input items is not supported: GET /v1/responses/{id} returns the "
                         "response");
  if (!ResponseStore::valid_id(id))
    throw HttpError(400, "invalid response id '" + id + "': expected 'resp_' followed by 32 hex digits");
  return id;
}

void handle_get(ServerContext& ctx, const std::string& id, httplib::Response& res) {
  std::optional<StoredResponse> r = ctx.responses->get(checked_id(id));
  if (!r) throw HttpError(404, "response with id '" + id + "' not found");
  write_json(res, r->object);
}

void handle_delete(ServerContext& ctx, const std::string& id, httplib::Response& res) {
  if (!ctx.responses->remove(checked_id(id))) throw HttpError(404, "response with id '" + id + "' not found");
  write_json(res, json{{"id", id}, {"object", "response"}, {"deleted", true}});
}

}  // namespace

void register_responses_routes(Router& router, ServerContext& ctx) {
  router.post("/v1/responses", [&ctx](const httplib::Request&, const std::string& body, httplib::Response& res) {
    guarded(res, write_openai_error, [&] { handle_create(ctx, body, res); });
  });
  router.get(
      R"(/v1/responses/(.+))",
      [&ctx](const httplib::Request& req, httplib::Response& res) {
        guarded(res, write_openai_error, [&] { handle_get(ctx, req.matches[1], res); });
      },
      "/v1/responses/{id}");
  router.del(
      R"(/v1/responses/(.+))",
      [&ctx](const httplib::Request& req, httplib::Response& res) {
        guarded(res, write_openai_error, [&] { handle_delete(ctx, req.matches[1], res); });
      },
      "/v1/responses/{id}");
}

}  // namespace flatline::server
