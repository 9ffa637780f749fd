// The chat page's server side (issue 16): GET / answers the page to a
// browser and Ollama's banner to everyone else, /ui/<file> serves the files
// of web/ byte for byte (the source tree is the outside truth of what was
// embedded), and GET /flatline/stats reports the last turn's figures, which
// are checked against the /api/chat replies themselves and the kernel's
// /proc/self/status (the server runs in this process).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

std::string source_file(const std::string& relative) {
  std::ifstream in(test::source_dir() + "/" + relative, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// VmRSS of this process, from the kernel.
uint64_t kernel_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

class ServerWeb : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Error);
    dir_ = std::make_unique<test::TempDir>("web-models");
    test::write_random_rwkv7(dir_->file("random.gguf"), 1);
  }
  void TearDown() override { set_log_level(LogLevel::Info); }

  server::ServerOptions options() const { return test::test_server_options(dir_->path()); }

  static httplib::Result get(const TestServer& s, const std::string& path, const httplib::Headers& headers = {}) {
    return s.client()->Get(path, headers);
  }

  std::unique_ptr<test::TempDir> dir_;
};

TEST_F(ServerWeb, ABrowserGetsTheChatPageAndOtherClientsOllamasBanner) {
  TestServer s(options());
  auto page = get(s, "/", {{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page->body, source_file("web/index.html"));
  // No inline script and no other origin: model output that escaped the
  // page's own escaping still could not run.
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;

  for (const httplib::Headers& h : {httplib::Headers{}, httplib::Headers{{"Accept", "*/*"}},
                                    httplib::Headers{{"Accept", "application/json"}}}) {
    auto banner = get(s, "/", h);
    ASSERT_TRUE(banner);
    EXPECT_EQ(banner->status, 200);
    EXPECT_EQ(banner->body, "Ollama is running");
  }
}

TEST_F(ServerWeb, EveryFileOfWebIsServedUnderUiWithItsTypeAndRevalidates) {
  TestServer s(options());
  int served = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/web")) {
    const std::string name = entry.path().filename().string();
    auto r = get(s, "/ui/" + name);
    ASSERT_TRUE(r) << name;
    EXPECT_EQ(r->status, 200) << name;
    EXPECT_EQ(r->body, source_file("web/" + name)) << name;
    const std::string ext = entry.path().extension().string();
    const std::string type = r->get_header_value("Content-Type");
    const std::map<std::string, std::string> types{{".html", "text/html; charset=utf-8"},
                                                   {".js", "text/javascript; charset=utf-8"},
                                                   {".css", "text/css; charset=utf-8"},
                                                   {".svg", "image/svg+xml"}};
    ASSERT_TRUE(types.count(ext)) << name << ": a file type this test does not know";
    EXPECT_EQ(type, types.at(ext)) << name;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << name;
    const std::string etag = r->get_header_value("ETag");
    ASSERT_FALSE(etag.empty()) << name;
    auto again = get(s, "/ui/" + name, {{"If-None-Match", etag}});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 304) << name;
    EXPECT_TRUE(again->body.empty()) << name;
    ++served;
  }
  EXPECT_GE(served, 4);  // index.html, app.js, style.css, markdown.js at least
}

TEST_F(ServerWeb, UnknownOrEscapingUiPathsAreNotFound) {
  TestServer s(options());
  for (const std::string path : {"/ui/nothing.js", "/ui/", "/ui/..%2fCMakeLists.txt", "/ui/../CMakeLists.txt"}) {
    auto r = get(s, path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(r->body.find("cmake_minimum_required"), std::string::npos) << path;
  }
}

TEST_F(ServerWeb, ThePageLoadsWithoutAnApiKeyButTheStatsNeedIt) {
  server::ServerOptions o = options();
  o.access.api_key = "page-key";
  TestServer s(o);
  auto page = get(s, "/", {{"Accept", "text/html"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  auto script = get(s, "/ui/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  auto refused = get(s, "/flatline/stats");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  auto allowed = get(s, "/flatline/stats", {{"Authorization", "Bearer page-key"}});
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->status, 200);
}

json chat_body(const json& messages) {
  return json{{"model", "random"},
              {"messages", messages},
              {"stream", false},
              {"options", {{"temperature", 0}, {"num_predict", 12}}}};
}

TEST_F(ServerWeb, StatsReportTheLastTurnAsItsReplySaidWithMemoryFromTheKernel) {
  TestServer s(options());
  json before = test::get(s, "/flatline/stats").js();
  EXPECT_TRUE(before["last_turn"].is_null()) << before.dump();
  EXPECT_GT(before["resident_memory_bytes"].get<uint64_t>(), 0u);

  json messages = json::array({json{{"role", "user"}, {"content", "hello there, how are you"}}});
  json first = test::post(s, "/api/chat", chat_body(messages)).js();
  json t1 = test::get(s, "/flatline/stats").js()["last_turn"];
  ASSERT_TRUE(t1.is_object());
  EXPECT_EQ(t1["sequence"], 1);
  EXPECT_EQ(t1["model"], "random");
  EXPECT_EQ(t1["prompt_eval_count"], first["prompt_eval_count"]);
  EXPECT_EQ(t1["eval_count"], first["eval_count"]);
  EXPECT_EQ(t1["prompt_eval_duration"], first["prompt_eval_duration"]);
  EXPECT_EQ(t1["eval_duration"], first["eval_duration"]);
  EXPECT_EQ(t1["done_reason"], first["done_reason"]);
  EXPECT_EQ(t1["cached_tokens"], 0);
  EXPECT_EQ(t1["prompt_tokens"], first["prompt_eval_count"]);

  // The second turn resends the history: only the new message is processed,
  // the rest comes from the cached state.
  messages.push_back(first["message"]);
  messages.push_back(json{{"role", "user"}, {"content", "tell me more"}});
  json second = test::post(s, "/api/chat", chat_body(messages)).js();
  const uint64_t rss_low = kernel_rss_bytes();
  json stats = test::get(s, "/flatline/stats").js();
  const uint64_t rss_high = kernel_rss_bytes();
  json t2 = stats["last_turn"];
  EXPECT_EQ(t2["sequence"], 2);
  EXPECT_EQ(t2["prompt_eval_count"], second["prompt_eval_count"]);
  EXPECT_GT(t2["cached_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(t2["prompt_tokens"].get<int64_t>(),
            t2["cached_tokens"].get<int64_t>() + t2["prompt_eval_count"].get<int64_t>());
  EXPECT_LT(t2["prompt_eval_count"].get<int64_t>(), t2["prompt_tokens"].get<int64_t>());

  // RWKV-7's state is fixed: 2 layers x (64x64 WKV matrix + two 64-wide
  // token-shift vectors) in f32, plus the state object's own few hundred
  // bytes, the same whatever the history's length.
  const uint64_t tensors = 2 * (64 * 64 + 2 * 64) * 4;
  EXPECT_GE(t1["state_bytes"].get<uint64_t>(), tensors) << t1.dump();
  EXPECT_LT(t1["state_bytes"].get<uint64_t>(), tensors + 4096) << t1.dump();
  EXPECT_EQ(t2["state_bytes"], t1["state_bytes"]) << t2.dump();
  EXPECT_EQ(t2["state_kv_bytes"], 0);

  // Resident memory as the kernel counts it, read around the request (other
  // threads may allocate in between, so within a few MiB).
  const double rss = stats["resident_memory_bytes"].get<double>();
  EXPECT_GT(rss, static_cast<double>(rss_low) - 8.0 * (1 << 20));
  EXPECT_LT(rss, static_cast<double>(rss_high) + 8.0 * (1 << 20));
  EXPECT_GT(t2["resident_memory_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(stats["state_cache"]["bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(stats["state_cache"]["hits"].get<int64_t>(), 1);
  ASSERT_EQ(stats["models"].size(), 1u);
  EXPECT_EQ(stats["models"][0]["name"], "random");
}

}  // namespace
}  // namespace flatline
