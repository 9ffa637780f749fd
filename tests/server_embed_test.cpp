// /api/embed, /api/embeddings and /v1/embeddings over HTTP on a random-weight
// RWKV-7: each vector equals a reference computed here (the model's hidden
// state after the last token, fed one token at a time, L2-normalised in
// double), batches equal single requests, `dimensions` and base64 follow
// Ollama / OpenAI, and every bad input gets a 400 that says what was wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "server_raw_support.h"
#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

class ServerEmbedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_log_level(LogLevel::Warn);
    dir_ = new test::TempDir("server-embed");
    test::write_random_rwkv7(dir_->file("random.gguf"), 1);
    // The same weights declaring mean pooling: an "embedding model" for Ollama.
    test::copy_gguf(dir_->file("random.gguf"), dir_->file("pooled.gguf"), {},
                    [](gguf::Writer& w) { w.add_uint32("rwkv7.pooling_type", 1); });
    server_ = new TestServer(test::test_server_options(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    set_log_level(LogLevel::Info);
  }
  static const TestServer& srv() { return *server_; }

  // The reference: token by token into one state, the last hidden state,
  // normalised in double; the first `dims` entries only when given.
  static std::vector<double> reference(const std::string& text, size_t dims = 0) {
    auto lm = test::load(dir_->file("random.gguf"));
    Engine engine(*lm);
    const Model& model = lm->model();
    auto state = model.new_state(0);
    std::vector<float> h(static_cast<size_t>(model.info().n_embd));
    for (int32_t id : engine.tokenize_prompt(text)) {
      SequenceInput in{state.get(), std::span<const int32_t>(&id, 1), LogitsMode::Last, h.data(), nullptr};
      ForwardArgs args;
      args.sequences = std::span<const SequenceInput>(&in, 1);
      args.hidden = true;
      model.forward(args, engine.workspace());
    }
    if (dims > 0) h.resize(dims);
    double norm = 0;
    for (float x : h) norm += static_cast<double>(x) * x;
    std::vector<double> out;
    for (float x : h) out.push_back(x / std::sqrt(norm));
    return out;
  }

  static double max_diff(const json& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < want.size(); ++i) m = std::max(m, std::fabs(got[i].get<double>() - want[i]));
    return m;
  }

  // A 400 whose error message contains `text`.
  static void expect_400(const std::string& path, const json& body, const std::string& text) {
    auto r = test::post(srv(), path, body);
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    const std::string message = path.rfind("/v1/", 0) == 0 ? j["error"]["message"].get<std::string>()
                                                           : j["error"].get<std::string>();
    EXPECT_NE(message.find(text), std::string::npos) << body.dump() << " -> " << message;
  }

  static test::TempDir* dir_;
  static TestServer* server_;
};
test::TempDir* ServerEmbedTest::dir_ = nullptr;
TestServer* ServerEmbedTest::server_ = nullptr;

TEST_F(ServerEmbedTest, EmbedGivesTheNormalisedLastHiddenState) {
  auto r = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", "hello world"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j["model"], "random");
  ASSERT_EQ(j["embeddings"].size(), 1u);
  EXPECT_LT(max_diff(j["embeddings"][0], reference("hello world")), 1e-5);
  double norm = 0;
  for (const auto& x : j["embeddings"][0]) norm += x.get<double>() * x.get<double>();
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_EQ(j["prompt_eval_count"], 11);  // one token per byte, no BOS
  for (const char* key : {"total_duration", "load_duration"}) EXPECT_TRUE(j[key].is_number_integer()) << key;
  EXPECT_GE(j["total_duration"].get<int64_t>(), j["load_duration"].get<int64_t>());
}

TEST_F(ServerEmbedTest, BatchInputGivesTheSameVectorsAsSingleInputs) {
  const std::vector<std::string> texts = {"a b", "hello world", "xyz, and more text"};
  auto r = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", texts}});
  ASSERT_EQ(r.status, 200) << r.body;
  json batch = r.js();
  ASSERT_EQ(batch["embeddings"].size(), texts.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    json one = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", texts[i]}}).js();
    EXPECT_EQ(batch["embeddings"][i], one["embeddings"][0]) << texts[i];
    tokens += one["prompt_eval_count"].get<int64_t>();
  }
  EXPECT_EQ(batch["prompt_eval_count"], tokens);
}

TEST_F(ServerEmbedTest, DimensionsKeepTheFirstEntriesRenormalised) {
  auto r = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", "hello world"}, {"dimensions", 16}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_LT(max_diff(r.js()["embeddings"][0], reference("hello world", 16)), 1e-5);
  // All of them: the same as none.
  auto all = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", "hello world"}, {"dimensions", 64}});
  auto none = test::post(srv(), "/api/embed", json{{"model", "random"}, {"input", "hello world"}});
  EXPECT_EQ(all.js()["embeddings"], none.js()["embeddings"]);
}

TEST_F(ServerEmbedTest, TruncateCutsToTheContextOrRefuses) {
  json body{{"model", "random"}, {"input", "a long input text"}, {"options", {{"num_ctx", 4}}}};
  auto r = test::post(srv(), "/api/embed", body);  // truncate defaults to true
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["prompt_eval_count"], 4);
  EXPECT_LT(max_diff(r.js()["embeddings"][0], reference("a lo")), 1e-5);
  body["truncate"] = false;
  expect_400("/api/embed", body, "the input length exceeds the context length: input 0 is 17 tokens and the context holds 4");
}

TEST_F(ServerEmbedTest, EmptyInputLoadsTheModelOnly) {
  for (const json& input : {json(""), json::array(), json()}) {
    json body{{"model", "random"}};
    if (!input.is_null()) body["input"] = input;
    auto r = test::post(srv(), "/api/embed", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.js()["embeddings"], json::array());
  }
  auto legacy = test::post(srv(), "/api/embeddings", json{{"model", "random"}, {"prompt", ""}});
  EXPECT_EQ(legacy.js()["embedding"], json::array());
}

TEST_F(ServerEmbedTest, LegacyEmbeddingsAnswerOneVector) {
  auto r = test::post(srv(), "/api/embeddings", json{{"model", "random"}, {"prompt", "hello world"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_LT(max_diff(r.js()["embedding"], reference("hello world")), 1e-5);
}

// Standard base64 back to bytes, for checking the server's encoding.
std::string base64_decode(const std::string& s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = value(c);
    if (v < 0) break;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

TEST_F(ServerEmbedTest, OpenAiFloatBase64AndTokenIds) {
  auto r = test::post(srv(), "/v1/embeddings", json{{"model", "random"}, {"input", {"hello world", "xyz"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json f = r.js();
  EXPECT_EQ(f["object"], "list");
  EXPECT_EQ(f["model"], "random");
  ASSERT_EQ(f["data"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(f["data"][i]["object"], "embedding");
    EXPECT_EQ(f["data"][i]["index"], i);
  }
  EXPECT_LT(max_diff(f["data"][0]["embedding"], reference("hello world")), 1e-5);
  EXPECT_EQ(f["usage"]["prompt_tokens"], 14);
  EXPECT_EQ(f["usage"]["total_tokens"], 14);

  json b = test::post(srv(), "/v1/embeddings",
                      json{{"model", "random"}, {"input", {"hello world", "xyz"}}, {"encoding_format", "base64"}})
               .js();
  for (size_t i = 0; i < 2; ++i) {
    const std::string bytes = base64_decode(b["data"][i]["embedding"].get<std::string>());
    ASSERT_EQ(bytes.size(), 64u * 4);
    for (size_t k = 0; k < 64; ++k) {
      uint32_t u = 0;
      for (int byte = 0; byte < 4; ++byte) u |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[k * 4 + byte])) << (8 * byte);
      float x;
      std::memcpy(&x, &u, 4);
      EXPECT_EQ(x, f["data"][i]["embedding"][k].get<float>()) << i << " " << k;  // little-endian float32, exact
    }
  }
  // Token ids: the ids of "hello world" (byte - 32 in this vocabulary) give its vector.
  json ids = json::array();
  for (char c : std::string("hello world")) ids.push_back(c - 32);
  json t = test::post(srv(), "/v1/embeddings", json{{"model", "random"}, {"input", ids}}).js();
  EXPECT_EQ(t["data"][0]["embedding"], f["data"][0]["embedding"]);
  json tt = test::post(srv(), "/v1/embeddings", json{{"model", "random"}, {"input", {ids, ids}}}).js();
  ASSERT_EQ(tt["data"].size(), 2u);
  EXPECT_EQ(tt["data"][1]["embedding"], f["data"][0]["embedding"]);
  json d = test::post(srv(), "/v1/embeddings", json{{"model", "random"}, {"input", "hello world"}, {"dimensions", 8}}).js();
  EXPECT_LT(max_diff(d["data"][0]["embedding"], reference("hello world", 8)), 1e-5);
}

TEST_F(ServerEmbedTest, BadInputsAreRefusedWithAMessage) {
  const json m = json{{"model", "random"}};
  auto with = [&](json extra) {
    json b = m;
    b.update(extra);
    return b;
  };
  expect_400("/api/embed", with({{"input", 5}}), "invalid input type: input is number");
  expect_400("/api/embed", with({{"input", {"a", 3}}}), "invalid input type: input[1] is number");
  expect_400("/api/embed", with({{"input", {"a", ""}}}), "input[1] is an empty string");
  expect_400("/api/embed", with({{"input", "a"}, {"dimensions", 0}}), "dimensions must be at least 1, found 0");
  expect_400("/api/embed", with({{"input", "a"}, {"dimensions", -3}}), "dimensions must be at least 1, found -3");
  expect_400("/api/embed", with({{"input", "a"}, {"dimensions", "8"}}), "dimensions must be a positive integer, found string");
  expect_400("/api/embed", with({{"input", "a"}, {"dimensions", 65}}),
             "dimensions must be at most 64, the embedding length of random, found 65");
  expect_400("/api/embed", with({{"input", "a"}, {"truncate", "no"}}), "EmbedRequest.truncate of type bool");
  expect_400("/api/embed", json{{"input", "a"}}, "model is required");
  auto unknown = test::post(srv(), "/api/embed", json{{"model", "nope"}, {"input", "a"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("not found"), std::string::npos);
  expect_400("/api/embeddings", with({{"prompt", 3}}), "EmbeddingRequest.prompt of type string");

  expect_400("/v1/embeddings", m, "input is required");
  expect_400("/v1/embeddings", with({{"input", json::array()}}), "input is an empty list");
  expect_400("/v1/embeddings", with({{"input", ""}}), "input is an empty string");
  expect_400("/v1/embeddings", with({{"input", {{"x"}}}}), "input[0][0] is \"x\": token ids are integers");
  expect_400("/v1/embeddings", with({{"input", {1, -1}}}), "input[1] is -1: token ids are integers");
  expect_400("/v1/embeddings", with({{"input", {1, 5000}}}), "token id 5000 is outside the model's vocabulary of 96");
  expect_400("/v1/embeddings", with({{"input", {{1}, json::array()}}}), "input[1] is an empty list of token ids");
  expect_400("/v1/embeddings", with({{"input", {true}}}), "invalid input type: input[0] is bool");
  expect_400("/v1/embeddings", with({{"input", "a"}, {"encoding_format", "hex"}}),
             "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64'].");
  expect_400("/v1/embeddings", with({{"input", "a"}, {"dimensions", 0}}), "dimensions must be at least 1");
}

TEST_F(ServerEmbedTest, CapabilitiesSayEmbedding) {
  auto r = test::post(srv(), "/api/show", json{{"model", "random"}});
  EXPECT_EQ(r.js()["capabilities"], json::array({"completion", "embedding"}));
  r = test::post(srv(), "/api/show", json{{"model", "pooled"}});
  EXPECT_EQ(r.js()["capabilities"], json::array({"embedding"}));  // Ollama's rule: pooling_type declared
  // ... and it pools the mean, as it declares: not the last-token vector.
  json mean = test::post(srv(), "/api/embed", json{{"model", "pooled"}, {"input", "hello world"}}).js();
  EXPECT_GT(max_diff(mean["embeddings"][0], reference("hello world")), 1e-3);
}

}  // namespace
}  // namespace flatline
