// Tool calls and reasoning in the runtime: the call syntax detected from
// real chat templates (tests/data/chat_templates), the streaming splitter
// (reasoning / answer / calls, fed one byte at a time so no marker half
// leaks), call parsing that leaves invalid JSON as content, the grammar
// for a reply that must be calls, and the generic fallback's rendering.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "runtime/chat_template.h"
#include "runtime/grammar.h"
#include "runtime/reply_splitter.h"
#include "runtime/tool_calls.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using ojson = nlohmann::ordered_json;

std::string template_file(const std::string& file) {
  std::ifstream in(test::source_dir() + "/tests/data/chat_templates/" + file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ChatTemplate jinja_template(const std::string& file) {
  return ChatTemplate::from_jinja(template_file(file), JinjaTemplateTokens{"<s>", "</s>", false, false});
}

TEST(ToolCallFormat, DetectedFromRealTemplates) {
  const std::vector<std::pair<std::string, ToolCallFormat>> cases = {
      {"shared-qwen3.jinja", ToolCallFormat::Hermes},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallFormat::Hermes},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", ToolCallFormat::Hermes},
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallFormat::Llama3Json},
      {"meta-llama-Llama-3.2-3B-Instruct.jinja", ToolCallFormat::Llama3Json},
      {"meta-llama-Llama-3.3-70B-Instruct.jinja", ToolCallFormat::Llama3Json},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ToolCallFormat::Mistral},
      {"Mistral-Small-3.2-24B-Instruct-2506.jinja", ToolCallFormat::Mistral},
      {"ibm-granite-granite-3.3-2B-Instruct.jinja", ToolCallFormat::Granite},
      {"shared-llama3.jinja", ToolCallFormat::Generic},
      {"shared-gemma3.jinja", ToolCallFormat::Generic},
  };
  for (const auto& [file, format] : cases) {
    const std::string text = template_file(file);
    ASSERT_FALSE(text.empty()) << file;
    EXPECT_EQ(tool_call_format_name(detect_tool_call_format(text)), tool_call_format_name(format)) << file;
  }
  EXPECT_EQ(jinja_template("shared-qwen3.jinja").tool_call_format(), ToolCallFormat::Hermes);
  EXPECT_EQ(ChatTemplate(ChatFormat::RwkvWorld).tool_call_format(), ToolCallFormat::Generic);
}

TEST(ToolCallFormat, CapabilitiesFollowTheTemplateText) {
  const ChatTemplate qwen = jinja_template("shared-qwen3.jinja");
  EXPECT_TRUE(qwen.mentions_tools());
  EXPECT_TRUE(qwen.supports_thinking());
  const ChatTemplate llama = jinja_template("meta-llama-Llama-3.1-8B-Instruct.jinja");
  EXPECT_TRUE(llama.mentions_tools());
  EXPECT_FALSE(llama.supports_thinking());
  const ChatTemplate gemma = jinja_template("shared-gemma3.jinja");
  EXPECT_FALSE(gemma.mentions_tools());
  EXPECT_FALSE(gemma.supports_thinking());
  EXPECT_TRUE(jinja_template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja").supports_thinking());
  EXPECT_FALSE(ChatTemplate(ChatFormat::RwkvWorld).mentions_tools());
  EXPECT_FALSE(ChatTemplate(ChatFormat::RwkvWorld).supports_thinking());
}

// Feeds `text` one byte at a time and collects what comes out.
ReplyParts split_bytewise(const ReplySplitterOptions& o, const std::string& text, std::string* leaked = nullptr) {
  ReplySplitter s(o);
  ReplyParts all;
  auto add = [&](const ReplyParts& p) {
    all.content += p.content;
    all.thinking += p.thinking;
    all.calls.insert(all.calls.end(), p.calls.begin(), p.calls.end());
    if (leaked) *leaked += p.content;
  };
  for (char c : text) add(s.push(std::string(1, c)));
  add(s.finish());
  return all;
}

ReplySplitterOptions hermes_options() {
  ReplySplitterOptions o;
  o.tools = ToolCallFormat::Hermes;
  return o;
}

TEST(ReplySplitter, HermesCallsAreSeparatedAndNoMarkerLeaks) {
  const std::string text =
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  std::string streamed;
  const ReplyParts p = split_bytewise(hermes_options(), text, &streamed);
  EXPECT_EQ(p.content, "Let me look.");
  EXPECT_EQ(streamed.find('<'), std::string::npos) << streamed;
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, ojson::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(p.calls[1].name, "get_time");
  EXPECT_TRUE(p.calls[1].arguments.empty());
}

TEST(ReplySplitter, InvalidCallJsonStaysContent) {
  const std::string text = "a <tool_call>{not json}</tool_call> b";
  const ReplyParts p = split_bytewise(hermes_options(), text);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, text);
  // A call object without a name is no call either.
  const ReplyParts q = ReplySplitter::split(hermes_options(), "<tool_call>{\"arguments\": {}}</tool_call>");
  EXPECT_TRUE(q.calls.empty());
  EXPECT_EQ(q.content, "<tool_call>{\"arguments\": {}}</tool_call>");
  // A lone "<" or a marker prefix at the end is content once the reply ends.
  EXPECT_EQ(split_bytewise(hermes_options(), "x < y <tool_c").content, "x < y <tool_c");
}

TEST(ReplySplitter, UnclosedCallWithAValidBodyCounts) {
  const ReplyParts p =
      ReplySplitter::split(hermes_options(), "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments["x"], 1);
  EXPECT_EQ(p.content, "");
}

TEST(ReplySplitter, ArgumentsGivenAsAJsonStringAreUnwrapped) {
  const ReplyParts p =
      ReplySplitter::split(hermes_options(), "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 2}\"}</tool_call>");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments["x"], 2);
}

TEST(ReplySplitter, Llama3ReplyThatIsAJsonCall) {
  ReplySplitterOptions o;
  o.tools = ToolCallFormat::Llama3Json;
  ReplyParts p = split_bytewise(o, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments["city"], "Oslo");
  EXPECT_EQ(p.content, "");
  // JSON that is not a call, or text that merely contains braces, is content.
  EXPECT_EQ(split_bytewise(o, "{\"a\": 1}").content, "{\"a\": 1}");
  p = split_bytewise(o, "The set {1, 2} is small.");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "The set {1, 2} is small.");
}

TEST(ReplySplitter, MistralAndGraniteLists) {
  ReplySplitterOptions o;
  o.tools = ToolCallFormat::Mistral;
  ReplyParts p = split_bytewise(o, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {\"n\": 1}}]");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[1].name, "b");
  EXPECT_EQ(p.content, "");
  // The marker is a control token the visible text may not show.
  p = split_bytewise(o, "[{\"name\": \"a\", \"arguments\": {}}]");
  ASSERT_EQ(p.calls.size(), 1u);
  o.tools = ToolCallFormat::Granite;
  p = split_bytewise(o, "<|tool_call|>[{\"name\": \"g\", \"arguments\": {\"q\": \"x\"}}]");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments["q"], "x");
}

TEST(ReplySplitter, ThinkingIsSeparatedFromTheAnswer) {
  ReplySplitterOptions o;
  o.separate_thinking = true;
  std::string streamed;
  ReplyParts p = split_bytewise(o, "<think>\nFirst, 2+2.\n</think>\n\nIt is 4.", &streamed);
  EXPECT_EQ(p.thinking, "First, 2+2.");
  EXPECT_EQ(p.content, "It is 4.");
  EXPECT_EQ(streamed.find('<'), std::string::npos);
  // The template opened <think> in the prompt: the reply starts as reasoning.
  o.starts_in_thinking = true;
  p = split_bytewise(o, "hmm</think>Yes.");
  EXPECT_EQ(p.thinking, "hmm");
  EXPECT_EQ(p.content, "Yes.");
  // Unclosed reasoning stays reasoning.
  p = split_bytewise(o, "still thinking");
  EXPECT_EQ(p.thinking, "still thinking");
  EXPECT_EQ(p.content, "");
  // Without reasoning the answer is untouched, leading space included.
  o.starts_in_thinking = false;
  EXPECT_EQ(split_bytewise(o, " Hello <b>").content, " Hello <b>");
}

TEST(ReplySplitter, ThinkingThenACall) {
  ReplySplitterOptions o = hermes_options();
  o.separate_thinking = true;
  const ReplyParts p = split_bytewise(o, "<think>need weather</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(p.thinking, "need weather");
  EXPECT_EQ(p.content, "");
  ASSERT_EQ(p.calls.size(), 1u);
}

TEST(ReplySplitter, InactiveIsAPassThrough) {
  const ReplyParts p = split_bytewise({}, " <think>x</think><tool_call>{}</tool_call> ");
  EXPECT_EQ(p.content, " <think>x</think><tool_call>{}</tool_call> ");
}

bool grammar_accepts(const std::string& gbnf, const std::string& text);

// Streaming must not change the result: any chunking of the text splits
// as the whole text does (markers cut anywhere, invalid calls, stray tags).
TEST(ReplySplitter, AnyChunkingSplitsLikeTheWholeText) {
  const std::vector<std::string> texts = {
      "<think>a</think>\n\nHi <tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"g\"}</tool_call> tail",
      "plain < text </tool_call> <tool_call>{broken</tool_call><tool_call>",
      "  <think>unclosed <tool_call>{\"name\": \"f\"}</tool_call>",
      "</think> x <thi <think> y",
      "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}]",
      "{\"name\": \"f\", \"parameters\": {}}",
  };
  std::mt19937 rng(7);
  for (ToolCallFormat f : {ToolCallFormat::Hermes, ToolCallFormat::Mistral, ToolCallFormat::Llama3Json}) {
    for (bool starts_in_thinking : {false, true}) {
      const ReplySplitterOptions o{true, starts_in_thinking, f};
      for (const std::string& text : texts) {
        const ReplyParts whole = ReplySplitter::split(o, text);
        for (int trial = 0; trial < 20; ++trial) {
          ReplySplitter s(o);
          ReplyParts got;
          auto add = [&](const ReplyParts& p) {
            got.content += p.content;
            got.thinking += p.thinking;
            got.calls.insert(got.calls.end(), p.calls.begin(), p.calls.end());
          };
          for (size_t at = 0; at < text.size();) {
            const size_t n = std::min(text.size() - at, static_cast<size_t>(1 + rng() % 7));
            add(s.push(std::string_view(text).substr(at, n)));
            at += n;
          }
          add(s.finish());
          EXPECT_EQ(got.content, whole.content) << text;
          EXPECT_EQ(got.thinking, whole.thinking) << text;
          ASSERT_EQ(got.calls.size(), whole.calls.size()) << text;
          for (size_t i = 0; i < got.calls.size(); ++i) EXPECT_EQ(got.calls[i].arguments, whole.calls[i].arguments);
        }
      }
    }
  }
}

TEST(ToolCallGrammar, NamesWithQuotesAndUnicode) {
  const auto tools = tool_specs_from_json(ojson::parse(R"([{"function": {"name": "we\"ird\u2713"}}])"));
  const std::vector<ToolCall> calls = {{"we\"ird\u2713", ojson::object()}};
  const std::string text = tool_calls_text(ToolCallFormat::Hermes, calls);
  EXPECT_TRUE(grammar_accepts(tool_call_gbnf(ToolCallFormat::Hermes, tools, {}), text)) << text;
  const ReplyParts p = ReplySplitter::split(hermes_options(), text);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "we\"ird\u2713");
}

TEST(ReplySplitter, PromptOpensThinking) {
  EXPECT_TRUE(prompt_opens_thinking("<|Assistant|><think>\n"));
  EXPECT_FALSE(prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_thinking("<|im_start|>assistant\n"));
}

std::vector<ToolSpec> weather_tools() {
  return tool_specs_from_json(ojson::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
       "unit": {"enum": ["C", "F"]}}, "required": ["city", "unit"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])"));
}

// Walks `text` through the grammar: whether it is a complete sentence.
bool grammar_accepts(const std::string& gbnf, const std::string& text) {
  GrammarMatcher m(Grammar::parse(gbnf));
  const GrammarMatcher::State s = m.feed(m.start(), text);
  return s != GrammarMatcher::kDead && m.accepts(s);
}

TEST(ToolCallGrammar, AcceptsTheLayoutTheParserAndTheHistoryUse) {
  const auto tools = weather_tools();
  const std::vector<ToolCall> calls = {{"get_weather", ojson::parse(R"({"city": "Rome", "unit": "C"})")}};
  for (ToolCallFormat f : {ToolCallFormat::Hermes, ToolCallFormat::Generic, ToolCallFormat::Llama3Json,
                           ToolCallFormat::Mistral, ToolCallFormat::Granite}) {
    const std::string gbnf = tool_call_gbnf(f, tools, {});
    const std::string text = tool_calls_text(f, calls);
    EXPECT_TRUE(grammar_accepts(gbnf, text)) << tool_call_format_name(f) << ": " << text;
    const ReplyParts p = ReplySplitter::split(ReplySplitterOptions{false, false, f}, text);
    ASSERT_EQ(p.calls.size(), 1u) << text;
    EXPECT_EQ(p.calls[0].arguments, calls[0].arguments);
    // Arguments that break the schema are refused.
    const std::string bad = tool_calls_text(f, {{"get_weather", ojson::parse(R"({"city": "Rome", "unit": "K"})")}});
    EXPECT_FALSE(grammar_accepts(gbnf, bad)) << bad;
  }
}

TEST(ToolCallGrammar, NamedToolParallelAndLeadIn) {
  const auto tools = weather_tools();
  ToolGrammarOptions o;
  o.only = "get_time";
  o.lead_in = " ";
  const std::string gbnf = tool_call_gbnf(ToolCallFormat::Generic, tools, o);
  EXPECT_TRUE(grammar_accepts(gbnf, " <tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(grammar_accepts(gbnf, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(grammar_accepts(
      gbnf, " <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\", \"unit\": \"C\"}}\n</tool_call>"));
  const std::string two = tool_calls_text(ToolCallFormat::Hermes, {{"get_time", ojson::object()}, {"get_time", ojson::object()}});
  EXPECT_TRUE(grammar_accepts(tool_call_gbnf(ToolCallFormat::Hermes, tools, {}), two));
  ToolGrammarOptions single;
  single.parallel = false;
  EXPECT_FALSE(grammar_accepts(tool_call_gbnf(ToolCallFormat::Hermes, tools, single), two));
  o.only = "nope";
  EXPECT_THROW(tool_call_gbnf(ToolCallFormat::Hermes, tools, o), Error);
}

TEST(ToolSpecs, MalformedToolsAreNamed) {
  auto message = [](const char* tools) {
    try {
      tool_specs_from_json(ojson::parse(tools));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(R"({"a": 1})"), "tools must be a list of tools, got {\"a\":1}");
  EXPECT_EQ(message(R"([{"type": "function"}])"), "tools[0].function is required (an object with a \"name\")");
  EXPECT_EQ(message(R"([{"type": "function", "function": {"name": ""}}])"), "tools[0].function.name must be a non-empty string");
  EXPECT_EQ(message(R"([{"type": "retrieval", "function": {"name": "f"}}])"), "tools[0].type must be \"function\", got \"retrieval\"");
  EXPECT_EQ(message(R"([{"type": "function", "function": {"name": "f", "parameters": 3}}])"),
            "tools[0].function.parameters must be a JSON schema object, got 3");
  EXPECT_EQ(message(R"([{"function": {"name": "f"}}, {"function": {"name": "f"}}])"),
            "tools[1].function.name \"f\" is used by two tools");
}

TEST(GenericToolFallback, ToolsBecomeASystemPromptAndCallsText) {
  const ChatTemplate rwkv(ChatFormat::RwkvWorld);
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
  std::vector<ChatMessage> chat = {{"user", "What time is it?"}};
  const std::string first = rwkv.render(chat, true, ojson{{"tools", tools}});
  EXPECT_EQ(first.rfind("System: You can call functions", 0), 0u) << first;
  EXPECT_NE(first.find("{\"type\": \"function\", \"function\": {\"name\": \"get_time\""), std::string::npos) << first;
  EXPECT_NE(first.find("User: What time is it?\n\nAssistant:"), std::string::npos) << first;
  // The call and its result in the history render as text, the call in
  // the generated layout, so the reply's cached state is reused.
  ChatMessage call{"assistant", ""};
  call.extra = ojson{{"tool_calls", ojson::parse(R"([{"function": {"name": "get_time", "arguments": {}}}])")}};
  chat.push_back(call);
  chat.push_back({"tool", "12:00"});
  const std::string second = rwkv.render(chat, true, ojson{{"tools", tools}});
  const std::string reply = tool_calls_text(ToolCallFormat::Generic, {{"get_time", ojson::object()}});
  EXPECT_EQ(second.rfind(first + " " + reply, 0), 0u) << second;
  EXPECT_NE(second.find("User: <tool_response>\n12:00\n</tool_response>\n\nAssistant:"), std::string::npos) << second;
}

// Gemma's template refuses two user messages in a row: parallel results
// and a user message after a result join the user message before them.
TEST(GenericToolFallback, ResultsKeepRolesAlternating) {
  const ChatTemplate gemma = jinja_template("shared-gemma3.jinja");
  ASSERT_EQ(gemma.tool_call_format(), ToolCallFormat::Generic);
  ChatMessage call{"assistant", ""};
  call.extra = ojson{{"tool_calls", ojson::parse(R"([{"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}])")}};
  const std::vector<ChatMessage> chat = {{"user", "x"}, call, {"tool", "ra"}, {"tool", "rb"}, {"user", "and?"}};
  std::string out;
  ASSERT_NO_THROW(out = gemma.render(chat, true, ojson{{"tools", nullptr}}));
  EXPECT_NE(out.find("<tool_response>\nra\n</tool_response>\n<tool_response>\nrb\n</tool_response>\nand?"), std::string::npos)
      << out;
  EXPECT_NE(out.find("<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>"), std::string::npos) << out;
}

TEST(GenericToolFallback, ToolsAwareTemplatesGetTheToolsThemselves) {
  const ChatTemplate qwen = jinja_template("shared-qwen3.jinja");
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])");
  ChatMessage call{"assistant", ""};
  call.extra = ojson{{"tool_calls", ojson::parse(R"([{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}])")}};
  const std::string out = qwen.render({{"user", "x"}, call, {"tool", "done"}}, true, ojson{{"tools", tools}});
  EXPECT_NE(out.find("<tools>\n{\"type\": \"function\""), std::string::npos) << out;
  EXPECT_NE(out.find("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>"), std::string::npos) << out;
  EXPECT_NE(out.find("<tool_response>\ndone\n</tool_response>"), std::string::npos) << out;
  EXPECT_EQ(out.find("You can call functions"), std::string::npos);
}

}  // namespace
}  // namespace flatline
