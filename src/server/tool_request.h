// Tool calling and reasoning as the two APIs spell them: the request fields
// (`tools`, `tool_choice`, `parallel_tool_calls`, Ollama's `think`, OpenAI's
// `reasoning_effort` / `reasoning`), the history fields of messages
// (assistant `tool_calls`, role `tool` with `tool_name` / `tool_call_id`,
// `thinking` / `reasoning_content`), and the reply's shapes (Ollama's
// arguments are an object, OpenAI's a JSON string). The syntaxes the
// models write are runtime/tool_calls.h's; docs/SERVER.md describes both.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/chat_template.h"
#include "runtime/reply_splitter.h"
#include "runtime/tool_calls.h"
#include "server/json_io.h"

namespace flatline::server {

enum class ToolChoice { Auto, None, Required, Named };

struct ToolRequest {
  std::vector<ToolSpec> tools;
  json tools_json = nullptr;  // the list as given (what templates receive)
  ToolChoice choice = ToolChoice::Auto;
  std::string named;          // ToolChoice::Named: the function to call
  bool parallel = true;       // more than one call per reply
  // The tools are offered to the model (and calls parsed from the reply).
  bool active() const { return !tools.empty() && choice != ToolChoice::None; }
  // The reply must be calls: generation is constrained to the call syntax.
  bool constrained() const { return active() && (choice == ToolChoice::Required || choice == ToolChoice::Named); }
};

// `tools`, `tool_choice` ("auto" | "none" | "required" |
// {"type": "function", "function": {"name": ...}}) and
// `parallel_tool_calls`. HttpError(400) naming the bad part.
ToolRequest parse_tool_request(const json* tools, const json* tool_choice, const json* parallel_tool_calls);

struct ThinkRequest {
  std::optional<bool> think;  // unset: the template's default
  std::string effort;         // "low" / "medium" / "high" (passed to templates as reasoning_effort)
};
// Ollama's `think`: a bool or "low" / "medium" / "high" / "max".
ThinkRequest parse_ollama_think(const json* think);
// OpenAI's `reasoning_effort` or `reasoning: {"effort"}`: "none" / "minimal"
// turn reasoning off, "low" / "medium" / "high" on.
ThinkRequest parse_openai_reasoning(const json* reasoning_effort, const json* reasoning);

// History fields of one message into `m.extra` (for Jinja templates; the
// generic fallback renders them as text). `at` names the message in errors.
void read_ollama_message_tools(const json& message, ChatMessage& m, const std::string& at);
void read_openai_message_tools(const json& message, ChatMessage& m, const std::string& at);

// The template variables a request sets: tools (when offered),
// enable_thinking / reasoning_effort (when the request says).
json template_vars(const ToolRequest& tools, const ThinkRequest& think, const ChatTemplate& tmpl);

// What the template writes before an assistant reply's content, when that
// is only whitespace (" " in RWKV World's "Assistant: ..."), else "". A
// constrained reply starts with it so it renders back as it was generated.
std::string reply_lead_in(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages, const json& vars,
                          const std::string& prompt);

// "call_" and 24 random letters and digits.
std::string new_tool_call_id();
// Ollama's message.tool_calls: [{"id", "function": {"index", "name", "arguments": {...}}}].
json ollama_tool_calls(const std::vector<ToolCall>& calls, size_t first_index);
// OpenAI's message.tool_calls: [{"id", "type": "function", "function": {"name", "arguments": "<JSON>"}}];
// with `with_index` (streaming deltas) each also has its "index".
json openai_tool_calls(const std::vector<ToolCall>& calls, size_t first_index, bool with_index);

}  // namespace flatline::server
