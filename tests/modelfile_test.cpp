// The Modelfile parser, on the examples of Ollama's Modelfile reference
// (docs/modelfile.md: the instruction table, the Mario example, the
// triple-quoted SYSTEM and MESSAGE examples) and on broken input, where every
// error must name the line it is on.
#include <gtest/gtest.h>

#include "runtime/modelfile.h"

namespace flatline {
namespace {

// Ollama's reference example, verbatim.
constexpr const char* kMario = R"(FROM llama3.2
# sets the temperature to 1 [higher is more creative, lower is more coherent]
PARAMETER temperature 1
# sets the context window size to 4096, this controls how many tokens the LLM can use as context to generate the next token
PARAMETER num_ctx 4096

# sets a custom system message to specify the behavior of the chat assistant
SYSTEM You are Mario from super mario bros, acting as an assistant.
)";

TEST(Modelfile, OllamasMarioExample) {
  const Modelfile m = parse_modelfile(kMario);
  ASSERT_TRUE(m.from);
  EXPECT_EQ(m.from->text, "llama3.2");
  EXPECT_EQ(m.from->line, 1);
  ASSERT_EQ(m.parameters.size(), 2u);
  EXPECT_EQ(m.parameters[0].name, "temperature");
  EXPECT_EQ(m.parameters[0].value, "1");
  EXPECT_EQ(m.parameters[0].line, 3);
  EXPECT_EQ(m.parameters[1].name, "num_ctx");
  EXPECT_EQ(m.parameters[1].value, "4096");
  EXPECT_EQ(m.parameters[1].line, 5);
  ASSERT_TRUE(m.system);
  EXPECT_EQ(m.system->text, "You are Mario from super mario bros, acting as an assistant.");
  EXPECT_EQ(m.system->line, 8);
  EXPECT_FALSE(m.template_text);
}

TEST(Modelfile, TripleQuotedValuesSpanLinesAndKeepTheirText) {
  const Modelfile m = parse_modelfile(
      "FROM ./rwkv7-2.9B-world-Q8_0.gguf\n"
      "TEMPLATE \"\"\"{{ if .System }}<|im_start|>system\n"
      "{{ .System }}<|im_end|>\n"
      "{{ end }}\"\"\"\n"
      "PARAMETER stop \"<|im_end|>\"\n");
  EXPECT_EQ(m.from->text, "./rwkv7-2.9B-world-Q8_0.gguf");
  ASSERT_TRUE(m.template_text);
  EXPECT_EQ(m.template_text->text, "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}");
  EXPECT_EQ(m.template_text->line, 2);
  ASSERT_EQ(m.parameters.size(), 1u);
  EXPECT_EQ(m.parameters[0].value, "<|im_end|>");
  EXPECT_EQ(m.parameters[0].line, 5);
}

TEST(Modelfile, MessagesRepeatedStopsAndCaseInsensitiveInstructions) {
  const Modelfile m = parse_modelfile(
      "from base\n"
      "Message user Is Toronto in Canada?\n"
      "MESSAGE assistant yes\n"
      "parameter STOP \"User:\"\n"
      "PARAMETER stop \"\\\"quoted\\\" \\\\ end\"\n"
      "license \"\"\"MIT\"\"\"\n"
      "LICENSE Apache-2.0\n"
      "ADAPTER ./lora.gguf\n");
  EXPECT_EQ(m.from->text, "base");
  ASSERT_EQ(m.messages.size(), 2u);
  EXPECT_EQ(m.messages[0].role, "user");
  EXPECT_EQ(m.messages[0].content, "Is Toronto in Canada?");
  EXPECT_EQ(m.messages[1].role, "assistant");
  EXPECT_EQ(m.messages[1].content, "yes");
  ASSERT_EQ(m.parameters.size(), 2u);
  EXPECT_EQ(m.parameters[0].name, "stop");
  EXPECT_EQ(m.parameters[0].value, "User:");
  EXPECT_EQ(m.parameters[1].value, "\"quoted\" \\ end");
  ASSERT_EQ(m.licenses.size(), 2u);
  EXPECT_EQ(m.licenses[0].text, "MIT");
  EXPECT_EQ(m.licenses[1].text, "Apache-2.0");
  ASSERT_EQ(m.adapters.size(), 1u);
  EXPECT_EQ(m.adapters[0].line, 8);
}

TEST(Modelfile, LaterTemplateAndSystemReplaceEarlierOnes) {
  const Modelfile m = parse_modelfile("FROM a\nSYSTEM one\nSYSTEM two\nTEMPLATE chatml\n");
  EXPECT_EQ(m.system->text, "two");
  EXPECT_EQ(m.system->line, 3);
  EXPECT_EQ(m.template_text->text, "chatml");
}

TEST(Modelfile, WindowsLineEndingsBomAndTrailingBlanks) {
  const Modelfile m = parse_modelfile("\xEF\xBB\xBF# comment\r\nFROM  x.gguf  \r\nPARAMETER top_k 20\r\n");
  EXPECT_EQ(m.from->text, "x.gguf");
  EXPECT_EQ(m.from->line, 2);
  EXPECT_EQ(m.parameters[0].value, "20");
}

// The error's line, and a fragment of its message.
struct BrokenCase {
  const char* text;
  int line;
  const char* says;
};

TEST(Modelfile, ErrorsNameTheirLine) {
  const BrokenCase cases[] = {
      {"FROM a\nPARAMETER temperature 0.5\ntemperature 0.7\n", 3, "unknown instruction \"temperature\""},
      {"FROM a\n\n\nQUANTIZE q4\n", 4, "unknown instruction"},
      {"FROM a\nSYSTEM\n", 2, "SYSTEM needs a value"},
      {"FROM a\nPARAMETER\n", 2, "PARAMETER needs a value"},
      {"FROM a\nPARAMETER top_k\n", 2, "PARAMETER top_k needs a value"},
      {"FROM a\nMESSAGE robot hi\n", 2, "MESSAGE role must be one of"},
      {"FROM a\nMESSAGE user\n", 2, "MESSAGE user needs a value"},
      {"FROM a\nSYSTEM \"unclosed\nPARAMETER x 1\n", 2, "not closed on its line"},
      {"FROM a\n\nTEMPLATE \"\"\"{{ .Prompt }}\n\nmore\n", 3, "\"\"\" is not closed"},
      {"FROM a\nSYSTEM \"x\" trailing\n", 2, "unexpected text after the closing quote"},
      {"FROM a\nSYSTEM \"\"\"x\ny\"\"\" z\n", 3, "unexpected text after the closing quote"},
      {"FROM a\nFROM b\n", 2, "a second FROM (the first is on line 1)"},
      {"# only a comment\nSYSTEM hi\n", 1, "no FROM line"},
      {"", 1, "no FROM line"},
      {"FROM a\n{{ .Prompt }}\n", 2, "expected an instruction"},
  };
  for (const BrokenCase& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      parse_modelfile(c.text);
      ADD_FAILURE() << "accepted";
    } catch (const ModelfileError& e) {
      EXPECT_EQ(e.line(), c.line) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("Modelfile line " + std::to_string(c.line) + ":"), std::string::npos);
    }
  }
}

TEST(Modelfile, RefusesTextLargerThanTheLimit) {
  std::string big = "FROM a\nSYSTEM " + std::string(kMaxModelfileBytes, 'x') + "\n";
  EXPECT_THROW(parse_modelfile(big), ModelfileError);
}

}  // namespace
}  // namespace flatline
