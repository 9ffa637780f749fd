// Chat formats. When the GGUF's tokenizer.chat_template is a Jinja template
// (the Hugging Face one the model was trained with), prompts are rendered
// with flatline's Jinja interpreter (src/jinja), as transformers' and
// llama.cpp's --jinja do. The hand-written formats below are the fallback
// when there is no template, when it is a name like "rwkv-world", or when
// it does not parse.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "runtime/tool_calls.h"

namespace flatline {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
  // More fields a Jinja template can read, passed through as they are:
  // tool_calls, tool_call_id, name, reasoning_content / thinking, or a
  // "content" that is null or a list of parts. An object, or null.
  nlohmann::ordered_json extra = nullptr;
};

enum class ChatFormat {
  RwkvWorld,  // "User: ...\n\nAssistant: ...\n\n" (RWKV World / G1)
  Llama3,     // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  Gemma,      // <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
  ChatMl,     // <|im_start|>role\n...<|im_end|>\n
  Llama2,     // [INST] <<SYS>>...<</SYS>> ... [/INST]
  Plain,      // fallback: "User: ...\nAssistant:" lines
};

// What a Jinja chat template gets besides the messages.
struct JinjaTemplateTokens {
  std::string bos_token, eos_token;  // "" when the vocabulary has none
  // The tokenizer adds BOS / EOS itself: a rendered prompt that starts with
  // bos_token (ends with eos_token) loses it, so it is not there twice.
  bool tokenizer_adds_bos = false, tokenizer_adds_eos = false;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format) : format_(format) {}
  // tokenizer.chat_template (+ tokenizer.chat_template.<name>, e.g. tool_use)
  // rendered as Jinja when it is one; else the format named by the template
  // or the architecture.
  static ChatTemplate from_gguf(const gguf::File& file);
  // The same with `text` in place of tokenizer.chat_template (an alias's
  // TEMPLATE): a Jinja template (throws jinja::Error when it does not
  // parse), a format name (rwkv-world, llama3, gemma, chatml, llama2,
  // plain), or an Ollama Go template whose special tokens name one of the
  // formats (throws Error for one that names none).
  static ChatTemplate from_gguf(const gguf::File& file, const std::string& text);
  // Checks `text` as from_gguf(file, text) would, without a model: "" when it
  // is usable, else why not. `described` gets what it is taken as.
  static std::string check_override(const std::string& text, std::string* described = nullptr);
  // Ollama's Go template syntax ({{ .Prompt }}, {{ if .System }}, {{ range .Messages }}).
  static bool is_go_template(std::string_view text);
  // A hand-written format by name ("chatml"), or nullopt.
  static std::optional<ChatFormat> format_named(std::string_view name);
  // A Jinja template with named variants. Throws jinja::Error when `source`
  // does not parse (a named variant that does not parse is left out).
  static ChatTemplate from_jinja(const std::string& source, const JinjaTemplateTokens& tokens,
                                 const std::map<std::string, std::string>& named_sources = {},
                                 std::string_view architecture = "");
  static ChatFormat detect(std::string_view template_text, std::string_view architecture);

  // The hand-written format the template resembles (stop strings; fallback).
  ChatFormat format() const { return format_; }
  std::string_view name() const;  // "jinja" when rendered with the Jinja template
  bool uses_jinja() const { return jinja_ != nullptr; }
  bool has_named_template(const std::string& name) const;

  // The prompt text for `messages`; with add_generation_prompt it ends with
  // the assistant header so the model writes the reply next. BOS is not
  // included (the tokenizer adds it when the model asks for one).
  // Throws Error (jinja::Error) when the Jinja template rejects the
  // conversation (its raise_exception), with the template's message.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // The same with more template variables: `extra_context` (an object or
  // null) may hold tools, enable_thinking, date_string, ... When it has
  // non-null tools and the model has a "tool_use" template, that one is used
  // (as transformers does); `template_name` picks a named template instead.
  // The hand-written formats ignore extra_context and ChatMessage::extra.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_context, const std::string& template_name = "") const;
  // The Jinja source (main template, then any tool_use variant); "" for
  // the hand-written formats.
  const std::string& source() const;
  // How this model writes tool calls (runtime/tool_calls.h): from the
  // template's text; Generic for templates that show no known syntax and
  // for the hand-written formats. For a template that never mentions
  // tools (and the hand-written formats), render() puts the tools in the
  // system message as text (generic_tool_prompt) instead of passing them
  // to the template, and renders calls and tool results in the history as
  // text; a template that renders tools in a syntax flatline does not know
  // gets them as they are (its calls are parsed as the generic syntax).
  ToolCallFormat tool_call_format() const { return tool_format_; }
  // /api/show capabilities: the template renders `tools` / reasoning.
  bool mentions_tools() const { return template_mentions_tools(source()); }
  bool supports_thinking() const { return template_supports_thinking(source()); }

  // Text that ends an assistant turn when the model writes it as plain text.
  std::vector<std::string> stop_strings() const;

 private:
  struct Jinja;
  std::string render_as_given(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                              const nlohmann::ordered_json& extra_context, const std::string& template_name) const;
  ChatFormat format_;
  ToolCallFormat tool_format_ = ToolCallFormat::Generic;
  std::shared_ptr<const Jinja> jinja_;  // shared: ChatTemplate is copied around
};

// Whether the tokenizer Tokenizer::from_gguf builds for `file` adds BOS
// (tokenizer.ggml.add_bos_token, else the default of its kind), without
// building it.
bool tokenizer_adds_bos(const gguf::File& file);

// RWKV inputs: CRLF -> LF, runs of blank lines -> one newline, trimmed,
// because "\n\n" separates turns (BlinkDL's RWKV7-G1x templates).
std::string clean_rwkv_text(std::string_view text);
std::string trim(std::string_view text);

}  // namespace flatline
