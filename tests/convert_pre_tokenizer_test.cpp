// tokenizer.ggml.pre as llama.cpp's converter picks it: the SHA-256 of the
// check text's ids is looked up in llama.cpp's table. The Llama 3 and Qwen 3
// tokenizers must give exactly the fingerprints llama.cpp's maintainers
// computed with Hugging Face's tokenizer (outside truth for both the hash
// and flatline's tokenization of the check text).
#include <gtest/gtest.h>

#include "convert/pre_tokenizer.h"
#include "convert/sha256.h"
#include "safetensors_support.h"
#include "test_support.h"
#include "util/error.h"

namespace flatline {
namespace {

TEST(ConvertSha256, MatchesFipsVectors) {
  EXPECT_EQ(convert::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(convert::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(convert::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(convert::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ConvertPreTokenizer, CheckTextIsLlamaCpps) {
  const std::string& t = convert::pre_tokenizer_check_text();
  EXPECT_EQ(t.size(), 431u);  // UTF-8 bytes of chktxt
  EXPECT_EQ(t.substr(0, 5), "\n \n\n ");
  EXPECT_EQ(t.substr(t.size() - 10), "We'Ve a'lL");
  EXPECT_EQ(convert::python_list({1, 22, 333}), "[1, 22, 333]");
  EXPECT_EQ(convert::python_list({}), "[]");
}

// This Llama 3 tokenizer.json has a ByteLevel post-processor, so Hugging
// Face's encode() adds no <|begin_of_text|>: llama.cpp then finds the
// fingerprint it recorded for Smaug-Llama-3 (same vocabulary, same
// post-processor). With the BOS that Meta-Llama-3-8B's post-processor adds,
// the ids hash to llama.cpp's "llama-bpe" entry.
TEST(ConvertPreTokenizer, Llama3FingerprintsAreLlamaCpps) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/llama3/tokenizer.json");
  const auto choice = convert::choose_pre_tokenizer(json, {});
  EXPECT_EQ(choice.name, "smaug-bpe") << choice.how;
  EXPECT_TRUE(choice.known_fingerprint) << choice.fingerprint;
  std::vector<int32_t> with_bos = {128000};
  with_bos.insert(with_bos.end(), choice.check_ids.begin(), choice.check_ids.end());
  EXPECT_EQ(convert::sha256_hex(convert::python_list(with_bos)),
            "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5");
}

TEST(ConvertPreTokenizer, Qwen3FingerprintIsLlamaCppsQwen2) {
  REQUIRE_SHARED_MODEL(json, "hf-tokenizers/qwen3/tokenizer.json");
  const auto choice = convert::choose_pre_tokenizer(json, {});
  EXPECT_EQ(choice.name, "qwen2") << choice.how;
  EXPECT_TRUE(choice.known_fingerprint) << choice.fingerprint;
}

TEST(ConvertPreTokenizer, OuroFixtureFallsBackToItsFamily) {
  REQUIRE_SHARED_MODEL(json, "ouro/tokenizer.json");
  const auto choice = convert::choose_pre_tokenizer(json, {});
  EXPECT_EQ(choice.name, "smollm");
  EXPECT_FALSE(choice.known_fingerprint);  // a 512-token vocabulary llama.cpp never saw
}

TEST(ConvertPreTokenizer, RefusesAnUnknownPreTokenizer) {
  const std::string path = test::temp_path("tokenizer.json");
  test::write_text(path, R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                             "pre_tokenizer": {"type": "Whitespace"}})");
  try {
    convert::choose_pre_tokenizer(path, {});
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("Whitespace"), std::string::npos) << m;
    EXPECT_NE(m.find("is not one flatline knows"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace flatline
