#include "runtime/tool_calls.h"

#include "runtime/json_schema.h"
#include "util/error.h"

namespace flatline {

using ojson = nlohmann::ordered_json;

std::string_view tool_call_format_name(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::Hermes: return "hermes";
    case ToolCallFormat::Llama3Json: return "llama3-json";
    case ToolCallFormat::Mistral: return "mistral";
    case ToolCallFormat::Granite: return "granite";
    case ToolCallFormat::Generic: return "generic";
  }
  return "?";
}

namespace {
bool contains(std::string_view text, std::string_view needle) { return text.find(needle) != std::string_view::npos; }
}  // namespace

ToolCallFormat detect_tool_call_format(std::string_view t) {
  // The most specific markers first: Granite 3.x also writes "<tool_call>"
  // nowhere, Mistral's templates never "<tool_call>".
  if (contains(t, "[TOOL_CALLS]")) return ToolCallFormat::Mistral;
  if (contains(t, "<|tool_call|>")) return ToolCallFormat::Granite;
  if (contains(t, "<tool_call>")) return ToolCallFormat::Hermes;
  // Llama 3.1+: "respond with JSON ... {"name": function name, "parameters": ...}",
  // results in the ipython role.
  if (contains(t, "\"parameters\"") && (contains(t, "ipython") || contains(t, "<|python_tag|>")))
    return ToolCallFormat::Llama3Json;
  return ToolCallFormat::Generic;
}

bool template_mentions_tools(std::string_view t) { return contains(t, "tools"); }

bool template_supports_thinking(std::string_view t) { return contains(t, "<think>") || contains(t, "enable_thinking"); }

const ToolCallSyntax& tool_call_syntax(ToolCallFormat format) {
  static const ToolCallSyntax hermes{"<tool_call>", "</tool_call>", false, "arguments", "\n"};
  static const ToolCallSyntax llama3{"", "", false, "parameters", ""};
  static const ToolCallSyntax mistral{"[TOOL_CALLS]", "", true, "arguments", ", "};
  static const ToolCallSyntax granite{"<|tool_call|>", "", true, "arguments", ", "};
  switch (format) {
    case ToolCallFormat::Hermes:
    case ToolCallFormat::Generic: return hermes;
    case ToolCallFormat::Llama3Json: return llama3;
    case ToolCallFormat::Mistral: return mistral;
    case ToolCallFormat::Granite: return granite;
  }
  return hermes;
}

namespace {

// One call object: {"name": "...", "<arguments key>": {...}}. Models and
// templates mix the two keys, so either is accepted; an arguments string
// that holds an object is unwrapped (some models write OpenAI's layout).
std::optional<ToolCall> call_from_json(const ojson& j) {
  if (!j.is_object()) return std::nullopt;
  const ojson* fields = &j;
  if (auto f = j.find("function"); f != j.end() && f->is_object()) fields = &*f;  // {"function": {...}}
  auto name = fields->find("name");
  if (name == fields->end() || !name->is_string() || name->get<std::string>().empty()) return std::nullopt;
  ToolCall call;
  call.name = name->get<std::string>();
  auto args = fields->find("arguments");
  if (args == fields->end()) args = fields->find("parameters");
  if (args == fields->end() || args->is_null()) return call;
  if (args->is_string()) {
    ojson parsed = ojson::parse(args->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object()) return std::nullopt;
    call.arguments = std::move(parsed);
  } else if (args->is_object()) {
    call.arguments = *args;
  } else {
    return std::nullopt;
  }
  return call;
}

}  // namespace

std::optional<std::vector<ToolCall>> parse_tool_call_body(ToolCallFormat format, std::string_view body) {
  (void)format;  // every format's body is one object or a list of them
  const ojson j = ojson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  std::vector<ToolCall> calls;
  if (j.is_array()) {
    if (j.empty()) return std::nullopt;
    for (const ojson& item : j) {
      auto call = call_from_json(item);
      if (!call) return std::nullopt;
      calls.push_back(std::move(*call));
    }
    return calls;
  }
  auto call = call_from_json(j);
  if (!call) return std::nullopt;
  calls.push_back(std::move(*call));
  return calls;
}

std::vector<ToolSpec> tool_specs_from_json(const ojson& tools) {
  if (!tools.is_array()) throw Error("tools must be a list of tools, got " + tools.dump());
  std::vector<ToolSpec> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    const ojson& t = tools[i];
    const std::string at = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) throw Error(at + " must be an object {\"type\": \"function\", \"function\": {...}}, got " + t.dump());
    if (auto type = t.find("type"); type != t.end() && !(type->is_string() && *type == "function"))
      throw Error(at + ".type must be \"function\", got " + type->dump());
    auto fn = t.find("function");
    if (fn == t.end() || !fn->is_object()) throw Error(at + ".function is required (an object with a \"name\")");
    ToolSpec spec;
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string() || name->get<std::string>().empty())
      throw Error(at + ".function.name must be a non-empty string");
    spec.name = name->get<std::string>();
    if (auto d = fn->find("description"); d != fn->end() && !d->is_null()) {
      if (!d->is_string()) throw Error(at + ".function.description must be a string");
      spec.description = d->get<std::string>();
    }
    if (auto p = fn->find("parameters"); p != fn->end() && !p->is_null()) {
      if (!p->is_object()) throw Error(at + ".function.parameters must be a JSON schema object, got " + p->dump());
      spec.parameters = *p;
    } else {
      spec.parameters = ojson{{"type", "object"}, {"properties", ojson::object()}};
    }
    for (const ToolSpec& other : out)
      if (other.name == spec.name) throw Error(at + ".function.name \"" + spec.name + "\" is used by two tools");
    spec.source = t;
    out.push_back(std::move(spec));
  }
  return out;
}

std::vector<ToolCall> tool_calls_from_json(const ojson& tool_calls) {
  std::vector<ToolCall> out;
  if (!tool_calls.is_array()) return out;
  for (const ojson& c : tool_calls)
    if (auto call = call_from_json(c)) out.push_back(std::move(*call));
  return out;
}

namespace {

std::string call_object_text(const ToolCallSyntax& s, const ToolCall& call) {
  return "{\"name\": " + json_compact_text(ojson(call.name)) + ", \"" + s.arguments_key +
         "\": " + json_compact_text(call.arguments) + "}";
}

}  // namespace

std::string tool_calls_text(ToolCallFormat format, const std::vector<ToolCall>& calls) {
  const ToolCallSyntax& s = tool_call_syntax(format);
  std::string out;
  if (s.list) {
    out = s.open + "[";
    for (size_t i = 0; i < calls.size(); ++i) out += (i ? s.separator : "") + call_object_text(s, calls[i]);
    return out + "]";
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i) out += s.separator;
    if (s.close.empty()) {
      out += call_object_text(s, calls[i]);
    } else {
      out += s.open + "\n" + call_object_text(s, calls[i]) + "\n" + s.close;
    }
  }
  return out;
}

std::string generic_tool_prompt(const std::vector<ToolSpec>& tools) {
  std::string out =
      "You can call functions (tools) to help answer. They are described here, one JSON object each:\n";
  for (const ToolSpec& t : tools) {
    ojson fn = {{"name", t.name}};
    if (!t.description.empty()) fn["description"] = t.description;
    fn["parameters"] = t.parameters;
    out += json_compact_text(ojson{{"type", "function"}, {"function", fn}}) + "\n";
  }
  out +=
      "\nTo call a function, answer with only this, one block per call:\n"
      "<tool_call>\n{\"name\": \"<function name>\", \"arguments\": <the arguments as a JSON object>}\n</tool_call>\n"
      "A function's result comes back in a <tool_response> block. If no function is needed, answer normally.";
  return out;
}

std::string tool_call_gbnf(ToolCallFormat format, const std::vector<ToolSpec>& tools, const ToolGrammarOptions& o) {
  const ToolCallSyntax& s = tool_call_syntax(format);
  JsonGrammarBuilder b;
  std::string alternatives;
  int index = 0;
  for (const ToolSpec& t : tools) {
    if (!o.only.empty() && t.name != o.only) continue;
    std::string args;
    try {
      args = b.add_schema(t.parameters, "tool-args-" + std::to_string(index));
    } catch (const Error& e) {
      throw Error("the parameters of tool \"" + t.name + "\" are not a usable JSON schema: " + e.what());
    }
    const std::string head = "{\"name\": " + json_compact_text(ojson(t.name)) + ", \"" + s.arguments_key + "\": ";
    alternatives += std::string(alternatives.empty() ? "" : " | ") + gbnf_literal(head) + " " + args + " " +
                    gbnf_literal("}");
    ++index;
  }
  if (alternatives.empty()) throw Error("tool_choice names \"" + o.only + "\", which is not one of the tools");
  const std::string object = b.add_rule("tool-call-object", alternatives);
  std::string call = object;
  if (!s.close.empty()) call = b.add_rule("tool-call", gbnf_literal(s.open + "\n") + " " + object + " " +
                                                       gbnf_literal("\n" + s.close));
  // Llama 3's templates take one call per message.
  const bool parallel = o.parallel && format != ToolCallFormat::Llama3Json;
  std::string body = parallel ? call + " ( " + gbnf_literal(s.separator) + " " + call + " )*" : call;
  if (s.list) body = gbnf_literal(s.open + "[") + " " + body + " " + gbnf_literal("]");
  if (o.open_reasoning) {
    // Reasoning the prompt opened: anything without "<" (so it cannot run
    // past the closing tag), then the tag.
    body = "[^<]* " + gbnf_literal("</think>\n\n") + " " + body;
  } else if (!o.lead_in.empty()) {
    body = gbnf_literal(o.lead_in) + " " + body;
  }
  return b.gbnf(body);
}

}  // namespace flatline
