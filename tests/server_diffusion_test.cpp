// Diffusion models through the server: /api/generate, /api/chat and the
// OpenAI routes run LLaDA / Dream with the diffusion_* options; the reply is
// the one the generator gives in process for the same prompt (itself checked
// against llama.cpp in diffusion_test.cpp); streaming with diffusion_canvas
// sends the canvas after every step; bad options and canvases over the
// context are refused before anything streams.
#include <gtest/gtest.h>

#include <filesystem>

#include "model_test_util.h"
#include "runtime/diffusion.h"
#include "server_test_support.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

class ServerDiffusion : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("server-diffusion");
    for (const char* name : {"llada", "dream"}) {
      const std::string src = test::shared_model(std::string("random/") + name + ".gguf");
      if (src.empty()) return;
      std::filesystem::copy_file(src, dir_->path() + "/" + name + ".gguf");
    }
    server_ = new TestServer(test::test_server_options(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "random/llada.gguf and random/dream.gguf not found under ../shared/models (set FLATLINE_SHARED_DIR)";
  }
  static const TestServer& srv() { return *server_; }

  // What the generator gives in process for a raw prompt (greedy options).
  static GenerateResult in_process(const std::string& model, const std::string& prompt, const GenerateOptions& g) {
    LoadOptions o;
    o.pool = test::test_pool(1);
    auto lm = LoadedModel::load(dir_->path() + "/" + model + ".gguf", o, nullptr, 256);
    Engine engine(*lm);
    Conversation conv = engine.new_conversation(256);
    return DiffusionGenerator(engine).generate(conv, prompt, g, {});
  }

  static test::TempDir* dir_;
  static TestServer* server_;
};
test::TempDir* ServerDiffusion::dir_ = nullptr;
TestServer* ServerDiffusion::server_ = nullptr;

json greedy_options(int n, int steps) {
  return json{{"num_predict", n}, {"diffusion_steps", steps}, {"temperature", 0}};
}

TEST_F(ServerDiffusion, GenerateGivesTheGeneratorsReplyAndHonestCounts) {
  GenerateOptions g;
  g.use_template_stops = false;
  g.sampling.temperature = 0;
  g.num_predict = 12;
  g.diffusion.steps = 12;
  for (const char* model : {"llada", "dream"}) {
    auto r = test::post(srv(), "/api/generate",
                        json{{"model", model}, {"prompt", "The quick brown fox"}, {"raw", true}, {"stream", false},
                             {"options", greedy_options(12, 12)}});
    ASSERT_EQ(r.status, 200) << r.body;
    const json j = json::parse(r.body);
    const GenerateResult want = in_process(model, "The quick brown fox", g);
    // Random weights write split UTF-8: the server's JSON replaces it as json's replace handler does.
    const json expected = json::parse(json(want.text).dump(-1, ' ', false, json::error_handler_t::replace));
    EXPECT_EQ(j["response"], expected) << model;
    EXPECT_EQ(j["eval_count"], want.eval_count) << model;
    EXPECT_EQ(j["prompt_eval_count"], want.prompt_eval_count) << model;
    EXPECT_EQ(j["diffusion_steps"], 12) << model;
    EXPECT_EQ(j["diffusion_full_passes"], 12) << model;
  }
}

TEST_F(ServerDiffusion, EveryChatTurnProcessesItsWholePrompt) {
  // Bidirectional states cannot be continued: no cache, and the counts say so.
  json messages = json::array({json{{"role", "user"}, {"content", "Hello there"}}});
  int64_t previous = 0;
  for (int turn = 0; turn < 2; ++turn) {
    auto r = test::post(srv(), "/api/chat",
                        json{{"model", "llada"}, {"messages", messages}, {"stream", false}, {"options", greedy_options(8, 8)}});
    ASSERT_EQ(r.status, 200) << r.body;
    const json j = json::parse(r.body);
    EXPECT_GT(j["prompt_eval_count"].get<int64_t>(), previous) << "turn " << turn;
    previous = j["prompt_eval_count"].get<int64_t>();
    messages.push_back(j["message"]);
    messages.push_back(json{{"role", "user"}, {"content", "And then?"}});
  }
}

TEST_F(ServerDiffusion, StreamingSendsTheCanvasAfterEveryStep) {
  std::string body;
  test::post_streaming(srv(), "/api/generate",
                       json{{"model", "llada"}, {"prompt", "Once upon a time"}, {"raw", true},
                            {"options", {{"num_predict", 8}, {"diffusion_steps", 4}, {"temperature", 0}, {"diffusion_canvas", true}}}},
                       [&](const std::string& chunk) { body += chunk; return true; });
  const auto lines = test::ndjson_lines(body);
  std::vector<json> canvases;
  std::string text;
  for (const auto& l : lines) {
    if (l.contains("canvas")) canvases.push_back(l);
    else text += l.value("response", "");
  }
  ASSERT_EQ(canvases.size(), 4u) << body;
  for (size_t s = 0; s < canvases.size(); ++s) {
    EXPECT_EQ(canvases[s]["step"], static_cast<int64_t>(s + 1));
    EXPECT_EQ(canvases[s]["steps"], 4);
    EXPECT_FALSE(canvases[s]["done"].get<bool>());
  }
  // Two masks filled per step: 6, 4, 2, 0 left.
  auto masks = [](const std::string& c) {
    size_t n = 0;
    for (size_t at = c.find("\u2591"); at != std::string::npos; at = c.find("\u2591", at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(masks(canvases[0]["canvas"]), 6u);
  EXPECT_EQ(masks(canvases[3]["canvas"]), 0u);
  EXPECT_EQ(canvases[3]["canvas"].get<std::string>(), text);
  EXPECT_TRUE(lines.back()["done"].get<bool>());
  // OpenAI streaming carries the same events as extra fields on empty deltas.
  std::string sse;
  test::post_streaming(srv(), "/v1/chat/completions",
                       json{{"model", "dream"}, {"messages", json::array({json{{"role", "user"}, {"content", "hi"}}})},
                            {"stream", true}, {"max_tokens", 6}, {"diffusion_steps", 3}, {"diffusion_canvas", true}},
                       [&](const std::string& chunk) { sse += chunk; return true; });
  int canvas_events = 0;
  for (const auto& e : test::sse_events(sse))
    if (e != "[DONE]" && json::parse(e).contains("canvas")) ++canvas_events;
  EXPECT_EQ(canvas_events, 3) << sse;
}

TEST_F(ServerDiffusion, BadOptionsAndOversizedCanvasesAreRefusedUpFront) {
  auto r = test::post(srv(), "/api/generate",
                      json{{"model", "llada"}, {"prompt", "x"}, {"options", {{"diffusion_algorithm", "fastest"}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unknown diffusion algorithm 'fastest'"), std::string::npos) << r.body;
  r = test::post(srv(), "/api/generate", json{{"model", "llada"}, {"prompt", "x"}, {"options", {{"diffusion_steps", -3}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("diffusion_steps"), std::string::npos) << r.body;
  r = test::post(srv(), "/api/generate", json{{"model", "llada"}, {"prompt", "x"}, {"options", {{"diffusion_eps", 3.0}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  // Streaming request (the default): the refusal is a 400, not an error line mid-stream.
  r = test::post(srv(), "/api/generate",
                 json{{"model", "llada"}, {"prompt", "x"}, {"options", {{"num_ctx", 32}, {"num_predict", 100}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("the canvas needs"), std::string::npos) << r.body;
  r = test::post(srv(), "/v1/completions", json{{"model", "llada"}, {"prompt", "x"}, {"diffusion_algorithm", 5}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("diffusion_algorithm must be of type string"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace flatline
