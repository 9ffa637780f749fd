// Ollama's native API: /api/chat, /api/generate, /api/tags, /api/show,
// /api/ps, /api/version and GET /. Field names, defaults and error texts
// follow Ollama (api/types.go, server/routes.go); docs/SERVER.md lists where
// flatline differs.
#include <climits>
#include <ctime>
#include <filesystem>

#include "gguf/gguf.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

namespace {

std::string done_reason_of(const TurnResult& r) {
  return r.generation.done_reason == DoneReason::Length ? "length" : "stop";
}

void add_metrics(json& out, const ActiveTurn& turn, const TurnResult& r) {
  // What is left of the log-probabilities (all of them without streaming).
  if (turn.turn_options.top_logprobs >= 0) out["logprobs"] = take_logprobs(turn);
  const GenerateResult& g = r.generation;
  out["total_duration"] = steady_now_ns() - turn.start_ns;
  out["load_duration"] = turn.load_ns;
  out["prompt_eval_count"] = g.prompt_eval_count;
  out["prompt_eval_duration"] = g.prompt_eval_ns;
  out["eval_count"] = g.eval_count;
  out["eval_duration"] = g.eval_ns;
  if (g.diffusion_steps > 0) {  // flatline's own: what a diffusion reply cost
    out["diffusion_steps"] = g.diffusion_steps;
    out["diffusion_full_passes"] = g.diffusion_full_passes;
  }
  add_loop_stats(out, r);
}

// The assistant message of a reply (or of one streamed piece of it):
// reasoning as "thinking", calls as "tool_calls" (numbered from
// `first_call`), both only when there are some.
json chat_message(const ReplyParts& parts, size_t first_call = 0) {
  json m{{"role", "assistant"}, {"content", parts.content}};
  if (!parts.thinking.empty()) m["thinking"] = parts.thinking;
  if (!parts.calls.empty()) m["tool_calls"] = ollama_tool_calls(parts.calls, first_call);
  return m;
}

json chat_chunk(const std::string& model, const ReplyParts& parts, bool done, size_t first_call = 0) {
  return json{{"model", model}, {"created_at", rfc3339_now()}, {"message", chat_message(parts, first_call)}, {"done", done}};
}

json generate_chunk(const std::string& model, const ReplyParts& parts, bool done) {
  json out{{"model", model}, {"created_at", rfc3339_now()}, {"response", parts.content}};
  if (!parts.thinking.empty()) out["thinking"] = parts.thinking;
  out["done"] = done;
  return out;
}

json details_json(const ModelSummary& s) {
  return json{{"parent_model", ""},
              {"format", "gguf"},
              {"family", s.architecture},
              {"families", json::array({s.architecture})},
              {"parameter_size", s.parameter_size},
              {"quantization_level", s.quantization}};
}

std::string rfc3339_from_unix_ns(int64_t ns) {
  int64_t secs = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) frac += 1000000000, --secs;
  return rfc3339_unix(secs, frac);
}

InferenceRequest common_request(ServerContext& ctx, const FieldReader& f) {
  InferenceRequest ir;
  auto model = f.string("model");
  ir.keep_alive = parse_keep_alive(f.raw("keep_alive"));
  ir.entry = resolve_model(ctx, model);
  ir.model_name = *model;
  // An alias's PARAMETERs are the defaults; the request's options win.
  ir.options.turn = ollama_default_options();
  apply_options(ir.entry.defaults.parameters, ir.options);
  if (const json* o = f.raw("options")) apply_options(*o, ir.options);
  // think:true on a model without reasoning is refused once its template is known (start_turn).
  ir.think = parse_ollama_think(f.raw("think"));
  ir.refuse_unsupported_thinking = true;
  ir.options.turn.top_logprobs = parse_logprobs_request(f);
  ir.format = pick_output_format(ollama_format(f.raw("format")), raw_grammar(f.raw("grammar")));
  return ir;
}

bool wants_unload(const InferenceRequest& ir) { return ir.keep_alive && ir.keep_alive->ns == 0; }

// Streams NDJSON lines; a failure after the first byte becomes a last
// {"error": ...} line, as Ollama's streamResponse does.
void stream_ndjson(httplib::Response& res, ServerContext& ctx, std::shared_ptr<ActiveTurn> turn,
                   std::function<json(const ReplyParts&, size_t first_call)> chunk,
                   std::function<json(const ActiveTurn&, const TurnResult&)> last) {
  stream_response(res, "application/x-ndjson", std::move(turn),
                  [&ctx, chunk, last](ActiveTurn& t, httplib::DataSink& sink) {
                    auto write_line = [&](const json& j) {
                      std::string line = dump(j) + "\n";
                      return sink.write(line.data(), line.size());
                    };
                    stream_canvas(t, [&](json canvas) {
                      json line = chunk(ReplyParts{}, 0);
                      line.update(canvas);
                      return write_line(line);
                    });
                    // Reasoning and answer stream as they come; a tool call
                    // goes out whole, in one line, once it is complete.
                    ReplySplitter splitter(t.reply);
                    size_t calls_shown = 0;
                    auto write_parts = [&](ReplyParts parts) {
                      parts = visible_parts(t, std::move(parts), calls_shown);
                      if (parts.empty()) return true;
                      const size_t first = calls_shown;
                      calls_shown += parts.calls.size();
                      json line = chunk(parts, first);
                      if (t.turn_options.top_logprobs >= 0) line["logprobs"] = take_logprobs(t);
                      return write_line(line);
                    };
                    try {
                      TurnResult r = finish_turn(ctx, t, [&](std::string_view piece) { return write_parts(splitter.push(piece)); });
                      if (r.generation.done_reason != DoneReason::Cancelled) write_parts(splitter.finish());
                      if (r.generation.done_reason == DoneReason::Cancelled) {
                        LOG_INFO("client went away; generation stopped after " << r.generation.eval_count << " tokens");
                        return;
                      }
                      write_line(last(t, r));
                    } catch (const std::exception& e) {
                      LOG_WARN("generation failed: " << e.what());
                      write_line(json{{"error", scrub_private_paths(e.what())}});
                    }
                  });
}

void handle_chat(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, "ChatRequest");
  FieldReader f(body, "ChatRequest");
  const bool stream = f.boolean("stream").value_or(true);
  std::vector<ChatMessage> messages = parse_ollama_messages(f.array("messages"));
  InferenceRequest ir = common_request(ctx, f);
  ir.chat = true;
  // tool_choice and parallel_tool_calls are OpenAI's; /api/chat takes them too (Ollama has neither).
  ir.tools = parse_tool_request(f.array("tools"), f.raw("tool_choice"), f.raw("parallel_tool_calls"));
  ir.messages = std::move(messages);
  if (!ir.messages.empty()) apply_alias_prompt_defaults(ir);
  ir.truncate = f.boolean("truncate");
  const std::string model = ir.model_name;

  if (ir.messages.empty()) {
    json out = chat_chunk(model, ReplyParts{}, true);
    if (wants_unload(ir)) {
      ctx.models->unload(ir.entry);
      out["done_reason"] = "unload";
    } else {
      acquire_model(ctx, ir);  // loads; the lease ends right away
      out["done_reason"] = "load";
    }
    write_json(res, out);
    return;
  }

  auto turn = start_turn(ctx, ir, start);
  auto last = [model](const ActiveTurn& t, const TurnResult& r) {
    json out = chat_chunk(model, ReplyParts{}, true);
    out["done_reason"] = done_reason_of(r);
    add_metrics(out, t, r);
    return out;
  };
  if (!stream) {
    TurnResult r = finish_turn(ctx, *turn);
    json out = last(*turn, r);
    out["message"] = chat_message(visible_parts(*turn, ReplySplitter::split(turn->reply, r.generation.text), 0));
    write_json(res, out);
    return;
  }
  stream_ndjson(
      res, ctx, std::move(turn),
      [model](const ReplyParts& parts, size_t first_call) { return chat_chunk(model, parts, false, first_call); }, last);
}

void handle_generate(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, "GenerateRequest");
  FieldReader f(body, "GenerateRequest");
  const bool stream = f.boolean("stream").value_or(true);
  const bool raw = f.boolean("raw").value_or(false);
  std::string prompt = f.string("prompt").value_or("");
  std::string system = f.string("system").value_or("");
  std::string tmpl = f.string("template").value_or("");
  std::string suffix = f.string("suffix").value_or("");
  std::vector<int32_t> context;
  if (const json* c = f.array("context")) {
    for (const auto& id : *c) {
      if (!id.is_number_integer()) f.type_error("context", id, "int");
      // Token ids are int32 in the model; a larger number is no id at all
      // (and must not wrap around to one).
      const bool fits = id.is_number_unsigned() ? id.get<uint64_t>() <= INT32_MAX
                                                : id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX;
      if (!fits)
        throw HttpError(400, "context[" + std::to_string(context.size()) + "]: " + id.dump() +
                                 " is not a token id (ids are between 0 and the vocabulary size - 1)");
      context.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  if (const json* images = f.array("images"); images && !images->empty())
    throw HttpError(400, "flatline does not support images");
  InferenceRequest ir = common_request(ctx, f);
  const std::string model = ir.model_name;
  if (!suffix.empty()) throw HttpError(400, "\"" + model + "\" does not support insert");
  if (raw && (!tmpl.empty() || !system.empty() || !context.empty()))
    throw HttpError(400, "raw mode does not support template, system, or context");
  if (!tmpl.empty()) LOG_INFO("ignoring \"template\": flatline renders prompts with the model's own chat format");

  if (prompt.empty()) {
    json out = generate_chunk(model, ReplyParts{}, true);
    if (wants_unload(ir)) {
      ctx.models->unload(ir.entry);
      out["done_reason"] = "unload";
    } else {
      acquire_model(ctx, ir);
      out["done_reason"] = "load";
    }
    write_json(res, out);
    return;
  }

  ir.chat = false;
  ir.raw = raw;
  ir.prompt = std::move(prompt);
  ir.system = std::move(system);
  apply_alias_prompt_defaults(ir);
  ir.context = std::move(context);
  auto turn = start_turn(ctx, ir, start);
  auto last = [model, raw](const ActiveTurn& t, const TurnResult& r) {
    json out = generate_chunk(model, ReplyParts{}, true);
    out["done_reason"] = done_reason_of(r);
    if (!raw) out["context"] = r.context;
    add_metrics(out, t, r);
    return out;
  };
  if (!stream) {
    TurnResult r = finish_turn(ctx, *turn);
    json out = last(*turn, r);
    const ReplyParts parts = visible_parts(*turn, ReplySplitter::split(turn->reply, r.generation.text), 0);
    out["response"] = parts.content;
    if (!parts.thinking.empty()) out["thinking"] = parts.thinking;
    write_json(res, out);
    return;
  }
  stream_ndjson(res, ctx, std::move(turn),
                [model](const ReplyParts& parts, size_t) { return generate_chunk(model, parts, false); }, last);
}

void handle_tags(ServerContext& ctx, httplib::Response& res) {
  json models = json::array();
  for (const CatalogEntry& e : ctx.models->catalog().list()) {
    const std::string name = ModelCatalog::display_name(e.name);
    models.push_back(json{{"name", name},
                          {"model", name},
                          {"modified_at", rfc3339_from_unix_ns(e.modified_unix_ns)},
                          {"size", e.size},
                          {"digest", e.summary.digest},
                          {"details", details_json(e.summary)}});
  }
  write_json(res, json{{"models", models}});
}

// Not in Ollama: what the conversation-state cache holds (shared KV pages
// counted once), for operators and tests; part of /api/ps.
json state_cache_json(ServerContext& ctx) {
  const StateCacheStats c = ctx.cache->stats();
  return json{{"entries", c.entries},
              {"boundary_entries", c.boundary_entries},
              {"bytes", c.bytes},
              {"fixed_bytes", c.fixed_bytes},
              {"kv_bytes", c.kv_bytes},
              {"kv_shared_bytes", c.kv_shared_bytes},
              {"kv_unshared_bytes_equivalent", c.kv_unshared_bytes_equivalent},
              {"peak_bytes", c.peak_bytes},
              {"disk_entries", c.disk_entries},
              {"disk_bytes", c.disk_bytes}};
}

// Arrays /api/show returns with "verbose": at most this many elements (the
// largest vocabularies have 262,144 tokens) and, for strings, this many
// bytes; longer ones are returned empty and listed in
// "flatline_omitted_arrays" with their length, so one hostile metadata array
// cannot make a response of gigabytes.
constexpr uint64_t kShowMaxArrayItems = 262144;
constexpr uint64_t kShowMaxArrayStringBytes = 8u << 20;
// Without "verbose", arrays up to this length are returned (Ollama's rule).
constexpr uint64_t kShowShortArray = 5;

bool array_too_large(const gguf::Value& v) {
  if (v.array_size() > kShowMaxArrayItems) return true;
  if (v.array_type() != gguf::ValueType::String) return false;
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < v.array_size() && bytes <= kShowMaxArrayStringBytes; ++i) bytes += v.string_at(i).size();
  return bytes > kShowMaxArrayStringBytes;
}

json metadata_value(const gguf::Value& v, bool verbose) {
  using gguf::ValueType;
  if (v.is_array()) {
    json arr = json::array();
    const uint64_t n = v.array_size();
    if (!verbose && n > kShowShortArray) return arr;
    for (uint64_t i = 0; i < n; ++i) {
      switch (v.array_type()) {
        case ValueType::String: arr.push_back(std::string(v.string_at(i))); break;
        case ValueType::Float32:
        case ValueType::Float64: arr.push_back(v.float_at(i)); break;
        case ValueType::Bool: arr.push_back(v.int_at(i) != 0); break;
        case ValueType::Array: arr.push_back(nullptr); break;
        case ValueType::UInt64: arr.push_back(static_cast<uint64_t>(v.int_at(i) >= 0 ? v.int_at(i) : 0)); break;
        default: arr.push_back(v.int_at(i)); break;
      }
    }
    return arr;
  }
  switch (v.type()) {
    case ValueType::String: return std::string(v.as_string());
    case ValueType::Bool: return v.as_bool();
    case ValueType::Float32:
    case ValueType::Float64: return v.as_float();
    case ValueType::UInt64: return v.as_uint();
    default: return v.as_int();
  }
}

// Ollama's rule: "tools" when the template renders tools, "thinking" when
// it has reasoning (<think> or enable_thinking); for generative models only.
// (Every model takes `tools` through the generic prompt; these say the
// model was trained for them.)
json capabilities_with_template(json capabilities, const ChatTemplate& tmpl) {
  bool generative = false;
  for (const auto& c : capabilities) generative = generative || c == "completion";
  if (!generative) return capabilities;
  if (tmpl.mentions_tools()) capabilities.push_back("tools");
  if (tmpl.supports_thinking()) capabilities.push_back("thinking");
  return capabilities;
}

void handle_show(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "ShowRequest");
  FieldReader f(body, "ShowRequest");
  std::string name = f.string("model").value_or("");
  if (name.empty()) name = f.string("name").value_or("");
  if (name.empty()) throw HttpError(400, "model is required");
  const bool verbose = f.boolean("verbose").value_or(false);
  auto entry = ctx.models->catalog().find(name);
  if (!entry) throw HttpError(404, "model '" + name + "' not found");

  gguf::File file = gguf::File::open(entry->path);
  json info = json::object();
  json omitted = json::object();
  for (const auto& [key, value] : file.metadata()) {
    if (verbose && value.is_array() && array_too_large(value)) {
      info[key] = json::array();
      omitted[key] = value.array_size();
      continue;
    }
    info[key] = metadata_value(value, verbose);
  }
  info["general.parameter_count"] = entry->summary.n_params;
  const ModelDefaults& d = entry->defaults;
  const ChatTemplate tmpl = d.template_text ? ChatTemplate::from_gguf(file, *d.template_text) : ChatTemplate::from_gguf(file);
  // An alias's PARAMETERs first (as `PARAMETER name value` lines), then the
  // template's stop strings.
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& [key, value] : d.parameters.items()) {
    if (value.is_array())
      for (const auto& v : value) params.emplace_back(key, v.dump());
    else
      params.emplace_back(key, value.dump());
  }
  for (const std::string& stop : tmpl.stop_strings()) params.emplace_back("stop", json(stop).dump());
  std::string parameters;
  for (const auto& [key, value] : params) parameters += key + " " + value + "\n";
  std::string chat_template =
      d.template_text ? *d.template_text : file.get_string("tokenizer.chat_template", std::string(tmpl.name()));
  // The file name only: where the models directory is on this machine is
  // not the client's business.
  const std::string file_name = std::filesystem::path(entry->path).filename().string();
  std::string modelfile = "# Modelfile generated by flatline\nFROM " + file_name + "\nTEMPLATE " +
                          json(chat_template).dump() + "\n";
  if (d.system) modelfile += "SYSTEM " + json(*d.system).dump() + "\n";
  for (const auto& [key, value] : params) modelfile += "PARAMETER " + key + " " + value + "\n";
  for (const ChatMessage& m : d.messages) modelfile += "MESSAGE " + m.role + " " + json(m.content).dump() + "\n";
  std::string license;
  for (const std::string& l : d.licenses) license += (license.empty() ? "" : "\n") + l;
  json out{{"license", license},
           {"modelfile", modelfile},
           {"parameters", parameters},
           {"template", chat_template},
           {"details", details_json(entry->summary)},
           {"model_info", info},
           {"capabilities", capabilities_with_template(model_capabilities(file), tmpl)},
           {"modified_at", rfc3339_from_unix_ns(entry->modified_unix_ns)}};
  if (verbose) {
    json tensors = json::array();
    for (const auto& t : file.tensors())
      tensors.push_back(json{{"name", t.name}, {"type", dtype_name(t.type)}, {"shape", t.dims}});
    out["tensors"] = std::move(tensors);
  }
  if (!omitted.empty()) out["flatline_omitted_arrays"] = std::move(omitted);
  if (d.system) out["system"] = *d.system;
  write_json(res, out);
}

void handle_ps(ServerContext& ctx, httplib::Response& res) {
  json models = json::array();
  for (const ResidentInfo& m : ctx.models->resident()) {
    const std::string name = ModelCatalog::display_name(m.entry.name);
    // "Forever" is shown as Go prints now + MaxInt64 ns (about 292 years
    // ahead), computed in seconds: in nanoseconds since 1970 it overflows.
    const int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const std::string expires =
        m.forever ? rfc3339_unix(now_s + INT64_MAX / 1000000000, INT64_MAX % 1000000000) : rfc3339(m.expires_at);
    models.push_back(json{{"name", name},
                          {"model", name},
                          {"size", m.size},
                          {"digest", m.entry.summary.digest},
                          {"details", details_json(m.entry.summary)},
                          {"expires_at", expires},
                          {"size_vram", 0},
                          {"context_length", m.n_ctx},
                          // Not in Ollama: one conversation's state, split into
                          // its fixed (recurrent) part and its KV part.
                          {"flatline_state",
                           {{"fixed_bytes", m.state_fixed_bytes},
                            {"kv_bytes_per_token", m.state_kv_bytes_per_token},
                            {"kv_bytes", m.state_bytes > m.state_fixed_bytes ? m.state_bytes - m.state_fixed_bytes : 0},
                            {"bytes", m.state_bytes}}}});
  }
  write_json(res, json{{"models", models}, {"flatline_state_cache", state_cache_json(ctx)}});
}

// GET / for a browser (Accept: text/html): the chat page (web_routes.cpp).
void home_page(const httplib::Request& req, httplib::Response& res) { serve_chat_page(req, res); }

}  // namespace

// The version of Ollama's API flatline implements (FACTS.md: Ollama's tree
// at v0.33.0-rc2, whose last release is 0.32.15). Clients compare it to
// enable features; flatline's own version is in "flatline_version" and the
// Server header.
const char* const kOllamaApiVersion = "0.32.15";

void register_ollama_routes(Router& router, ServerContext& ctx) {
  using Handler = void (*)(ServerContext&, const std::string&, httplib::Response&);
  auto ollama = [&ctx](Handler fn) {
    return [&ctx, fn](const httplib::Request&, const std::string& body, httplib::Response& res) {
      guarded(res, write_ollama_error, [&] { fn(ctx, body, res); });
    };
  };
  // Clients compare the literal banner ("Ollama is running"), so it is
  // Ollama's; the Server header says it is flatline.
  router.get("/", [](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Accept").find("text/html") != std::string::npos) return home_page(req, res);
    res.set_content("Ollama is running", "text/plain; charset=utf-8");
  });
  router.get("/api/version", [](const httplib::Request&, httplib::Response& res) {
    write_json(res, json{{"version", kOllamaApiVersion}, {"flatline_version", FLATLINE_VERSION}});
  });
  router.post("/api/chat", ollama(handle_chat));
  router.post("/api/generate", ollama(handle_generate));
  router.post("/api/show", ollama(handle_show));
  router.get("/api/tags", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_ollama_error, [&] { handle_tags(ctx, res); });
  });
  router.get("/api/ps", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_ollama_error, [&] { handle_ps(ctx, res); });
  });
  // Embeddings: embed_routes.cpp.
  router.post("/api/push", [](const httplib::Request&, const std::string&, httplib::Response& res) {
    write_ollama_error(res, 501, "flatline does not implement /api/push (models are the .gguf files in the models directory)");
  });
}

}  // namespace flatline::server
