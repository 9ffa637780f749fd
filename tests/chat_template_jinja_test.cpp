// ChatTemplate with a Jinja tokenizer.chat_template: the GGUF's template is
// rendered by src/jinja with the variables transformers passes (and BOS not
// doubled when the tokenizer adds it), named templates (tool_use) are used
// for tools, and the hand-written formats remain the fallback.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "jinja/template.h"
#include "jinja_reference.h"
#include "runtime/chat_template.h"
#include "test_support.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace flatline {
namespace {

using ojson = nlohmann::ordered_json;

std::string template_text(const std::string& file) {
  std::ifstream in(test::source_dir() + "/tests/data/chat_templates/" + file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A vocabulary-only GGUF with a chat template (SentencePiece: adds BOS "<s>").
gguf::File write_model(const std::string& name, const std::map<std::string, std::string>& templates) {
  gguf::Writer w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
  w.add_float32_array("tokenizer.ggml.scores", {0, 0, 0, 0, 0});
  w.add_int32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  for (const auto& [key, text] : templates) w.add_string(key, text);
  const std::string path = test::temp_path(name);
  w.write(path);
  return gguf::File::open(path);
}

const std::vector<ChatMessage> kChat = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Joke?"}};

ojson python_context(const std::vector<ChatMessage>& messages, const std::string& bos, const std::string& eos) {
  ojson m = ojson::array();
  for (const auto& x : messages) m.push_back({{"role", x.role}, {"content", x.content}});
  return {{"messages", m}, {"tools", nullptr}, {"documents", nullptr}, {"add_generation_prompt", true},
          {"bos_token", bos}, {"eos_token", eos}};
}

TEST(ChatTemplateJinja, RendersTheGgufTemplateLikePythonWithoutADoubledBos) {
  REQUIRE_PYTHON_JINJA();
  const std::string gemma = template_text("shared-gemma3.jinja");  // starts with {{ bos_token }}
  const gguf::File file = write_model("gemma-template.gguf", {{"tokenizer.chat_template", gemma}});
  const ChatTemplate t = ChatTemplate::from_gguf(file);
  ASSERT_TRUE(t.uses_jinja());
  EXPECT_EQ(t.name(), "jinja");
  EXPECT_EQ(t.format(), ChatFormat::Gemma);  // still detected: stop strings
  EXPECT_EQ(t.stop_strings(), std::vector<std::string>{"<end_of_turn>"});
  const auto python = test::render_with_python({{gemma, python_context(kChat, "<s>", "</s>")}});
  ASSERT_TRUE(python[0].ok) << python[0].error;
  ASSERT_EQ(python[0].output.substr(0, 3), "<s>");
  // The tokenizer adds BOS itself (SentencePiece default), so the prompt does not start with it.
  EXPECT_EQ(t.render(kChat), python[0].output.substr(3));
}

TEST(ChatTemplateJinja, MessageExtrasAndExtraContextReachTheTemplate) {
  REQUIRE_PYTHON_JINJA();
  const std::string qwen = template_text("Qwen-Qwen2.5-7B-Instruct.jinja");
  const ChatTemplate t = ChatTemplate::from_jinja(qwen, {"", "<|im_end|>", false, false});
  std::vector<ChatMessage> chat = {{"user", "Weather in Paris?"}, {"assistant", ""}, {"tool", "22 C"}};
  chat[1].extra = {{"tool_calls", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}}}};
  chat[2].extra = {{"name", "get_weather"}};
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
  ojson ctx = python_context(chat, "", "<|im_end|>");
  ctx.erase("bos_token");
  ctx["messages"][1]["tool_calls"] = chat[1].extra["tool_calls"];
  ctx["messages"][2]["name"] = "get_weather";
  ctx["tools"] = tools;
  const auto python = test::render_with_python({{qwen, ctx}});
  ASSERT_TRUE(python[0].ok) << python[0].error;
  const std::string ours = t.render(chat, true, ojson{{"tools", tools}});
  EXPECT_EQ(ours, python[0].output);
  EXPECT_NE(ours.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"), std::string::npos);
}

TEST(ChatTemplateJinja, ToolUseTemplateIsUsedWhenToolsAreGiven) {
  const gguf::File file = write_model("named.gguf", {{"tokenizer.chat_template", "default:{{ messages[0].content }}"},
                                                     {"tokenizer.chat_template.tool_use", "tools:{{ tools|length }}"},
                                                     {"tokenizer.chat_template.broken", "{% if %}"}});
  const ChatTemplate t = ChatTemplate::from_gguf(file);
  EXPECT_TRUE(t.has_named_template("tool_use"));
  EXPECT_FALSE(t.has_named_template("broken"));  // left out with a warning
  const std::vector<ChatMessage> chat = {{"user", "hi"}};
  EXPECT_EQ(t.render(chat), "default:hi");
  EXPECT_EQ(t.render(chat, true, ojson{{"tools", ojson::array({1, 2})}}), "tools:2");
  EXPECT_EQ(t.render(chat, true, ojson{{"tools", nullptr}}), "default:hi");
  EXPECT_EQ(t.render(chat, true, ojson{{"tools", ojson::array()}}, "tool_use"), "tools:0");
  EXPECT_THROW(t.render(chat, true, nullptr, "nope"), Error);
}

TEST(ChatTemplateJinja, TemplateErrorsReachTheCallerWithTheTemplatesMessage) {
  const ChatTemplate t = ChatTemplate::from_jinja(template_text("google-gemma-2-9b-it.jinja"), {"<bos>", "<eos>", true, false});
  try {
    t.render(kChat);
    FAIL() << "gemma-2's template refuses a system message";
  } catch (const jinja::TemplateRaisedError& e) {
    EXPECT_EQ(e.raised_message(), "System role not supported");
  }
  EXPECT_EQ(t.render({{"user", "Hi"}}), "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateJinja, NamesAndBrokenTemplatesFallBackToTheHandWrittenFormats) {
  EXPECT_FALSE(ChatTemplate::from_gguf(write_model("name.gguf", {{"tokenizer.chat_template", "chatml"}})).uses_jinja());
  EXPECT_EQ(ChatTemplate::from_gguf(write_model("name2.gguf", {{"tokenizer.chat_template", "chatml"}})).format(),
            ChatFormat::ChatMl);
  // Does not parse: the format it resembles, with a warning.
  const ChatTemplate broken = ChatTemplate::from_gguf(
      write_model("broken.gguf", {{"tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }"}}));
  EXPECT_FALSE(broken.uses_jinja());
  EXPECT_EQ(broken.format(), ChatFormat::ChatMl);
  EXPECT_EQ(broken.render({{"user", "hi"}}), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_FALSE(ChatTemplate::from_gguf(write_model("none.gguf", {})).uses_jinja());
}

// Where flatline's old hand-written formats and the models' real templates
// (rendered by Python) differ. Llama 3 and ChatML agree on plain chats; the
// hand-written Gemma format trimmed the system text, which Gemma 3's template
// does not: it was changed to match Python.
TEST(ChatTemplateJinja, HandWrittenFormatsAgreeWithTheRealTemplatesOnPlainChats) {
  REQUIRE_PYTHON_JINJA();
  const std::vector<ChatMessage> chat = {{"system", "  Be brief. "}, {"user", " Hi there\n"}, {"assistant", "Hello!"}, {"user", "Joke?"}};
  const struct {
    const char* file;
    ChatFormat format;
    const char* bos;
  } cases[] = {{"shared-llama3.jinja", ChatFormat::Llama3, "<|begin_of_text|>"},
               {"shared-gemma3.jinja", ChatFormat::Gemma, "<bos>"},
               {"shared-qwen3.jinja", ChatFormat::ChatMl, ""},
               {"shared-ouro.jinja", ChatFormat::ChatMl, ""}};
  for (const auto& c : cases) {
    ojson ctx = python_context(chat, c.bos, "</s>");
    const auto python = test::render_with_python({{template_text(c.file), ctx}});
    ASSERT_TRUE(python[0].ok) << c.file << ": " << python[0].error;
    const std::string expected = python[0].output.substr(std::string(c.bos).size());  // BOS comes from the tokenizer
    EXPECT_EQ(ChatTemplate(c.format).render(chat), expected) << c.file;
  }
}

// tokenizer_config.json with a list of templates ("default", "tool_use"):
// the converter keeps both, and the Llama 3 tokenizer's own BOS is not doubled.
TEST(ChatTemplateJinja, ConvertedHfTokenizerKeepsNamedTemplates) {
  REQUIRE_SHARED_MODEL(json_path, "hf-tokenizers/llama3/tokenizer.json");
  const std::string config_path = test::temp_path("tokenizer_config.json");
  {
    std::ofstream out(config_path);
    out << ojson{{"bos_token", "<|begin_of_text|>"},
                 {"chat_template", ojson::array({{{"name", "default"}, {"template", "{{ bos_token }}plain"}},
                                                 {{"name", "tool_use"}, {"template", "{{ bos_token }}tools={{ tools|length }}"}}})}}
               .dump();
  }
  gguf::Writer w;
  w.add_string("general.architecture", "llama");
  HfTokenizerOptions options;
  options.pre = "llama-bpe";
  options.config_path = config_path;
  add_hf_tokenizer(w, json_path, options);
  const std::string path = test::temp_path("llama3-named.gguf");
  w.write(path);
  const gguf::File file = gguf::File::open(path);
  EXPECT_EQ(file.get_string("tokenizer.chat_template.tool_use", ""), "{{ bos_token }}tools={{ tools|length }}");
  const ChatTemplate t = ChatTemplate::from_gguf(file);
  EXPECT_EQ(t.render({{"user", "hi"}}), "plain");
  EXPECT_EQ(t.render({{"user", "hi"}}, true, ojson{{"tools", ojson::array({1})}}), "tools=1");
}

// special_token_texts reads what Tokenizer::from_gguf would build.
TEST(ChatTemplateJinja, SpecialTokenTextsAgreeWithTheBuiltTokenizer) {
  REQUIRE_SHARED_MODEL(dir, "llamacpp-vocab");
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".gguf") paths.push_back(e.path().string());
  for (const char* extra : {"stories260K/stories260K.gguf", "tiny-rwkv7-834K-f32.gguf"})
    if (std::string p = test::shared_model(extra); !p.empty()) paths.push_back(p);
  int checked = 0;
  for (const std::string& path : paths) {
    const gguf::File file = gguf::File::open(path);
    std::unique_ptr<Tokenizer> tok;
    try {
      tok = Tokenizer::from_gguf(file);
    } catch (const Error&) {
      continue;  // a kind flatline does not build (e.g. bert)
    }
    const SpecialTokenTexts s = special_token_texts(file);
    EXPECT_EQ(s.add_bos, tok->add_bos() && tok->bos_id() >= 0) << path;
    EXPECT_EQ(s.add_eos, tok->add_eos() && tok->eos_id() >= 0) << path;
    if (tok->bos_id() >= 0) EXPECT_EQ(s.bos, tok->token_text(tok->bos_id())) << path;
    if (tok->eos_id() >= 0) EXPECT_EQ(s.eos, tok->token_text(tok->eos_id())) << path;
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace flatline
