// SentencePiece-style ("llama") tokenizer against llama.cpp's vocab tests
// (ggml-vocab-llama-spm / phi-3 .inp/.out), Karpathy's llama2.c test vectors
// (Llama 2 vocab) and the stories260K prompt ids.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "test_support.h"
#include "tokenizer_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_tokenizer;

void expect_vocab_cases(const std::string& vocab_relative, size_t expected_cases) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/" + vocab_relative);
  REQUIRE_SHARED_MODEL(inp, "llamacpp-vocab/" + vocab_relative + ".inp");
  REQUIRE_SHARED_MODEL(out, "llamacpp-vocab/" + vocab_relative + ".out");
  auto t = load_tokenizer(vocab);
  const auto cases = test::read_vocab_cases(inp, out);
  ASSERT_EQ(cases.size(), expected_cases);
  size_t passed = 0;
  for (const auto& c : cases) {
    const auto ids = t.tokenizer->encode(c.text);
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(c.ids)) << vocab_relative << " text: '" << c.text << "'";
    passed += ids == c.ids;
  }
  EXPECT_EQ(passed, cases.size());
}

TEST(SpmTokenizer, LlamaSpmVocabMatchesLlamaCpp) { expect_vocab_cases("ggml-vocab-llama-spm.gguf", 46); }
TEST(SpmTokenizer, Phi3VocabMatchesLlamaCpp) { expect_vocab_cases("ggml-vocab-phi-3.gguf", 46); }

TEST(SpmTokenizer, Llama2TestVectorsFromLlama2c) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_SHARED_MODEL(vectors, "llama2-tokenizer/reference/encode_vectors.json");
  auto t = load_tokenizer(vocab);
  ASSERT_TRUE(t.tokenizer->add_bos());
  std::ifstream in(vectors);
  const auto json = nlohmann::json::parse(in);
  ASSERT_EQ(json["cases"].size(), 5u);
  for (const auto& c : json["cases"]) {
    std::vector<int32_t> ids = {t.tokenizer->bos_id()};
    const auto body = t.tokenizer->encode(c["text"].get<std::string>());
    ids.insert(ids.end(), body.begin(), body.end());
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(c["ids"].get<std::vector<int32_t>>()))
        << "text: " << c["text"];
  }
}

TEST(SpmTokenizer, Stories260KPromptIds) {
  REQUIRE_SHARED_MODEL(model, "stories260K/stories260K.gguf");
  REQUIRE_SHARED_MODEL(reference, "stories260K/reference/greedy_prompted_reference.json");
  auto t = load_tokenizer(model);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.pad_id(), -1);  // stored as 0xFFFFFFFF: none
  std::ifstream in(reference);
  const auto json = nlohmann::json::parse(in);
  ASSERT_EQ(json.size(), 2u);
  for (const auto& run : json) {
    std::vector<int32_t> ids = {tok.bos_id()};
    const auto body = tok.encode(run["prompt"].get<std::string>());
    ids.insert(ids.end(), body.begin(), body.end());
    const auto expected = run["prompt_token_ids (BOS + run.c-style BPE, dummy-prefix space)"].get<std::vector<int32_t>>();
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(expected)) << run["prompt"];
    // The generated ids decode to the printed text (run.c drops the
    // leading space of the first piece after BOS, as decode() does).
    const auto fed = run["fed_token_ids_pos0.."].get<std::vector<int32_t>>();
    const std::vector<int32_t> generated(fed.begin() + 1, fed.end());
    const std::string printed = run["printed_text (run.c convention: prompt echoed)"];
    const std::string decoded = tok.decode(generated);
    EXPECT_EQ(decoded, printed.substr(0, decoded.size()));
    EXPECT_GT(decoded.size(), 200u);
  }
}

TEST(SpmTokenizer, SpecialTokensAndRoles) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  auto t = load_tokenizer(vocab);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.model_kind(), "llama");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.is_end_of_generation(2));
  EXPECT_FALSE(tok.is_end_of_generation(1));
  EXPECT_EQ(tok.token_bytes(1), "");
  EXPECT_EQ(tok.token_bytes(1, true), "<s>");
  EXPECT_EQ(tok.token_bytes(0, true), "<unk>");
  EXPECT_EQ(tok.token_bytes(3 + 0x41), "A");        // <0x41>
  EXPECT_EQ(tok.token_bytes(tok.find_token(" Hello")), " Hello");
  EXPECT_EQ(tok.find_token("</s>"), 2);
  EXPECT_EQ(tok.find_token("\n"), 13);               // <0x0A>
  // With parse_special, "<s>" is the BOS id and the text after a special
  // token gets its own space prefix, as in llama.cpp.
  std::vector<int32_t> expected = {1};
  const auto hello = tok.encode("Hello");
  expected.insert(expected.end(), hello.begin(), hello.end());
  EXPECT_EQ(tok.encode("<s>Hello", true), expected);
  const auto plain = tok.encode("<s>Hello", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok.decode(plain), "<s>Hello");
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(SpmTokenizer, Phi3SpecialTokensSwallowTheWhitespaceAfterThem) {
  // llama.cpp gives Phi-3's special tokens the rstrip attribute (keyed on
  // general.name), except <s>, <unk> and <|endoftext|>.
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-phi-3.gguf");
  auto t = load_tokenizer(vocab);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.find_token("<|user|>"), 32010);
  EXPECT_EQ(tok.eot_id(), 32007);  // <|end|>
  EXPECT_TRUE(tok.is_end_of_generation(32007));
  std::vector<int32_t> expected = {32010};
  const auto hello = tok.encode("Hello");
  expected.insert(expected.end(), hello.begin(), hello.end());
  EXPECT_EQ(tok.encode("<|user|>\n  Hello", true), expected);
  // <|endoftext|> keeps the whitespace after it.
  const auto kept = tok.encode("<|endoftext|>\nHello", true);
  ASSERT_GT(kept.size(), 2u);
  EXPECT_EQ(kept[0], 32000);
  EXPECT_EQ(tok.decode(std::vector<int32_t>(kept.begin() + 1, kept.end())), "\nHello");
}

// The vocabularies of the other fixture models load and round-trip text
// (they are the 512-token stories vocabulary; gemma3 without a space prefix).
TEST(SpmTokenizer, FixtureModelVocabulariesLoadAndRoundTrip) {
  for (const char* name : {"random/dream.gguf", "random/gemma3.gguf", "random/granitehybrid.gguf", "random/jamba.gguf",
                           "random/llada.gguf", "random/llama-gqa.gguf", "random/mamba.gguf", "random/mamba2.gguf",
                           "random/nemotron_h.gguf", "llamacpp-vocab/ggml-vocab-baichuan.gguf"}) {
    REQUIRE_SHARED_MODEL(path, name);
    auto t = load_tokenizer(path);
    const std::string text = "Once upon a time, there was a little girl.\nShe said \"hi\" \xe2\x9c\x85";
    EXPECT_EQ(t.tokenizer->decode(t.tokenizer->encode(text)), text) << name;
    EXPECT_EQ(t.tokenizer->model_kind(), "llama") << name;
  }
}

TEST(SpmTokenizer, RoundTripsUtf8AndBytesThroughByteFallback) {
  REQUIRE_SHARED_MODEL(vocab, "llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  auto t = load_tokenizer(vocab);
  std::mt19937 rng(99);
  const auto without_space_mark = [](std::string s) {
    // U+2581 is SentencePiece's space: it decodes to ' ' by design.
    for (size_t p; (p = s.find("\xe2\x96\x81")) != std::string::npos;) s.replace(p, 3, "_");
    return s;
  };
  for (int i = 0; i < 300; ++i) {
    const std::string utf8 = without_space_mark(test::random_utf8(rng, 80));
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(utf8)), utf8);
    const std::string text = without_space_mark(test::random_text(rng, 40));
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(text)), text);
    // Invalid UTF-8 right before a space swallows part of the U+2581 the
    // space became (llama.cpp cuts symbols by lead byte too), so the byte
    // strings here have no spaces.
    std::string bytes = without_space_mark(test::random_bytes(rng, 60));
    std::replace(bytes.begin(), bytes.end(), ' ', '_');
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(bytes)), bytes);
  }
}

}  // namespace
}  // namespace flatline
