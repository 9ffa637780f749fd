#include "server/tool_request.h"

#include <random>

#include "runtime/json_schema.h"

namespace flatline::server {

ToolRequest parse_tool_request(const json* tools, const json* tool_choice, const json* parallel_tool_calls) {
  ToolRequest r;
  if (tools && !tools->is_null()) {
    try {
      r.tools = tool_specs_from_json(*tools);
    } catch (const Error& e) {
      throw HttpError(400, std::string("invalid tools: ") + e.what());
    }
    r.tools_json = *tools;
  }
  if (parallel_tool_calls && !parallel_tool_calls->is_null()) {
    if (!parallel_tool_calls->is_boolean())
      throw HttpError(400, "parallel_tool_calls must be true or false, got " + parallel_tool_calls->dump());
    r.parallel = parallel_tool_calls->get<bool>();
  }
  if (!tool_choice || tool_choice->is_null()) return r;
  const std::string expected =
      "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}, got ";
  if (tool_choice->is_string()) {
    const std::string c = tool_choice->get<std::string>();
    if (c == "auto") r.choice = ToolChoice::Auto;
    else if (c == "none") r.choice = ToolChoice::None;
    else if (c == "required") r.choice = ToolChoice::Required;
    else throw HttpError(400, expected + tool_choice->dump());
  } else if (tool_choice->is_object()) {
    const json* fn = tool_choice->contains("function") ? &(*tool_choice)["function"] : nullptr;
    if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
      throw HttpError(400, expected + tool_choice->dump());
    r.choice = ToolChoice::Named;
    r.named = (*fn)["name"].get<std::string>();
    bool known = false;
    for (const ToolSpec& t : r.tools) known = known || t.name == r.named;
    if (!known) throw HttpError(400, "tool_choice names the function \"" + r.named + "\", which is not in tools");
  } else {
    throw HttpError(400, expected + tool_choice->dump());
  }
  if ((r.choice == ToolChoice::Required) && r.tools.empty())
    throw HttpError(400, "tool_choice \"required\" needs tools");
  return r;
}

ThinkRequest parse_ollama_think(const json* think) {
  ThinkRequest t;
  if (!think || think->is_null()) return t;
  if (think->is_boolean()) {
    t.think = think->get<bool>();
    return t;
  }
  if (think->is_string()) {
    const std::string level = think->get<std::string>();
    if (level == "low" || level == "medium" || level == "high" || level == "max") {
      t.think = true;
      t.effort = level == "max" ? "high" : level;
      return t;
    }
    if (level == "true" || level == "false") {  // Ollama accepts the words too
      t.think = level == "true";
      return t;
    }
  }
  throw HttpError(400, "invalid think value: " + think->dump() + " (must be \"high\", \"medium\", \"low\", true, or false)");
}

ThinkRequest parse_openai_reasoning(const json* reasoning_effort, const json* reasoning) {
  const json* effort = reasoning_effort;
  if ((!effort || effort->is_null()) && reasoning && reasoning->is_object() && reasoning->contains("effort"))
    effort = &(*reasoning)["effort"];
  ThinkRequest t;
  if (!effort || effort->is_null()) return t;
  const std::string e = effort->is_string() ? effort->get<std::string>() : "";
  if (e == "none" || e == "minimal") {
    t.think = false;
  } else if (e == "low" || e == "medium" || e == "high") {
    t.think = true;
    t.effort = e;
  } else {
    throw HttpError(400, "reasoning_effort must be \"none\", \"minimal\", \"low\", \"medium\" or \"high\", got " +
                             effort->dump());
  }
  return t;
}

namespace {

// A history call, normalised to OpenAI's object form with the arguments as
// an object (what Jinja templates expect; the JSON string of OpenAI's API
// is parsed, and kept as a string only when it is not an object).
json history_call(const json& call, const std::string& at, bool arguments_are_string) {
  if (!call.is_object()) throw HttpError(400, at + " must be an object with a \"function\"");
  const json* fn = call.contains("function") ? &call["function"] : nullptr;
  if (!fn || !fn->is_object()) throw HttpError(400, at + ".function must be an object with a \"name\"");
  if (!fn->contains("name") || !(*fn)["name"].is_string())
    throw HttpError(400, at + ".function.name must be a string");
  json out = json::object();
  if (call.contains("id") && call["id"].is_string()) out["id"] = call["id"];
  out["type"] = "function";
  json function = {{"name", (*fn)["name"]}};
  const json args = fn->contains("arguments") ? (*fn)["arguments"] : json::object();
  if (args.is_string()) {
    json parsed = json::parse(args.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    function["arguments"] = parsed.is_object() ? parsed : args;
  } else if (args.is_object()) {
    function["arguments"] = args;
  } else if (args.is_null()) {
    function["arguments"] = json::object();
  } else {
    throw HttpError(400, at + ".function.arguments must be " +
                             std::string(arguments_are_string ? "a JSON string" : "an object") + ", got " + args.dump());
  }
  out["function"] = std::move(function);
  return out;
}

json history_calls(const json& calls, const std::string& at, bool arguments_are_string) {
  if (!calls.is_array()) throw HttpError(400, at + ".tool_calls must be a list, got " + calls.dump());
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i)
    out.push_back(history_call(calls[i], at + ".tool_calls[" + std::to_string(i) + "]", arguments_are_string));
  return out;
}

void set_extra(ChatMessage& m, const char* key, json value) {
  if (!m.extra.is_object()) m.extra = json::object();
  m.extra[key] = std::move(value);
}

void read_reasoning(const json& message, ChatMessage& m, const char* key) {
  auto it = message.find(key);
  if (it == message.end() || !it->is_string() || it->get<std::string>().empty()) return;
  // Templates read either name (Qwen 3: reasoning_content; others: thinking).
  set_extra(m, "reasoning_content", *it);
  set_extra(m, "thinking", *it);
}

}  // namespace

void read_ollama_message_tools(const json& message, ChatMessage& m, const std::string& at) {
  if (auto calls = message.find("tool_calls"); calls != message.end() && !calls->is_null())
    set_extra(m, "tool_calls", history_calls(*calls, at, /*arguments_are_string=*/false));
  if (auto name = message.find("tool_name"); name != message.end() && name->is_string()) {
    set_extra(m, "tool_name", *name);
    set_extra(m, "name", *name);
  }
  if (auto id = message.find("tool_call_id"); id != message.end() && id->is_string()) set_extra(m, "tool_call_id", *id);
  read_reasoning(message, m, "thinking");
}

void read_openai_message_tools(const json& message, ChatMessage& m, const std::string& at) {
  if (auto calls = message.find("tool_calls"); calls != message.end() && !calls->is_null())
    set_extra(m, "tool_calls", history_calls(*calls, at, /*arguments_are_string=*/true));
  if (auto id = message.find("tool_call_id"); id != message.end() && id->is_string()) set_extra(m, "tool_call_id", *id);
  if (auto name = message.find("name"); name != message.end() && name->is_string()) set_extra(m, "name", *name);
  read_reasoning(message, m, "reasoning_content");
}

json template_vars(const ToolRequest& tools, const ThinkRequest& think, const ChatTemplate& tmpl) {
  json vars = json::object();
  if (tools.active()) vars["tools"] = tools.tools_json;
  if (think.think) vars["enable_thinking"] = *think.think;
  if (!think.effort.empty()) vars["reasoning_effort"] = think.effort;
  // A reply that must be calls leaves the template's thinking default
  // alone: the grammar starts the reply with the call (or, when the prompt
  // opened <think>, lets the reasoning close first). Telling the template
  // enable_thinking=false instead would put an empty <think></think> in the
  // prompt that the history renders without, and cost the cache hit.
  (void)tmpl;
  return vars;
}

std::string reply_lead_in(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages, const json& vars,
                          const std::string& prompt) {
  static const std::string kMark = "\x01flatline-reply\x01";
  std::vector<ChatMessage> with_reply = messages;
  with_reply.push_back({"assistant", kMark});
  std::string full;
  try {
    full = tmpl.render(with_reply, /*add_generation_prompt=*/false, vars);
  } catch (const std::exception&) {
    return "";
  }
  if (full.size() < prompt.size() || full.compare(0, prompt.size(), prompt) != 0) return "";
  const size_t at = full.find(kMark, prompt.size());
  if (at == std::string::npos) return "";
  const std::string lead = full.substr(prompt.size(), at - prompt.size());
  for (char c : lead)
    if (c != ' ' && c != '\n') return "";
  return lead;
}

std::string new_tool_call_id() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof kAlphabet) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

json ollama_tool_calls(const std::vector<ToolCall>& calls, size_t first_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i)
    out.push_back(json{{"id", new_tool_call_id()},
                       {"function", {{"index", first_index + i}, {"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
  return out;
}

json openai_tool_calls(const std::vector<ToolCall>& calls, size_t first_index, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = json::object();
    if (with_index) c["index"] = first_index + i;
    c["id"] = new_tool_call_id();
    c["type"] = "function";
    c["function"] = {{"name", calls[i].name}, {"arguments", json_compact_text(calls[i].arguments)}};
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace flatline::server
