// RWKV World tokenizer against llama.cpp's ids (rwkv-world.tokenize.json),
// against a slow reference built here from the original vocab file
// (rwkv_vocab_v20230424.txt, Python literals), and the byte-level 256-token
// vocab of the tiny RWKV-7 model.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "test_support.h"
#include "tokenizer/rwkv_tokenizer.h"
#include "tokenizer_support.h"
#include "util/error.h"

namespace flatline {
namespace {

using test::load_tokenizer;

// --- independent reference: the original vocab file ----------------------

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Parses one Python str or bytes literal ('...', "...", b'...'). In a str,
// \xNN and \uNNNN are code points (stored as UTF-8); in bytes, \xNN is a byte.
std::string parse_python_literal(const std::string& lit) {
  size_t i = 0;
  const bool is_bytes = lit[0] == 'b';
  if (is_bytes) ++i;
  const char quote = lit[i++];
  const size_t end = lit.rfind(quote);
  std::string out;
  auto hex = [&](size_t from, size_t n) { return static_cast<uint32_t>(std::stoul(lit.substr(from, n), nullptr, 16)); };
  while (i < end) {
    char c = lit[i++];
    if (c != '\\') {
      out += c;
      continue;
    }
    char e = lit[i++];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'x':
        if (is_bytes) out += static_cast<char>(hex(i, 2));
        else append_utf8(out, hex(i, 2));
        i += 2;
        break;
      case 'u': append_utf8(out, hex(i, 4)); i += 4; break;
      case 'U': append_utf8(out, hex(i, 8)); i += 8; break;
      default: out += e;
    }
  }
  return out;
}

struct ReferenceVocab {
  std::map<std::string, int32_t> ids;  // bytes -> GGUF id (the file's ids are 1-based; GGUF id 0 is <s>)
  size_t max_length = 0;
};

const ReferenceVocab& reference_vocab(const std::string& path) {
  static ReferenceVocab vocab = [&] {
    ReferenceVocab v;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const size_t first = line.find(' ');
      const size_t last = line.rfind(' ');
      const int32_t id = std::stoi(line.substr(0, first));
      const std::string bytes = parse_python_literal(line.substr(first + 1, last - first - 1));
      EXPECT_EQ(bytes.size(), std::stoul(line.substr(last + 1))) << line;
      v.ids[bytes] = id;
      v.max_length = std::max(v.max_length, bytes.size());
    }
    return v;
  }();
  return vocab;
}

// Greedy longest match by trying every length, longest first.
std::vector<int32_t> reference_encode(const ReferenceVocab& v, const std::string& text) {
  std::vector<int32_t> out;
  for (size_t pos = 0; pos < text.size();) {
    for (size_t len = std::min(v.max_length, text.size() - pos); len > 0; --len) {
      auto it = v.ids.find(text.substr(pos, len));
      if (it != v.ids.end()) {
        out.push_back(it->second);
        pos += len;
        break;
      }
    }
  }
  return out;
}

// --- RWKV World (65536 tokens) --------------------------------------------

TEST(RwkvTokenizer, MatchesLlamaCppIdsOnAllFixtureStrings) {
  REQUIRE_SHARED_MODEL(vocab_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  REQUIRE_SHARED_MODEL(cases_path, "rwkv-world-vocab/rwkv-world.tokenize.json");
  auto t = load_tokenizer(vocab_path);
  std::ifstream in(cases_path);
  const auto cases = nlohmann::json::parse(in);
  ASSERT_EQ(cases.size(), 15u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    const auto ids = t.tokenizer->encode(text);
    EXPECT_EQ(test::ids_to_string(ids), test::ids_to_string(expected)) << "text: " << text;
    EXPECT_EQ(t.tokenizer->decode(ids), text);
  }
}

TEST(RwkvTokenizer, MetadataRolesAndSpecialTokens) {
  REQUIRE_SHARED_MODEL(vocab_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  auto t = load_tokenizer(vocab_path);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.model_kind(), "rwkv");
  EXPECT_EQ(tok.n_vocab(), 65536);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 0);
  EXPECT_EQ(tok.eot_id(), 261);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.is_end_of_generation(0));
  EXPECT_TRUE(tok.is_end_of_generation(261));
  EXPECT_FALSE(tok.is_end_of_generation(11));  // "\n"
  EXPECT_EQ(tok.end_of_generation_ids(), (std::vector<int32_t>{0, 261}));
  EXPECT_EQ(tok.find_token("\n\n"), 261);
  EXPECT_EQ(tok.find_token("<s>"), 0);
  EXPECT_EQ(tok.token_type(0), TokenType::Control);
  EXPECT_EQ(tok.token_type(65535), TokenType::Unused);
  EXPECT_EQ(tok.token_bytes(0), "");
  EXPECT_EQ(tok.token_bytes(0, true), "<s>");
  EXPECT_EQ(tok.token_bytes(261), "\n\n");
  EXPECT_THROW(tok.token_bytes(65536), Error);
  EXPECT_THROW(tok.token_bytes(-1), Error);
  // "<s>" is text unless special tokens are parsed.
  EXPECT_EQ(tok.encode("<s>", true), (std::vector<int32_t>{0}));
  const auto plain = tok.encode("<s>", false);
  EXPECT_EQ(tok.decode(plain), "<s>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 0), 0);
  EXPECT_EQ(tok.encode("User: hi<s>\n\n", true).back(), 261);
  EXPECT_TRUE(tok.encode("").empty());
  // Unused [PADn] tokens are not text either.
  const auto pad = tok.encode("[PAD65535]", true);
  EXPECT_EQ(pad, tok.encode("[PAD65535]"));
  EXPECT_EQ(std::count(pad.begin(), pad.end(), 65535), 0);
  EXPECT_EQ(tok.decode(pad), "[PAD65535]");
}

TEST(RwkvTokenizer, TokenBytesMatchTheOriginalVocabFile) {
  REQUIRE_SHARED_MODEL(vocab_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  REQUIRE_SHARED_MODEL(txt_path, "rwkv-world-vocab/rwkv_vocab_v20230424.txt");
  auto t = load_tokenizer(vocab_path);
  const ReferenceVocab& ref = reference_vocab(txt_path);
  ASSERT_EQ(ref.ids.size(), 65529u);
  for (const auto& [bytes, id] : ref.ids) {
    ASSERT_EQ(t.tokenizer->token_bytes(id), bytes) << "id " << id;
    ASSERT_EQ(t.tokenizer->find_token(bytes), id);
  }
}

TEST(RwkvTokenizer, GreedyLongestMatchAgreesWithSlowReference) {
  REQUIRE_SHARED_MODEL(vocab_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  REQUIRE_SHARED_MODEL(txt_path, "rwkv-world-vocab/rwkv_vocab_v20230424.txt");
  auto t = load_tokenizer(vocab_path);
  const ReferenceVocab& ref = reference_vocab(txt_path);
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string text = i % 3 == 0 ? test::random_utf8(rng, 60) : i % 3 == 1 ? test::random_text(rng, 40)
                                                                           : test::random_bytes(rng, 80);
    ASSERT_EQ(test::ids_to_string(t.tokenizer->encode(text)), test::ids_to_string(reference_encode(ref, text)))
        << "case " << i;
  }
}

TEST(RwkvTokenizer, RoundTripsArbitraryBytesAndUtf8) {
  REQUIRE_SHARED_MODEL(vocab_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  auto t = load_tokenizer(vocab_path);
  std::mt19937 rng(42);
  for (int i = 0; i < 500; ++i) {
    const std::string bytes = test::random_bytes(rng, 200);
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(bytes)), bytes);
    const std::string utf8 = test::random_utf8(rng, 100);
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(utf8)), utf8);
    const std::string text = test::random_text(rng, 50);
    ASSERT_EQ(t.tokenizer->decode(t.tokenizer->encode(text)), text);
  }
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  EXPECT_EQ(t.tokenizer->decode(t.tokenizer->encode(all_bytes)), all_bytes);
}

// --- the tiny RWKV-7 model's byte vocabulary --------------------------------

TEST(RwkvTokenizer, TinyModelByteVocabularyIsIdentity) {
  REQUIRE_SHARED_MODEL(path, "tiny-rwkv7-834K-f32.gguf");
  auto t = load_tokenizer(path);
  const Tokenizer& tok = *t.tokenizer;
  EXPECT_EQ(tok.n_vocab(), 256);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.eos_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  std::string all_bytes;
  std::vector<int32_t> expected;
  for (int b = 0; b < 256; ++b) {
    all_bytes += static_cast<char>(b);
    expected.push_back(b);
    EXPECT_EQ(tok.token_bytes(b), std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(tok.encode(all_bytes), expected);
  EXPECT_EQ(tok.encode("\"in"), (std::vector<int32_t>{34, 105, 110}));  // the rwkv.cpp logits fixture input
  std::mt19937 rng(7);
  for (int i = 0; i < 100; ++i) {
    const std::string s = test::random_bytes(rng, 100);
    const auto ids = tok.encode(s);
    ASSERT_EQ(ids.size(), s.size());
    for (size_t k = 0; k < s.size(); ++k) ASSERT_EQ(ids[k], static_cast<uint8_t>(s[k]));
    ASSERT_EQ(tok.decode(ids), s);
  }
}

// --- escapes ----------------------------------------------------------------

TEST(RwkvTokenizer, UnescapesPythonReprEscapes) {
  using tokenizer_detail::unescape_rwkv_token;
  EXPECT_EQ(unescape_rwkv_token("abc"), "abc");
  EXPECT_EQ(unescape_rwkv_token("\\x00\\xff\\xAB"), std::string("\x00\xff\xab", 3));
  EXPECT_EQ(unescape_rwkv_token("\\t\\n\\r"), "\t\n\r");
  EXPECT_EQ(unescape_rwkv_token("\\\\ \\' \\\""), "\\ ' \"");
  EXPECT_THROW(unescape_rwkv_token("\\x4"), Error);
  EXPECT_THROW(unescape_rwkv_token("\\xzz"), Error);
  EXPECT_THROW(unescape_rwkv_token("abc\\"), Error);
}

}  // namespace
}  // namespace flatline
