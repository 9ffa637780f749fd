// Bad tokenizer metadata gives a clear flatline::Error naming the key and
// what was expected; small hand-made vocabularies pin down merge order and
// the special-token split.
#include <gtest/gtest.h>

#include <functional>

#include "gguf/gguf_writer.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_support.h"
#include "util/error.h"

namespace flatline {
namespace {

struct Built {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tokenizer;
};

Built build(const std::function<void(gguf::Writer&)>& fill) {
  gguf::Writer w;
  w.add_string("general.architecture", "test");
  fill(w);
  const std::string path = test::temp_path("tok.gguf");
  w.write(path);
  Built b;
  b.file = std::make_unique<gguf::File>(gguf::File::open(path));
  b.tokenizer = Tokenizer::from_gguf(*b.file);
  return b;
}

// The Error message from building, or "" if it built.
std::string build_error(const std::function<void(gguf::Writer&)>& fill) {
  try {
    build(fill);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_MENTIONS(message, ...)                                                   \
  do {                                                                                       \
    const std::string m_ = (message);                                                        \
    EXPECT_FALSE(m_.empty()) << "expected an Error";                                         \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(m_.find(part), std::string::npos) << m_; \
  } while (0)

std::vector<std::string> byte_tokens() {
  std::vector<std::string> t;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) t.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
  return t;
}

// --- errors -----------------------------------------------------------------

TEST(TokenizerErrors, UnknownOrMissingModelKind) {
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "bert");
                          w.add_string_array("tokenizer.ggml.tokens", {"a"});
                        }),
                        "tokenizer.ggml.model", "'bert'", "not supported", "rwkv, llama, gpt2");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) { w.add_string_array("tokenizer.ggml.tokens", {"a"}); }),
                        "tokenizer.ggml.model is missing");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) { w.add_uint32("tokenizer.ggml.model", 3); }),
                        "tokenizer.ggml.model", "expected a string");
}

TEST(TokenizerErrors, MissingOrMistypedTokens) {
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) { w.add_string("tokenizer.ggml.model", "rwkv"); }),
                        "tokenizer.ggml.tokens is missing");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_int32_array("tokenizer.ggml.tokens", {1, 2});
                        }),
                        "tokenizer.ggml.tokens", "expected an array of strings", "int32");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_string_array("tokenizer.ggml.tokens", {});
                        }),
                        "tokenizer.ggml.tokens", "at least one token");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "a"});
                        }),
                        "duplicate token 'a'", "0 and 2");
}

TEST(TokenizerErrors, ParallelArraysOfTheWrongLengthOrType) {
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "llama");
                          w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "a", "b"});
                          w.add_float32_array("tokenizer.ggml.scores", {0.0f, -1.0f});
                        }),
                        "tokenizer.ggml.scores", "expected 3 entries", "found 2");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "llama");
                          w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "a", "b"});
                          w.add_float32_array("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f});
                          w.add_int32_array("tokenizer.ggml.token_type", {2, 1, 1, 1});
                        }),
                        "tokenizer.ggml.token_type", "expected 3 entries", "found 4");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "llama");
                          w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "a"});
                          w.add_string_array("tokenizer.ggml.scores", {"x", "y"});
                        }),
                        "tokenizer.ggml.scores", "expected an array of numbers");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "llama");
                          w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "a"});
                        }),
                        "tokenizer.ggml.scores is missing");
}

TEST(TokenizerErrors, BadSpecialTokenMetadata) {
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_string_array("tokenizer.ggml.tokens", {"a"});
                          w.add_string("tokenizer.ggml.bos_token_id", "zero");
                        }),
                        "tokenizer.ggml.bos_token_id", "expected an integer");
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_string_array("tokenizer.ggml.tokens", {"a"});
                          w.add_bool("tokenizer.ggml.add_bos_token", true);
                        }),
                        "add_bos_token is true", "no valid bos");
  // An out-of-range id means "none" (converters write 0xFFFFFFFF).
  auto b = build([](gguf::Writer& w) {
    w.add_string("tokenizer.ggml.model", "rwkv");
    w.add_string_array("tokenizer.ggml.tokens", {"a"});
    w.add_uint32("tokenizer.ggml.eos_token_id", 0xFFFFFFFFu);
  });
  EXPECT_EQ(b.tokenizer->eos_id(), -1);
}

TEST(TokenizerErrors, BadMerges) {
  const auto bpe = [](std::vector<std::string> merges, const char* pre = "gpt-2") {
    return [merges, pre](gguf::Writer& w) {
      w.add_string("tokenizer.ggml.model", "gpt2");
      w.add_string("tokenizer.ggml.pre", pre);
      w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "c"});
      if (!merges.empty()) w.add_string_array("tokenizer.ggml.merges", merges);
    };
  };
  EXPECT_ERROR_MENTIONS(build_error(bpe({})), "tokenizer.ggml.merges is missing");
  EXPECT_ERROR_MENTIONS(build_error(bpe({"a b", "a x"})), "tokenizer.ggml.merges[1] 'a x'", "'x' is not a token");
  EXPECT_ERROR_MENTIONS(build_error(bpe({"q b"})), "tokenizer.ggml.merges[0]", "'q' is not a token");
  EXPECT_ERROR_MENTIONS(build_error(bpe({"ab"})), "tokenizer.ggml.merges[0] 'ab'", "two tokens separated by a space");
  EXPECT_ERROR_MENTIONS(build_error(bpe({"a c"})), "merged text 'ac' is not a token");
  EXPECT_ERROR_MENTIONS(build_error(bpe({"a b"}, "no-such-pre")), "pre-tokenizer 'no-such-pre'", "not supported");
}

TEST(TokenizerErrors, BadRwkvEscapes) {
  EXPECT_ERROR_MENTIONS(build_error([](gguf::Writer& w) {
                          w.add_string("tokenizer.ggml.model", "rwkv");
                          w.add_string_array("tokenizer.ggml.tokens", {"a", "\\xg0"});
                        }),
                        "\\xg0", "two hex digits");
}

TEST(TokenizerErrors, TokenIdsOutOfRange) {
  auto b = build([](gguf::Writer& w) {
    w.add_string("tokenizer.ggml.model", "rwkv");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  });
  EXPECT_THROW(b.tokenizer->token_bytes(2), Error);
  EXPECT_THROW(b.tokenizer->token_type(-5), Error);
  const std::vector<int32_t> ids = {0, 7};
  EXPECT_THROW(b.tokenizer->decode(ids), Error);
  // A byte with no token and no unknown token cannot be encoded.
  EXPECT_THROW(b.tokenizer->encode("abc"), Error);
}

// --- small vocabularies with hand-computed results ------------------------

TEST(TokenizerBehaviour, SpmMergesHighestScoreFirstThenLeftmost) {
  auto b = build([](gguf::Writer& w) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    for (const auto& t : byte_tokens()) tokens.push_back(t);
    for (const char* t : {"a", "b", "c", "ab", "bc", "abc", "\xe2\x96\x81", "\xe2\x96\x81" "a"}) tokens.push_back(t);
    std::vector<float> scores(tokens.size(), 0.0f);
    std::vector<int32_t> types(tokens.size(), 1);
    types[0] = 2;
    types[1] = types[2] = 3;
    for (int i = 3; i < 259; ++i) types[i] = 6;
    const auto id = [&](const char* t) { return std::find(tokens.begin(), tokens.end(), t) - tokens.begin(); };
    scores[id("ab")] = -5.0f;
    scores[id("bc")] = -1.0f;  // "bc" beats "ab"
    scores[id("abc")] = -9.0f;
    scores[id("\xe2\x96\x81" "a")] = -0.5f;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_float32_array("tokenizer.ggml.scores", scores);
    w.add_int32_array("tokenizer.ggml.token_type", types);
    w.add_bool("tokenizer.ggml.add_space_prefix", false);
  });
  const Tokenizer& tok = *b.tokenizer;
  const auto id = [&](const char* t) { return tok.find_token(t); };
  // "abc": bc (-1) merges before ab (-5), then a+bc = "abc" (-9).
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{id("abc")}));
  // "abab": the two "ab" have equal scores: leftmost first, no "ba" token.
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{id("ab"), id("ab")}));
  // " a" -> "▁a"; "x" is not a token: byte fallback <0x78>.
  EXPECT_EQ(tok.encode(" ax"), (std::vector<int32_t>{id(" a"), 3 + 'x'}));
  EXPECT_EQ(tok.decode(tok.encode(" ax")), " ax");
}

TEST(TokenizerBehaviour, BpeMergesLowestRankFirst) {
  auto b = build([](gguf::Writer& w) {
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "gpt-2");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "ab", "bc", "abc", "\xc4\xa0", "\xc4\xa0" "a"});
    // rank 0: b c, rank 1: a b, rank 2: a bc
    w.add_string_array("tokenizer.ggml.merges", {"b c", "a b", "a bc", "\xc4\xa0 a"});
  });
  const Tokenizer& tok = *b.tokenizer;
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{5}));     // b+c, then a+bc
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{3}));
  EXPECT_EQ(tok.encode("cab"), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(tok.encode("a a"), (std::vector<int32_t>{0, 7}));  // "a", " a"
  EXPECT_EQ(tok.decode(tok.encode("a abc")), "a abc");
}

TEST(TokenizerBehaviour, SpecialTokensAreTriedLongestFirstOverTheWholeText) {
  // llama.cpp splits on one special token at a time, longest first: in
  // "abcd" the longer "bcd" wins although "ab" starts earlier.
  auto b = build([](gguf::Writer& w) {
    w.add_string("tokenizer.ggml.model", "rwkv");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "d", "ab", "bcd", "<x>"});
    w.add_int32_array("tokenizer.ggml.token_type", {1, 1, 1, 1, 4, 3, 3});
  });
  const Tokenizer& tok = *b.tokenizer;
  EXPECT_EQ(tok.encode("abcd", true), (std::vector<int32_t>{0, 5}));
  // Without parse_special only the user-defined "ab" splits.
  EXPECT_EQ(tok.encode("abcd", false), (std::vector<int32_t>{4, 2, 3}));
  EXPECT_EQ(tok.encode("d<x>a", true), (std::vector<int32_t>{3, 6, 0}));
  EXPECT_EQ(tok.decode(tok.encode("d<x>a", true)), "da");
  EXPECT_EQ(tok.decode(tok.encode("d<x>a", true), true), "d<x>a");
}

TEST(TokenizerBehaviour, EndOfGenerationSetFromIdsAndTexts) {
  auto b = build([](gguf::Writer& w) {
    w.add_string("tokenizer.ggml.model", "rwkv");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "<|im_end|>", "<|endoftext|>", "</s>", "<|im_start|>", "x"});
    w.add_int32_array("tokenizer.ggml.token_type", {1, 4, 3, 1, 3, 1});
    w.add_uint32("tokenizer.ggml.eos_token_id", 5);
  });
  const Tokenizer& tok = *b.tokenizer;
  EXPECT_EQ(tok.end_of_generation_ids(), (std::vector<int32_t>{1, 2, 3, 5}));
  EXPECT_EQ(tok.eot_id(), 1);                              // "<|im_end|>" by its text
  EXPECT_EQ(tok.token_type(1), TokenType::Control);        // made control, as llama.cpp does
  EXPECT_FALSE(tok.is_end_of_generation(4));
}

}  // namespace
}  // namespace flatline
