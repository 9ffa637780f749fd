// Tool calls as the model writes them. Which syntax a model uses is read
// from its own chat template (the GGUF's tokenizer.chat_template and its
// tool_use variant); models whose template knows no tools get flatline's
// generic prompt (the tools as text in the system message, calls answered
// as <tool_call>{json}</tool_call>). This file knows the syntaxes: detecting
// them, parsing calls back out of generated text, the grammar that makes a
// reply one (or more) valid calls, and the text a call has in a history
// rendered without Jinja. The request and response JSON shapes are the
// server's (src/server/tool_request.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace flatline {

enum class ToolCallFormat {
  Hermes,      // <tool_call>\n{"name": .., "arguments": {..}}\n</tool_call> (Qwen 2.5/3, Hermes)
  Llama3Json,  // the whole reply is {"name": .., "parameters": {..}} (Llama 3.1-3.3)
  Mistral,     // [TOOL_CALLS][{"name": .., "arguments": {..}}, ...]
  Granite,     // <|tool_call|>[{"name": .., "arguments": {..}}, ...]
  Generic,     // flatline's prompt: <tool_call>\n{"name": .., "arguments": {..}}\n</tool_call>
};

std::string_view tool_call_format_name(ToolCallFormat format);

// The syntax a template's calls have, from its text (main template plus
// any tool_use variant). Generic when it shows none flatline knows.
ToolCallFormat detect_tool_call_format(std::string_view template_text);
// /api/show's capabilities: the template renders tools / reasoning.
bool template_mentions_tools(std::string_view template_text);
bool template_supports_thinking(std::string_view template_text);

// A tool the request offers: OpenAI's {"type": "function", "function":
// {"name", "description", "parameters"}} (Ollama's is the same).
struct ToolSpec {
  std::string name;
  std::string description;
  nlohmann::ordered_json parameters = nlohmann::ordered_json::object();  // a JSON schema
  nlohmann::ordered_json source;  // the tool as the request gave it (passed to templates)
};

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments = nlohmann::ordered_json::object();
};

// `tools` as a request gives them: a list of {"type": "function",
// "function": {"name", "description"?, "parameters"?}}. Throws Error naming
// the bad element ("tools[1].function.name must be a non-empty string").
std::vector<ToolSpec> tool_specs_from_json(const nlohmann::ordered_json& tools);
// The tool_calls of a history message ([{"function": {"name", "arguments"}}],
// arguments an object or a JSON string); elements that are not calls are
// left out.
std::vector<ToolCall> tool_calls_from_json(const nlohmann::ordered_json& tool_calls);

// The markers around calls in `format`.
struct ToolCallSyntax {
  std::string open;          // "" for Llama3Json: a reply that starts with '{'
  std::string close;         // "" : the calls run to the end of the reply
  bool list = false;         // after `open` comes a JSON list of calls
  std::string arguments_key; // "arguments" or "parameters"
  std::string separator;     // between two calls in the generated layout
};
const ToolCallSyntax& tool_call_syntax(ToolCallFormat format);

// Calls in `body` (the text between the markers, or the whole reply for
// Llama3Json / a list without its marker): one object or a list of objects
// with "name" (a string) and the arguments (an object, or a string that
// holds one). nullopt when the body is not that, so it stays content.
std::optional<std::vector<ToolCall>> parse_tool_call_body(ToolCallFormat format, std::string_view body);

// The text of `calls` in the layout the constrained grammar generates
// (json.dumps spacing; see json_schema.h), markers included. Used for
// histories rendered without a tools-aware template, so a reply that was
// a call renders back exactly as it was generated.
std::string tool_calls_text(ToolCallFormat format, const std::vector<ToolCall>& calls);

// The generic fallback's instructions, put in the system message.
std::string generic_tool_prompt(const std::vector<ToolSpec>& tools);

// Options for the grammar of a reply that must be calls.
struct ToolGrammarOptions {
  std::string only;            // the one tool to call ("" = any of them)
  bool parallel = true;        // one or more calls (else exactly one)
  std::string lead_in;         // text the template puts before an assistant reply's content (" " for RWKV World)
  bool open_reasoning = false; // the prompt opened <think>: the reply starts with reasoning up to </think>
};
// GBNF for a reply that is only calls of `tools`, each with arguments that
// match its `parameters` schema. Throws Error naming the tool and the
// schema's problem.
std::string tool_call_gbnf(ToolCallFormat format, const std::vector<ToolSpec>& tools, const ToolGrammarOptions& options);

}  // namespace flatline
