#include "runtime/chat_template.h"

#include <mutex>
#include <regex>
#include <optional>
#include <set>

#include "jinja/template.h"
#include "tokenizer/tokenizer.h"
#include "util/log.h"

namespace flatline {

struct ChatTemplate::Jinja {
  std::optional<jinja::Template> main;
  std::map<std::string, jinja::Template> named;  // tokenizer.chat_template.<name>
  JinjaTemplateTokens tokens;
  std::string source;  // the main template's text, then the tool_use variant's
};

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

namespace {

bool looks_like_jinja(std::string_view text) {
  return text.find("{%") != std::string_view::npos || text.find("{{") != std::string_view::npos;
}

// The same broken template is met on every model load and /api/show: say so once.
void warn_once(const std::string& key, const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mutex);
  if (seen.insert(key).second) LOG_WARN(message);
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(const std::string& source, const JinjaTemplateTokens& tokens,
                                      const std::map<std::string, std::string>& named_sources,
                                      std::string_view architecture) {
  auto j = std::make_shared<Jinja>();
  j->main = jinja::Template::parse(source);
  j->tokens = tokens;
  j->source = source;
  for (const auto& [name, text] : named_sources) {
    try {
      j->named.emplace(name, jinja::Template::parse(text));
      if (name == "tool_use") j->source += "\n" + text;
    } catch (const jinja::Error& e) {
      warn_once(text, "tokenizer.chat_template." + name + " is not valid Jinja (" + e.what() + "); it is not used");
    }
  }
  ChatTemplate t(detect(source, architecture));
  t.tool_format_ = detect_tool_call_format(j->source);
  t.jinja_ = std::move(j);
  return t;
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file) {
  std::string text = file.get_string("tokenizer.chat_template", "");
  const std::string architecture = file.get_string("general.architecture", "");
  const ChatFormat format = detect(text, architecture);
  if (looks_like_jinja(text)) {
    const SpecialTokenTexts special = special_token_texts(file);
    JinjaTemplateTokens tokens{special.bos, special.eos, special.add_bos, special.add_eos};
    std::map<std::string, std::string> named;
    const std::string prefix = "tokenizer.chat_template.";
    for (const auto& [key, value] : file.metadata()) {
      if (key.compare(0, prefix.size(), prefix) == 0 && value.type() == gguf::ValueType::String)
        named.emplace(key.substr(prefix.size()), std::string(value.as_string()));
    }
    try {
      return from_jinja(text, tokens, named, architecture);
    } catch (const jinja::Error& e) {
      warn_once(text, "tokenizer.chat_template is not valid Jinja (" + std::string(e.what()) + "); chats use the " +
                          std::string(ChatTemplate(format).name()) + " format instead");
      return ChatTemplate(format);
    }
  }
  // A name (rwkv-world, chatml, ...) or nothing: the hand-written formats.
  if (format == ChatFormat::Plain && !text.empty())
    warn_once(text, "tokenizer.chat_template '" + text.substr(0, 40) +
                        "' is not a format flatline knows (rwkv-world, llama3, gemma, chatml, llama2) nor Jinja; "
                        "chats use the plain fallback format");
  return ChatTemplate(format);
}

bool ChatTemplate::is_go_template(std::string_view t) {
  static const std::regex go(R"(\{\{-?\s*(\.|(if|range|with|end|else|define|template|block)\b))");
  return std::regex_search(t.begin(), t.end(), go);
}

std::optional<ChatFormat> ChatTemplate::format_named(std::string_view name) {
  for (ChatFormat f : {ChatFormat::RwkvWorld, ChatFormat::Llama3, ChatFormat::Gemma, ChatFormat::ChatMl,
                       ChatFormat::Llama2, ChatFormat::Plain})
    if (ChatTemplate(f).name() == name) return f;
  return std::nullopt;
}

std::string ChatTemplate::check_override(const std::string& text, std::string* described) {
  auto describe = [&](std::string what) {
    if (described) *described = std::move(what);
    return std::string();
  };
  if (auto f = format_named(text)) return describe("the " + text + " format");
  if (is_go_template(text)) {
    const ChatFormat f = detect(text, "");
    if (f == ChatFormat::Plain)
      return "an Ollama Go template whose special tokens match none of flatline's formats (flatline does not run Go "
             "templates; give a Jinja chat template, or one of rwkv-world, llama3, gemma, chatml, llama2, plain)";
    return describe("the " + std::string(ChatTemplate(f).name()) + " format (recognised from the Go template's special tokens)");
  }
  if (!looks_like_jinja(text))
    return "neither a Jinja chat template nor a format name (rwkv-world, llama3, gemma, chatml, llama2, plain)";
  try {
    jinja::Template::parse(text);
  } catch (const jinja::Error& e) {
    return std::string("not a valid Jinja template: ") + e.what();
  }
  return describe("a Jinja chat template");
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file, const std::string& text) {
  if (auto f = format_named(text)) return ChatTemplate(*f);
  if (is_go_template(text)) {
    if (std::string why = check_override(text); !why.empty()) throw Error("TEMPLATE is " + why);
    return ChatTemplate(detect(text, ""));
  }
  const SpecialTokenTexts special = special_token_texts(file);
  JinjaTemplateTokens tokens{special.bos, special.eos, special.add_bos, special.add_eos};
  return from_jinja(text, tokens, {}, file.get_string("general.architecture", ""));
}

const std::string& ChatTemplate::source() const {
  static const std::string none;
  return jinja_ ? jinja_->source : none;
}

bool ChatTemplate::has_named_template(const std::string& name) const {
  return jinja_ && jinja_->named.count(name) != 0;
}

std::string_view ChatTemplate::name() const {
  if (jinja_) return "jinja";
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

// Gemma has no system role: the system text is put before the first user
// turn, untrimmed (as Gemma 3's own template does; user text is trimmed).
std::string render_gemma(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out, pending_system;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      pending_system += m.content + "\n\n";
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
  return render(messages, add_generation_prompt, nullptr);
}

namespace {

// The messages as transformers passes them: role, content, and any extra
// fields of the message (which may also replace content, e.g. by null).
nlohmann::ordered_json messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    nlohmann::ordered_json j = {{"role", m.role}, {"content", m.content}};
    if (m.extra.is_object())
      for (auto it = m.extra.begin(); it != m.extra.end(); ++it) j[it.key()] = it.value();
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

namespace {

// The generic tool fallback: calls and results in the history become text
// (the calls in the layout the constrained grammar generates, so a reply
// renders back as it was written), and the offered tools become
// instructions in the system message.
std::vector<ChatMessage> with_tools_as_text(const std::vector<ChatMessage>& messages, const nlohmann::ordered_json& tools) {
  std::vector<ChatMessage> out;
  out.reserve(messages.size() + 1);
  bool previous_was_result = false;
  for (const ChatMessage& m : messages) {
    ChatMessage c = m;
    if (c.extra.is_object()) {
      if (auto calls = c.extra.find("tool_calls"); calls != c.extra.end()) {
        const std::vector<ToolCall> parsed = tool_calls_from_json(*calls);
        if (!parsed.empty())
          c.content += (c.content.empty() ? "" : "\n") + tool_calls_text(ToolCallFormat::Generic, parsed);
        c.extra.erase("tool_calls");
      }
    }
    const bool tool_result = c.role == "tool";
    if (tool_result) {
      c.role = "user";
      c.content = "<tool_response>\n" + c.content + "\n</tool_response>";
    }
    // Results of parallel calls, and a user message right after a result,
    // join the user message before them: templates that insist on
    // alternating roles (Gemma) would refuse two user messages in a row.
    if (c.role == "user" && !out.empty() && out.back().role == "user" && (tool_result || previous_was_result)) {
      out.back().content += "\n" + c.content;
    } else {
      out.push_back(std::move(c));
    }
    previous_was_result = tool_result;
  }
  if (tools.is_array() && !tools.empty()) {
    std::vector<ToolSpec> specs;
    try {
      specs = tool_specs_from_json(tools);
    } catch (const Error&) {
      return out;  // the server checks tools before; a bad list offers none
    }
    const std::string prompt = generic_tool_prompt(specs);
    if (!out.empty() && out.front().role == "system") {
      out.front().content += "\n\n" + prompt;
    } else {
      out.insert(out.begin(), ChatMessage{"system", prompt});
    }
  }
  return out;
}

}  // namespace

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_context, const std::string& template_name) const {
  // A template that renders tools itself gets them, whatever its syntax.
  if (tool_format_ != ToolCallFormat::Generic || mentions_tools()) return render_as_given(messages, add_generation_prompt, extra_context, template_name);
  const nlohmann::ordered_json tools =
      extra_context.is_object() && extra_context.contains("tools") ? extra_context["tools"] : nlohmann::ordered_json();
  nlohmann::ordered_json rest = extra_context;
  if (rest.is_object()) rest.erase("tools");
  return render_as_given(with_tools_as_text(messages, tools), add_generation_prompt, rest, template_name);
}

std::string ChatTemplate::render_as_given(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                          const nlohmann::ordered_json& extra_context,
                                          const std::string& template_name) const {
  if (!jinja_) {
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
  // The variables transformers' apply_chat_template passes.
  const JinjaTemplateTokens& tokens = jinja_->tokens;
  nlohmann::ordered_json context = {{"messages", messages_json(messages)},
                                    {"tools", nullptr},
                                    {"documents", nullptr},
                                    {"add_generation_prompt", add_generation_prompt}};
  if (!tokens.bos_token.empty()) context["bos_token"] = tokens.bos_token;
  if (!tokens.eos_token.empty()) context["eos_token"] = tokens.eos_token;
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) context[it.key()] = it.value();
  const jinja::Template* tpl = &*jinja_->main;
  if (!template_name.empty()) {
    auto it = jinja_->named.find(template_name);
    if (it == jinja_->named.end()) throw Error("the model has no chat template named '" + template_name + "'");
    tpl = &it->second;
  } else if (!context["tools"].is_null()) {
    auto it = jinja_->named.find("tool_use");
    if (it != jinja_->named.end()) tpl = &it->second;
  }
  std::string out = tpl->render(context);  // jinja::Error names the template's line and problem
  if (tokens.tokenizer_adds_bos && !tokens.bos_token.empty() && out.compare(0, tokens.bos_token.size(), tokens.bos_token) == 0)
    out.erase(0, tokens.bos_token.size());
  if (tokens.tokenizer_adds_eos && !tokens.eos_token.empty() && out.size() >= tokens.eos_token.size() &&
      out.compare(out.size() - tokens.eos_token.size(), tokens.eos_token.size(), tokens.eos_token) == 0)
    out.resize(out.size() - tokens.eos_token.size());
  return out;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  // A Jinja template of no known format ends turns with the model's own
  // end-of-generation tokens, which the engine stops on anyway.
  if (jinja_ && format_ == ChatFormat::Plain) return {};
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
