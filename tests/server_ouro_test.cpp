// A looped model (Ouro) through the server: the loop policy per request
// (options loops / exit_threshold / exit_mode, or top-level fields in the
// OpenAI API), `loops_used` in the final response, and state-cache entries
// that never cross policies. Outside truth: the greedy ids of ByteDance's
// modeling_ouro.py for the fixture's prompt (../shared/models/ouro/golden/
// generate.json), at the default policy and at exit thresholds 0.3/0.5/0.8.
#include <gtest/gtest.h>

#include <fstream>

#include "convert_support.h"
#include "server_test_support.h"
#include "test_support.h"

namespace flatline {
namespace {

using test::json;

json golden_generate() {
  std::ifstream f(test::shared_model("ouro/golden/generate.json"));
  return json::parse(f);
}

class ServerOuro : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::shared_model("ouro/config.json").empty())
      GTEST_SKIP() << "fixture ../shared/models/ouro not found (set FLATLINE_SHARED_DIR)";
    dir_ = std::make_unique<test::TempDir>("server-ouro");
    test::run_convert(test::shared_model("ouro"), dir_->file("ouro.gguf"), "f32");
    test::write_random_rwkv7(dir_->file("rwkv.gguf"), 1);
    server_ = std::make_unique<test::TestServer>(test::test_server_options(dir_->path()));
    gen_ = golden_generate();
  }

  // A raw greedy /api/generate of the fixture's prompt with these extra options.
  test::HttpReply generate(const std::string& model, json extra) {
    json options{{"temperature", 0}, {"num_predict", gen_["n_new"]}};
    options.update(extra);
    return test::post(*server_, "/api/generate",
                      json{{"model", model}, {"prompt", gen_["prompt_text"]}, {"raw", true}, {"stream", false},
                           {"options", options}});
  }

  // The reply text of greedy ids as the server writes it: special tokens
  // not rendered, bytes that are not UTF-8 replaced by U+FFFD the way the
  // server's JSON writer does. (A raw /api/generate returns no `context`.)
  std::string expected_text(const json& ids) {
    if (!model_) model_ = test::load(dir_->file("ouro.gguf"));
    std::string bytes;
    for (int32_t id : ids.get<std::vector<int32_t>>()) bytes += model_->tokenizer().token_bytes(id, false);
    return json::parse(json(bytes).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
  }

  // loops_used: one per evaluated prompt token, then one per generated token
  // fed back (all but the last of a reply cut at num_predict).
  static void expect_loop_count(const json& r) {
    EXPECT_EQ(r["loops_used"].size(), r["prompt_eval_count"].get<size_t>() + r["eval_count"].get<size_t>() - 1)
        << r.dump();
  }

  std::unique_ptr<test::TempDir> dir_;
  std::unique_ptr<test::TestServer> server_;
  json gen_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(ServerOuro, EachRequestChoosesItsLoopPolicyAndGetsTheAuthorsGreedyIds) {
  auto def = generate("ouro", json::object());
  ASSERT_EQ(def.status, 200) << def.body;
  EXPECT_EQ(def.js()["response"], expected_text(gen_["greedy_ids"]));
  const auto loops = def.js()["loops_used"].get<std::vector<int32_t>>();
  expect_loop_count(def.js());
  EXPECT_EQ(loops, std::vector<int32_t>(loops.size(), 4)) << "the fixture's default runs all 4 loops";
  EXPECT_DOUBLE_EQ(def.js()["loops_mean"].get<double>(), 4.0);

  for (const char* q : {"0.3", "0.5", "0.8"}) {
    auto r = generate("ouro", json{{"exit_threshold", std::stod(q)}, {"exit_mode", "select"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.js()["response"], expected_text(gen_["greedy_ids_exit_threshold"][q])) << "q " << q;
    EXPECT_EQ(r.js()["prompt_eval_count"], gen_["prompt_ids"].size()) << "q " << q << ": a policy of its own";
    expect_loop_count(r.js());
    for (int32_t n : r.js()["loops_used"].get<std::vector<int32_t>>()) {
      EXPECT_GE(n, 1);
      EXPECT_LE(n, 4);
    }
  }
  // The 0.3 select run exits some prompt tokens early (gates.json): the
  // loops it reports are not all 4.
  auto low = generate("ouro", json{{"exit_threshold", 0.3}, {"exit_mode", "select"}});
  ASSERT_EQ(low.status, 200);
  EXPECT_LT(low.js()["loops_mean"].get<double>(), 4.0);

  auto two = generate("ouro", json{{"loops", 2}});
  ASSERT_EQ(two.status, 200) << two.body;
  const auto two_loops = two.js()["loops_used"].get<std::vector<int32_t>>();
  expect_loop_count(two.js());
  EXPECT_EQ(two_loops, std::vector<int32_t>(two_loops.size(), 2));
  EXPECT_EQ(two.js()["prompt_eval_count"], gen_["prompt_ids"].size()) << "a 2-loop state is not a 4-loop one";

  // The same request again reuses its own policy's snapshot; the default
  // policy still gets the default's reply from its own.
  auto two_again = generate("ouro", json{{"loops", 2}});
  ASSERT_EQ(two_again.status, 200);
  EXPECT_EQ(two_again.js()["prompt_eval_count"], 0);
  EXPECT_EQ(two_again.js()["response"], two.js()["response"]);
  auto def_again = generate("ouro", json::object());
  ASSERT_EQ(def_again.status, 200);
  EXPECT_EQ(def_again.js()["prompt_eval_count"], 0);
  EXPECT_EQ(def_again.js()["response"], expected_text(gen_["greedy_ids"]));
}

TEST_F(ServerOuro, OpenAiTakesTheLoopFieldsAtTheTopLevel) {
  auto r = test::post(*server_, "/v1/completions",
                      json{{"model", "ouro"}, {"prompt", gen_["prompt_text"]}, {"max_tokens", 4}, {"temperature", 0},
                           {"loops", 1}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto loops = r.js()["loops_used"].get<std::vector<int32_t>>();
  EXPECT_FALSE(loops.empty());
  EXPECT_EQ(loops, std::vector<int32_t>(loops.size(), 1));
}

TEST_F(ServerOuro, BadLoopOptionsAreRefusedWithAMessage) {
  auto expect = [&](const std::string& model, json extra, const std::string& fragment) {
    auto r = generate(model, extra);
    EXPECT_EQ(r.status, 400) << extra.dump();
    EXPECT_NE(r.body.find(fragment), std::string::npos) << r.body;
  };
  expect("ouro", json{{"loops", 7}}, "loops must be a whole number from 1 to 4");
  expect("ouro", json{{"loops", 1.5}}, "loops must be a whole number from 1 to 4");
  expect("ouro", json{{"loops", "two"}}, "option \\\"loops\\\" must be of type float32");
  expect("ouro", json{{"exit_threshold", 2}}, "exit_threshold must be between 0 and 1");
  expect("ouro", json{{"exit_mode", "fast"}}, "exit_mode must be select or skip");
  expect("rwkv", json{{"loops", 2}}, "are for looped models (Ouro)");
  // Nothing was lost: the model still answers with its own policy.
  auto ok = generate("ouro", json::object());
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(ok.js()["response"], expected_text(gen_["greedy_ids"]));
}

}  // namespace
}  // namespace flatline
