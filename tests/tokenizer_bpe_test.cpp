// Byte-level BPE ("gpt2") tokenizers against llama.cpp's vocab tests: every
// ggml-vocab-*.gguf in the fixtures that has .inp/.out, each with its own
// pre-tokenizer (tokenizer.ggml.pre).
#include <gtest/gtest.h>

#include <random>

#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_tokenizer;

struct VocabFixture {
  const char* file;
  const char* pre;
};

class BpeVocabTest : public ::testing::TestWithParam<VocabFixture> {};

TEST_P(BpeVocabTest, MatchesLlamaCppOnAllCases) {
  const VocabFixture& f = GetParam();
  const std::string name = f.file;
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/" + name);
  REQUIRE_SHARED_MODEL(inp, "llamacpp-vocab/" + name + ".inp");
  REQUIRE_SHARED_MODEL(out, "llamacpp-vocab/" + name + ".out");
  auto t = load_tokenizer(vocab);
  EXPECT_EQ(t.tokenizer->model_kind(), "gpt2");
  EXPECT_EQ(t.tokenizer->pre_tokenizer(), f.pre);
  const auto cases = test::read_vocab_cases(inp, out);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (const auto& c : cases) {
    const auto ids = t.tokenizer->encode(c.text);
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(c.ids)) << name << " text: '" << c.text << "'";
    passed += ids == c.ids;
    // Byte-level BPE is lossless for valid UTF-8.
    EXPECT_EQ(t.tokenizer->decode(ids), c.text);
  }
  EXPECT_EQ(passed, cases.size()) << name;
}

INSTANTIATE_TEST_SUITE_P(LlamaCppVocabs, BpeVocabTest,
                         ::testing::Values(VocabFixture{"ggml-vocab-gpt-2.gguf", "gpt-2"},
                                           VocabFixture{"ggml-vocab-deepseek-coder.gguf", "deepseek-coder"},
                                           VocabFixture{"ggml-vocab-deepseek-llm.gguf", "deepseek-llm"},
                                           VocabFixture{"ggml-vocab-falcon.gguf", "falcon"},
                                           VocabFixture{"ggml-vocab-mpt.gguf", "mpt"},
                                           VocabFixture{"ggml-vocab-starcoder.gguf", "starcoder"},
                                           VocabFixture{"ggml-vocab-refact.gguf", "refact"}),
                         [](const auto& info) {
                           std::string n = info.param.pre;
                           for (char& c : n) if (c == '-') c = '_';
                           return n;
                         });

TEST(BpeTokenizer, RoundTripsRandomUtf8) {
  for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-gpt-neox.gguf"}) {
    REQUIRE_SHARED_MODEL(vocab, std::string("llamacpp-vocab/") + name);
    auto t = load_tokenizer(vocab);
    std::mt19937 rng(5);
    for (int i = 0; i < 200; ++i) {
      const std::string utf8 = test::random_utf8(rng, 80);
      ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(utf8)), utf8) << name;
      const std::string text = test::random_text(rng, 40);
      ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(text)), text) << name;
    }
  }
}

TEST(BpeTokenizer, InvalidUtf8BecomesReplacementCharacterAsInLlamaCpp) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  auto t = load_tokenizer(vocab);
  EXPECT_EQ(t.tokenizer->decode(t.tokenizer->encode("a\xff" "b")), "a\xef\xbf\xbd" "b");
}

TEST(BpeTokenizer, SpecialTokensRolesAndDecoding) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  auto t = load_tokenizer(vocab);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_TRUE(tok.is_end_of_generation(50256));
  EXPECT_EQ(tok.find_token("<|endoftext|>"), 50256);
  EXPECT_EQ(tok.find_token(" the"), 262);  // "Ġthe"
  EXPECT_EQ(tok.token_text(262), "\xc4\xa0the");
  EXPECT_EQ(tok.token_bytes(262), " the");
  EXPECT_EQ(tok.token_bytes(50256), "");
  EXPECT_EQ(tok.token_bytes(50256, true), "<|endoftext|>");
  EXPECT_EQ(tok.encode("a<|endoftext|>b", true), (std::vector<int32_t>{64, 50256, 65}));
  const auto plain = tok.encode("a<|endoftext|>b");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok.decode(plain), "a<|endoftext|>b");
}

TEST(BpeTokenizer, UserDefinedTokensSplitEvenWithoutParseSpecial) {
  // mpt / gpt-neox store runs of spaces as user-defined tokens 50254..50276.
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-mpt.gguf");
  auto t = load_tokenizer(vocab);
  const auto ids = t.tokenizer->encode("a    b");
  EXPECT_NE(std::find(ids.begin(), ids.end(), 50274), ids.end()) << test::ids_to_string(ids);  // "    "
  EXPECT_EQ(t.tokenizer->token_type(50274), TokenType::UserDefined);
  EXPECT_EQ(t.tokenizer->token_bytes(50274), "    ");
}

TEST(BpeTokenizer, GpeNeoxWithoutPreUsesDefaultPreTokenizer) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-gpt-neox.gguf");
  auto t = load_tokenizer(vocab);
  EXPECT_EQ(t.tokenizer->pre_tokenizer(), "");
  EXPECT_EQ(t.tokenizer->decode(t.tokenizer->encode("Hello world 12345!")), "Hello world 12345!");
}

TEST(ByteLevel, MappingIsTheGpt2Table) {
  using namespace tokenizer_detail;
  EXPECT_EQ(byte_to_codepoint('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_to_codepoint(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_codepoint('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_codepoint(0xAD), 0x143u);  // the last remapped byte
  for (int b = 0; b < 256; ++b) EXPECT_EQ(codepoint_to_byte(byte_to_codepoint(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(codepoint_to_byte(0x144), -1);
  EXPECT_EQ(byte_level_encode("a b\n"), "a\xc4\xa0" "b\xc4\x8a");
}

TEST(PreTokenizer, UnknownNameIsAClearError) {
  try {
    tokenizer_detail::PreTokenizer::from_name("no-such-pre");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-pre"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos);
  }
}

std::vector<std::string> split(const char* pre, const std::string& text) {
  std::vector<std::string> words;
  tokenizer_detail::PreTokenizer::from_name(pre).split(text, words);
  return words;
}

using Words = std::vector<std::string>;

// Expected splits worked out by hand from the regexes in each tokenizer.json.
TEST(PreTokenizer, Gpt2Pattern) {
  EXPECT_EQ(split("gpt-2", "Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split("gpt-2", "I'm  here!!  "), (Words{"I", "'m", " ", " here", "!!", "  "}));
  EXPECT_EQ(split("gpt-2", "a\t\tb"), (Words{"a", "\t", "\t", "b"}));
  EXPECT_EQ(split("gpt-2", "x 123 \xc3\xa9t\xc3\xa9"), (Words{"x", " 123", " \xc3\xa9t\xc3\xa9"}));
}

TEST(PreTokenizer, Llama3Pattern) {
  EXPECT_EQ(split("llama-bpe", "Hello WORLD's 1234567"), (Words{"Hello", " WORLD", "'s", " ", "123", "456", "7"}));
  EXPECT_EQ(split("llama-bpe", "a  \n\n b"), (Words{"a", "  \n\n", " b"}));
  EXPECT_EQ(split("llama-bpe", "x...\n\ny"), (Words{"x", "...\n\n", "y"}));
  EXPECT_EQ(split("llama-bpe", "(x)"), (Words{"(x", ")"}));
  EXPECT_EQ(split("qwen2", "1234"), (Words{"1", "2", "3", "4"}));
}

TEST(PreTokenizer, DeepseekAndFalconPatterns) {
  // deepseek-llm: [\r\n] first, trailing whitespace on its own.
  EXPECT_EQ(split("deepseek-llm", "ab\ncd  "), (Words{"ab", "\n", "cd", "  "}));
  EXPECT_EQ(split("falcon", "x+=1234"), (Words{"x", "+=", "123", "4"}));
  EXPECT_EQ(split("default", "x+=1234"), (Words{"x", "+=", "123", "4"}));
  EXPECT_EQ(split("starcoder", "ab12"), (Words{"ab", "1", "2"}));
}

}  // namespace
}  // namespace flatline
