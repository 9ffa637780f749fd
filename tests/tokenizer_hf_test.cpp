// tokenizer.json -> GGUF conversion, checked by tokenizing llama.cpp's vocab
// test strings with the converted Llama 3 and Qwen tokenizers (the expected
// ids are llama.cpp's ggml-vocab-llama-bpe / ggml-vocab-qwen2 .out files).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf_writer.h"
#include "test_support.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer_support.h"
#include "util/error.h"

namespace flatline {
namespace {

struct Converted {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tokenizer;
  HfTokenizerSummary summary;
};

Converted convert(const std::string& tokenizer_json, const HfTokenizerOptions& options) {
  gguf::Writer w;
  w.add_string("general.architecture", "llama");
  Converted c;
  c.summary = add_hf_tokenizer(w, tokenizer_json, options);
  const std::string path = test::temp_path("hf-tokenizer.gguf");
  w.write(path);
  c.file = std::make_unique<gguf::File>(gguf::File::open(path));
  c.tokenizer = Tokenizer::from_gguf(*c.file);
  return c;
}

void expect_cases(const Tokenizer& tok, const std::string& vocab_name) {
  REQUIRE_SHARED_MODEL(inp, "llamacpp-vocab/" + vocab_name + ".inp");
  REQUIRE_SHARED_MODEL(out, "llamacpp-vocab/" + vocab_name + ".out");
  const auto cases = test::read_vocab_cases(inp, out);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text);
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(c.ids)) << vocab_name << " text: '" << c.text << "'";
    passed += ids == c.ids;
    EXPECT_EQ(tok.decode(ids), c.text);
  }
  EXPECT_EQ(passed, cases.size());
}

TEST(HfTokenizer, Llama3ConvertsAndMatchesLlamaCpp) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/llama3/tokenizer.json");
  HfTokenizerOptions options;
  options.pre = "llama-bpe";
  const Converted c = convert(json, options);
  EXPECT_EQ(c.summary.model, "gpt2");
  EXPECT_EQ(c.summary.n_tokens, 128256);
  EXPECT_EQ(c.summary.n_merges, 280147);
  const Tokenizer& tok = *c.tokenizer;
  EXPECT_EQ(tok.n_vocab(), 128256);
  EXPECT_EQ(tok.bos_id(), 128000);  // <|begin_of_text|>
  EXPECT_EQ(tok.eos_id(), 128001);  // <|end_of_text|>
  EXPECT_EQ(tok.eot_id(), 128009);  // <|eot_id|>, found by its text
  EXPECT_EQ(tok.eom_id(), -1);      // Llama 3.0: 128008 is still a reserved token
  EXPECT_TRUE(tok.add_bos());       // llama-bpe adds BOS
  EXPECT_TRUE(tok.is_end_of_generation(128001));
  EXPECT_TRUE(tok.is_end_of_generation(128009));
  EXPECT_EQ(tok.end_of_generation_ids(), (std::vector<int32_t>{128001, 128009}));
  EXPECT_FALSE(tok.is_end_of_generation(128006));  // <|start_header_id|>
  EXPECT_EQ(tok.token_type(128006), TokenType::Control);
  EXPECT_EQ(tok.find_token("\n\n"), 271);  // by its bytes ("ĊĊ" in the vocabulary)
  EXPECT_EQ(tok.token_bytes(271), "\n\n");
  EXPECT_EQ(tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", true),
            (std::vector<int32_t>{128006, 882, 128007, 271, 13347, 128009}));
  expect_cases(tok, "ggml-vocab-llama-bpe.gguf");
}

TEST(HfTokenizer, QwenConvertsAndMatchesLlamaCpp) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/qwen3/tokenizer.json");
  HfTokenizerOptions options;
  options.pre = "qwen2";
  const Converted c = convert(json, options);
  const Tokenizer& tok = *c.tokenizer;
  EXPECT_EQ(tok.n_vocab(), 151669);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.eos_id(), 151645);  // <|im_end|> (tokenizer_config eos_token)
  EXPECT_EQ(tok.pad_id(), 151643);  // <|endoftext|>
  EXPECT_TRUE(tok.is_end_of_generation(151645));
  EXPECT_TRUE(tok.is_end_of_generation(151643));
  EXPECT_EQ(tok.token_type(151667), TokenType::UserDefined);  // <think>: added, not special
  // User-defined tokens split even without parse_special; control ones do not.
  EXPECT_EQ(tok.encode("<think>")[0], 151667);
  EXPECT_EQ(tok.encode("<|im_start|>", true), (std::vector<int32_t>{151644}));
  EXPECT_NE(tok.encode("<|im_start|>", false), (std::vector<int32_t>{151644}));
  expect_cases(tok, "ggml-vocab-qwen2.gguf");
}

// DeepSeek-R1-Distill-Qwen keeps Qwen2's vocabulary and pre-tokenizer under
// its own pre name; llama.cpp's expected ids are the same file content.
TEST(HfTokenizer, DeepseekR1QwenPreNameMatchesLlamaCpp) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/qwen3/tokenizer.json");
  HfTokenizerOptions options;
  options.pre = "deepseek-r1-qwen";
  const Converted c = convert(json, options);
  EXPECT_EQ(c.tokenizer->pre_tokenizer(), "deepseek-r1-qwen");
  expect_cases(*c.tokenizer, "ggml-vocab-deepseek-r1-qwen.gguf");
}

// Gemma 3 is SentencePiece-style BPE with byte fallback; llama.cpp converts
// it from tokenizer.model (not available here) into a "llama" vocabulary.
// The expected ids come from transformers.js's tokenizer code run on the same
// tokenizer.json (tools/gen_hf_reference_ids.mjs, which also reproduces
// llama.cpp's llama-bpe and qwen2 .out files exactly).
TEST(HfTokenizer, Gemma3ConvertsToSentencePieceAndMatchesReference) {
  REQUIRE_SHARED_MODEL(json_path, "hf-tokenizers/gemma3/tokenizer.json");
  const std::string reference = test::source_dir() + "/tests/data/gemma3_reference_ids.json";
  const Converted c = convert(json_path, {});
  EXPECT_EQ(c.summary.model, "llama");
  const Tokenizer& tok = *c.tokenizer;
  EXPECT_EQ(tok.n_vocab(), 262145);
  EXPECT_EQ(tok.bos_id(), 2);                          // <bos>
  EXPECT_EQ(tok.eos_id(), 106);                        // <end_of_turn> (tokenizer_config eos_token)
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_TRUE(tok.is_end_of_generation(106));
  EXPECT_TRUE(tok.is_end_of_generation(1));            // <eos>
  EXPECT_EQ(tok.token_type(105), TokenType::Control);  // <start_of_turn>
  EXPECT_EQ(tok.token_type(6), TokenType::Control);    // <unused0>
  EXPECT_EQ(tok.find_token("\n"), 107);
  // The vocabulary by hand: "Hello" is id 9259 and "\u2581world" id 1902 in
  // tokenizer.json, and Gemma adds no space in front of the text.
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{9259, 1902}));
  EXPECT_EQ(tok.encode("<start_of_turn>user\nHi<end_of_turn>", true),
            (std::vector<int32_t>{105, 2364, 107, 10979, 106}));

  std::ifstream in(reference);
  ASSERT_TRUE(in) << reference;
  const auto ref = nlohmann::json::parse(in);
  ASSERT_GE(ref["cases"].size(), 10u);
  for (const auto& k : ref["cases"]) {
    const std::string text = k["text"];
    const auto ids = tok.encode(text);
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(k["ids"].get<std::vector<int32_t>>())) << text;
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(HfTokenizer, RequiresAKnownPreTokenizerForByteLevelBpe) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/qwen3/tokenizer.json");
  gguf::Writer w;
  EXPECT_THROW(add_hf_tokenizer(w, json, {}), Error);
  HfTokenizerOptions options;
  options.pre = "not-a-pre-tokenizer";
  EXPECT_THROW(add_hf_tokenizer(w, json, options), Error);
}

TEST(HfTokenizer, RejectsUnsupportedFiles) {
  const std::string unigram = test::temp_path("unigram.json");
  std::ofstream(unigram) << R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})";
  gguf::Writer w;
  try {
    add_hf_tokenizer(w, unigram, {});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
  }
  const std::string broken = test::temp_path("broken.json");
  std::ofstream(broken) << "{\"model\": ";
  EXPECT_THROW(add_hf_tokenizer(w, broken, {}), Error);
  EXPECT_THROW(add_hf_tokenizer(w, test::temp_path("missing.json"), {}), Error);
}

}  // namespace
}  // namespace flatline
