// Chat formats. flatline recognises the templates it knows from the GGUF's
// tokenizer.chat_template (a Jinja string, or a name like "rwkv-world")
// instead of shipping a Jinja engine; ARCHITECTURE.md lists them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace flatline {

struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

enum class ChatFormat {
  RwkvWorld,  // "User: ...\n\nAssistant: ...\n\n" (RWKV World / G1)
  Llama3,     // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  Gemma,      // <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
  ChatMl,     // <|im_start|>role\n...<|im_end|>\n
  Llama2,     // [INST] <<SYS>>...<</SYS>> ... [/INST]
  Plain,      // fallback: "User: ...\nAssistant:" lines
};

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format) : format_(format) {}
  // Picks the format from tokenizer.chat_template, else from the architecture.
  static ChatTemplate from_gguf(const gguf::File& file);
  static ChatFormat detect(std::string_view template_text, std::string_view architecture);

  ChatFormat format() const { return format_; }
  std::string_view name() const;

  // The prompt text for `messages`; with add_generation_prompt it ends with
  // the assistant header so the model writes the reply next. BOS is not
  // included (the tokenizer adds it when the model asks for one).
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // Text that ends an assistant turn when the model writes it as plain text.
  std::vector<std::string> stop_strings() const;

 private:
  ChatFormat format_;
};

// RWKV inputs: CRLF -> LF, runs of blank lines -> one newline, trimmed,
// because "\n\n" separates turns (BlinkDL's RWKV7-G1x templates).
std::string clean_rwkv_text(std::string_view text);
std::string trim(std::string_view text);

}  // namespace flatline
