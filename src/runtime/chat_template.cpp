#include "runtime/chat_template.h"

#include "util/log.h"

namespace flatline {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\n' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

std::string clean_rwkv_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    if (text[i] == '\n' && !out.empty() && out.back() == '\n') continue;  // \n{2,} -> \n
    out += text[i];
  }
  return trim(out);
}

ChatFormat ChatTemplate::detect(std::string_view t, std::string_view arch) {
  auto has = [&](std::string_view needle) { return t.find(needle) != std::string_view::npos; };
  if (t == "rwkv-world" || (has("User: ") && has("Assistant:") && !has("<|"))) return ChatFormat::RwkvWorld;
  if (has("<|start_header_id|>")) return ChatFormat::Llama3;
  if (has("<start_of_turn>")) return ChatFormat::Gemma;
  if (has("<|im_start|>") || t == "chatml") return ChatFormat::ChatMl;
  if (has("[INST]") || t == "llama2") return ChatFormat::Llama2;
  if (t.empty() && (arch == "rwkv7" || arch == "rwkv6")) return ChatFormat::RwkvWorld;
  return ChatFormat::Plain;
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file) {
  std::string text = file.get_string("tokenizer.chat_template", "");
  const ChatFormat format = detect(text, file.get_string("general.architecture", ""));
  // Only known templates are recognised (no Jinja engine): say so rather
  // than chat in a format the model was not trained on without a word.
  if (format == ChatFormat::Plain && !text.empty())
    LOG_WARN("tokenizer.chat_template is not one flatline recognises (rwkv-world, llama3, gemma, chatml, llama2); "
             "chats use the plain fallback format");
  return ChatTemplate(format);
}

std::string_view ChatTemplate::name() const {
  switch (format_) {
    case ChatFormat::RwkvWorld: return "rwkv-world";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Gemma: return "gemma";
    case ChatFormat::ChatMl: return "chatml";
    case ChatFormat::Llama2: return "llama2";
    case ChatFormat::Plain: return "plain";
  }
  return "?";
}

namespace {

std::string render_rwkv(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    std::string role = m.role == "system" ? "System" : m.role == "assistant" ? "Assistant" : "User";
    out += role + ": " + clean_rwkv_text(m.content) + "\n\n";
  }
  if (gen) out += "Assistant:";
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs)
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Gemma has no system role: the system text is put before the first user turn.
std::string render_gemma(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out, pending_system;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      pending_system += trim(m.content) + "\n\n";
      continue;
    }
    std::string role = m.role == "assistant" ? "model" : "user";
    std::string content = trim(m.content);
    if (role == "user" && !pending_system.empty()) {
      content = pending_system + content;
      pending_system.clear();
    }
    out += "<start_of_turn>" + role + "\n" + content + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama2(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out, system;
  bool open = false;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      system = "<<SYS>>\n" + trim(m.content) + "\n<</SYS>>\n\n";
    } else if (m.role == "assistant") {
      out += " " + trim(m.content) + " </s>";
      open = false;
    } else {
      out += (out.empty() ? "" : "<s>") + std::string("[INST] ") + system + trim(m.content) + " [/INST]";
      system.clear();
      open = true;
    }
  }
  (void)gen;
  (void)open;
  return out;
}

std::string render_plain(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    std::string role = m.role == "system" ? "System" : m.role == "assistant" ? "Assistant" : "User";
    out += role + ": " + trim(m.content) + "\n";
  }
  if (gen) out += "Assistant:";
  return out;
}

}  // namespace

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  switch (format_) {
    case ChatFormat::RwkvWorld: return render_rwkv(messages, add_generation_prompt);
    case ChatFormat::Llama3: return render_llama3(messages, add_generation_prompt);
    case ChatFormat::Gemma: return render_gemma(messages, add_generation_prompt);
    case ChatFormat::ChatMl: return render_chatml(messages, add_generation_prompt);
    case ChatFormat::Llama2: return render_llama2(messages, add_generation_prompt);
    case ChatFormat::Plain: return render_plain(messages, add_generation_prompt);
  }
  return {};
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  switch (format_) {
    case ChatFormat::RwkvWorld: return {"\n\n", "\nUser:"};
    case ChatFormat::Llama3: return {"<|eot_id|>"};
    case ChatFormat::Gemma: return {"<end_of_turn>"};
    case ChatFormat::ChatMl: return {"<|im_end|>"};
    case ChatFormat::Llama2: return {"</s>", "[INST]"};
    case ChatFormat::Plain: return {"\nUser:"};
  }
  return {};
}

}  // namespace flatline
