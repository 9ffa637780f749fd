// Regression tests for the server's hardening (issue 20) and the handshake
// details clients check (issue 14): each test is named after what used to go
// wrong, builds its own hostile input, and checks the message.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "server_raw_support.h"
#include "server_test_support.h"
#include "util/log.h"
#include "util/system_info.h"

namespace flatline {
namespace {

using test::json;
using test::RawConnection;
using test::TestServer;

class ServerHardening : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Error);
    dir_ = std::make_unique<test::TempDir>("hardening-models");
    test::write_random_rwkv7(dir_->file("random.gguf"), 1);
  }
  void TearDown() override { set_log_level(LogLevel::Info); }

  server::ServerOptions options() const { return test::test_server_options(dir_->path()); }

  static json chat(const std::string& text, int n = 8) {
    return json{{"model", "random"},
                {"messages", json::array({json{{"role", "user"}, {"content", text}}})},
                {"stream", false},
                {"options", {{"temperature", 0}, {"num_predict", n}}}};
  }
  static std::string raw_get(const std::string& path, const std::string& host = "localhost") {
    return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  }
  static std::string raw_post(const std::string& path, const std::string& body, const std::string& extra_headers = "",
                              const std::string& host = "localhost") {
    return "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra_headers + "\r\n" + body;
  }
  // One request on its own connection; the raw response.
  static std::string exchange(int port, const std::string& request, int timeout_ms = 10000) {
    RawConnection c(port);
    EXPECT_TRUE(c.connected());
    c.send(request);
    return c.read(timeout_ms, [](const std::string& r) {
      const size_t head = r.find("\r\n\r\n");
      if (head == std::string::npos) return false;
      const std::string length = test::header_of(r, "Content-Length");
      return !length.empty() && r.size() >= head + 4 + std::stoul(length);
    });
  }
  static std::string body_of(const std::string& response) {
    const size_t head = response.find("\r\n\r\n");
    return head == std::string::npos ? "" : response.substr(head + 4);
  }

  std::unique_ptr<test::TempDir> dir_;
};

// ---------------------------------------------------------------------------
// Denial of service

TEST_F(ServerHardening, HalfOpenConnectionsNoLongerStopEveryEndpoint) {
  server::ServerOptions o = options();
  o.http_threads = 8;  // far fewer workers than half-open connections
  TestServer s(o);
  std::vector<RawConnection> idle;
  for (int i = 0; i < 60; ++i) {
    idle.emplace_back(s.port());  // connected, sends nothing
    RawConnection& slow = idle.emplace_back(s.port());
    slow.send("POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Le");  // headers never finished
  }
  auto c = s.client();
  c->set_read_timeout(10, 0);
  auto r = c->Get("/api/version");
  ASSERT_TRUE(r) << "a fresh request got no answer while 120 connections were half-open";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(test::post(s, "/api/chat", chat("hello")).status, 200);
}

TEST_F(ServerHardening, AtTheConnectionCapIdleConnectionsAreClosedOldestFirst) {
  server::ServerOptions o = options();
  o.transport.max_connections = 16;
  TestServer s(o);
  std::vector<RawConnection> idle;
  for (int i = 0; i < 40; ++i) {
    idle.emplace_back(s.port());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct activity times
  }
  // The request still gets through: the least recently active idle
  // connections made room.
  const std::string r = exchange(s.port(), raw_get("/api/version"));
  EXPECT_EQ(test::status_of(r), 200) << r;
  EXPECT_TRUE(idle.front().wait_closed(5000)) << "the oldest idle connection should have been closed";
  const std::string metrics = body_of(exchange(s.port(), raw_get("/metrics")));
  EXPECT_NE(metrics.find("flatline_http_connections_evicted_total "), std::string::npos);
  EXPECT_EQ(metrics.find("flatline_http_connections_evicted_total 0\n"), std::string::npos) << metrics;
}

TEST_F(ServerHardening, HeadersThatNeverFinishAreCutOffAtTheHeaderTimeout) {
  server::ServerOptions o = options();
  o.transport.header_timeout_s = 1;
  TestServer s(o);
  RawConnection slow(s.port());
  slow.send("GET /api/version HTTP/1.1\r\nHost: localhost\r\n");  // and nothing more
  EXPECT_TRUE(slow.wait_closed(10000)) << "a request whose headers stop arriving must be dropped";
}

TEST_F(ServerHardening, AnOversizedContentLengthGets413BeforeTheBodyIsSent) {
  server::ServerOptions o = options();
  o.max_body_bytes = 1u << 20;
  TestServer s(o);
  RawConnection c(s.port());
  c.send("POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n");
  const std::string r = c.read(10000, [](const std::string& got) { return got.find("}") != std::string::npos; });
  EXPECT_EQ(test::status_of(r), 413) << r;
  EXPECT_NE(r.find("request body too large: Content-Length 1073741824 is over the limit of 1 MiB"), std::string::npos) << r;
  // The server is fine afterwards.
  EXPECT_EQ(test::status_of(exchange(s.port(), raw_get("/api/version"))), 200);
}

TEST_F(ServerHardening, PipelinedRequestsAfterTheFirstAreNoLongerDropped) {
  TestServer s(options());
  RawConnection c(s.port());
  const std::string show = R"({"model":"random"})";
  c.send(raw_get("/api/version") + raw_post("/api/show", show, "Content-Type: application/json\r\n") + raw_get("/api/tags") +
         raw_get("/api/ps"));
  const std::string r = c.read(10000, [](const std::string& got) { return test::count_of(got, "HTTP/1.1 200") == 4; });
  EXPECT_EQ(test::count_of(r, "HTTP/1.1 200"), 4u) << r;
  EXPECT_NE(r.find("\"flatline_version\""), std::string::npos);
  EXPECT_NE(r.find("\"model_info\""), std::string::npos);
  EXPECT_NE(r.find("\"models\""), std::string::npos);
}

int64_t metric_value(const std::string& page, const std::string& series) {
  const size_t at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(page.substr(at + series.size() + 2));
}

TEST_F(ServerHardening, AClientThatLeavesANonStreamingRequestNoLongerKeepsTheModelBusy) {
  TestServer s(options());
  {
    RawConnection c(s.port());
    json body = chat("tell me everything", 1000000);
    body["options"]["num_ctx"] = 1000000;  // a recurrent model's reply cap
    c.send(raw_post("/api/chat", body.dump(), "Content-Type: application/json\r\n"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }  // the client goes away without reading anything
  const std::string series = "flatline_generations_cancelled_total{model=\"random\"}";
  int64_t cancelled = -1;
  for (int i = 0; i < 200 && cancelled < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancelled = metric_value(body_of(exchange(s.port(), raw_get("/metrics"))), series);
  }
  EXPECT_EQ(cancelled, 1) << "the generation of a client that left should have been cancelled";
  EXPECT_EQ(test::post(s, "/api/chat", chat("hello")).status, 200);
}

TEST_F(ServerHardening, HundredThousandStopStringsAreRefusedNotMatchedPerToken) {
  TestServer s(options());
  json body = chat("hi");
  json stops = json::array();
  for (int i = 0; i < 100000; ++i) stops.push_back("stop" + std::to_string(i));
  body["options"]["stop"] = stops;
  auto r = test::post(s, "/api/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "option \"stop\": at most 64 stop strings are accepted (got 100000)");
  body["options"]["stop"] = json::array({std::string(2000, 'x')});
  r = test::post(s, "/api/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "option \"stop\"[0] is 2000 bytes long; a stop string may have at most 1024");
  r = test::post(s, "/v1/chat/completions",
                 json{{"model", "random"}, {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}, {"stop", stops}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "stop: at most 64 stop strings are accepted (got 100000)");
}

// ---------------------------------------------------------------------------
// Absurd numbers in requests

TEST_F(ServerHardening, AbsurdRequestNumbersAreRefusedWithTheirRange) {
  TestServer s(options());
  auto with_option = [&](const char* key, json value) {
    json body = chat("hi");
    body["options"][key] = std::move(value);
    auto r = test::post(s, "/api/chat", body);
    EXPECT_EQ(r.status, 400) << key << ": " << r.body;
    return r.status == 400 ? r.js()["error"].get<std::string>() : r.body;
  };
  EXPECT_EQ(with_option("num_ctx", -5), "option \"num_ctx\" must be between 1 and 16777216 (got -5)");
  EXPECT_EQ(with_option("num_ctx", int64_t{1} << 40), "option \"num_ctx\" must be between 1 and 16777216 (got 1099511627776)");
  EXPECT_EQ(with_option("num_predict", -5), "option \"num_predict\" must be -1 (no limit) or between 0 and 16777216 (got -5)");
  EXPECT_EQ(with_option("num_predict", int64_t{1} << 40),
            "option \"num_predict\" must be -1 (no limit) or between 0 and 16777216 (got 1099511627776)");
  EXPECT_EQ(with_option("temperature", -1), "option \"temperature\" must be between 0 and 100 (got -1)");
  EXPECT_EQ(with_option("temperature", 1e300), "option \"temperature\" must be between 0 and 100 (got inf)");
  EXPECT_EQ(with_option("top_p", 2), "option \"top_p\" must be between 0 and 1 (got 2)");
  EXPECT_EQ(with_option("top_k", -3), "option \"top_k\" must be between 0 and 1048576 (got -3)");
  EXPECT_EQ(with_option("repeat_penalty", 0), "option \"repeat_penalty\" must be between 0.01 and 100 (got 0)");
  EXPECT_EQ(with_option("repeat_last_n", -2), "option \"repeat_last_n\" must be between -1 and 16777216 (got -2)");
  // Ollama's -2 ("fill the context") is accepted.
  json ok = chat("hi");
  ok["options"]["num_predict"] = -2;
  ok["options"]["num_ctx"] = 64;
  EXPECT_EQ(test::post(s, "/api/chat", ok).status, 200);
  auto r = test::post(s, "/v1/chat/completions",
                      json{{"model", "random"},
                           {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})},
                           {"max_tokens", -3}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "max_tokens must be -1 (no limit) or between 0 and 16777216 (got -3)");
  r = test::post(s, "/v1/chat/completions",
                 json{{"model", "random"},
                      {"messages", json::array({json{{"role", "user"}, {"content", "x"}}})},
                      {"temperature", -0.5}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"]["message"], "temperature must be between 0 and 100 (got -0.5)");
}

TEST_F(ServerHardening, ContextIdsAtOrBeyond2To32AreRefusedInsteadOfWrapping) {
  TestServer s(options());
  auto generate = [&](json context) {
    return test::post(s, "/api/generate",
                      json{{"model", "random"}, {"prompt", "hi"}, {"stream", false}, {"context", std::move(context)},
                           {"options", {{"num_predict", 2}}}});
  };
  // 4294967297 = 2^32 + 1 used to wrap to token 1.
  auto r = generate(json::array({4294967297ull}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "context[0]: 4294967297 is not a token id (ids are between 0 and the vocabulary size - 1)");
  r = generate(json::array({1, 18446744073709551615ull}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.js()["error"], "context[1]: 18446744073709551615 is not a token id (ids are between 0 and the vocabulary size - 1)");
  r = generate(json::array({5000}));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.js()["error"].get<std::string>().find("outside the model's vocabulary"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Web-facing defaults

TEST_F(ServerHardening, ADnsRebindingHostCanNoLongerReadShow) {
  server::ServerOptions o = options();
  TestServer s(o);
  const std::string show = R"({"model":"random"})";
  std::string r = exchange(s.port(), raw_post("/api/show", show, "", "evil.example:11434"));
  EXPECT_EQ(test::status_of(r), 403) << r;
  EXPECT_NE(r.find("host \\\"evil.example\\\" is not allowed"), std::string::npos) << r;
  EXPECT_EQ(r.find("model_info"), std::string::npos);
  for (const std::string& host : {"localhost:" + std::to_string(s.port()), "127.0.0.1:" + std::to_string(s.port()),
                                 std::string("[::1]:11434"), std::string("box.local"), std::string("app.localhost")}) {
    r = exchange(s.port(), raw_post("/api/show", show, "", host));
    EXPECT_EQ(test::status_of(r), 200) << host << ": " << r.substr(0, 200);
  }
  s.stop();
  o.access.allowed_hosts = {"evil.example"};
  TestServer configured(o);
  r = exchange(configured.port(), raw_post("/api/show", show, "", "evil.example"));
  EXPECT_EQ(test::status_of(r), 200) << r.substr(0, 200);
}

TEST_F(ServerHardening, ACrossOriginTextPlainChatFromAForeignPageIsRefused) {
  TestServer s(options());
  // What a page on evil.example can send without a preflight.
  const std::string r = exchange(
      s.port(), raw_post("/api/chat", chat("hi").dump(), "Content-Type: text/plain\r\nOrigin: http://evil.example\r\n"));
  EXPECT_EQ(test::status_of(r), 403) << r;
  EXPECT_NE(r.find("origin http://evil.example is not allowed"), std::string::npos) << r;
  EXPECT_EQ(test::header_of(r, "Access-Control-Allow-Origin"), "");
  const std::string metrics = body_of(exchange(s.port(), raw_get("/metrics")));
  EXPECT_EQ(metrics.find("flatline_generations_total{"), std::string::npos) << "no generation may have run";
  for (const char* bad : {"http://localhost.evil.example", "http://localhost:80x", "null", "https://127.0.0.1.nip.io"}) {
    const std::string rr =
        exchange(s.port(), std::string("GET /api/tags HTTP/1.1\r\nHost: localhost\r\nOrigin: ") + bad + "\r\n\r\n");
    EXPECT_EQ(test::status_of(rr), 403) << bad;
  }
}

TEST_F(ServerHardening, LocalAndAppOriginsGetOllamasCorsHeadersAndPreflight) {
  server::ServerOptions o = options();
  o.access.allowed_origins = {"https://*.example.org"};
  TestServer s(o);
  auto get_with_origin = [&](const std::string& origin) {
    return exchange(s.port(), "GET /api/tags HTTP/1.1\r\nHost: localhost:" + std::to_string(s.port()) + "\r\nOrigin: " + origin + "\r\n\r\n");
  };
  for (const char* origin : {"http://localhost", "http://localhost:5173", "https://127.0.0.1:8443", "http://0.0.0.0:3000",
                             "app://obsidian.md", "file://", "tauri://localhost", "vscode-webview://abc",
                             "chrome-extension://abcdef", "moz-extension://1234", "safari-web-extension://x",
                             "https://chat.example.org"}) {
    const std::string r = get_with_origin(origin);
    EXPECT_EQ(test::status_of(r), 200) << origin << ": " << r.substr(0, 300);
    EXPECT_EQ(test::header_of(r, "Access-Control-Allow-Origin"), origin);
    EXPECT_EQ(test::header_of(r, "Vary"), "Origin");
  }
  const std::string pre = exchange(s.port(),
                                   "OPTIONS /api/chat HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:5173\r\n"
                                   "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n");
  EXPECT_EQ(test::status_of(pre), 204) << pre;
  EXPECT_EQ(test::header_of(pre, "Access-Control-Allow-Origin"), "http://localhost:5173");
  EXPECT_EQ(test::header_of(pre, "Access-Control-Allow-Methods"), "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS");
  EXPECT_NE(test::header_of(pre, "Access-Control-Allow-Headers").find("Authorization,Content-Type,"), std::string::npos);
  EXPECT_EQ(test::header_of(pre, "Access-Control-Max-Age"), "43200");
  // A same-origin request (a page served from this host) is not CORS.
  const std::string same = exchange(s.port(), "GET /api/tags HTTP/1.1\r\nHost: localhost:" + std::to_string(s.port()) +
                                                  "\r\nOrigin: http://localhost:" + std::to_string(s.port()) + "\r\n\r\n");
  EXPECT_EQ(test::status_of(same), 200);
}

TEST_F(ServerHardening, AnApiKeyWhenSetIsRequiredAsABearerToken) {
  server::ServerOptions o = options();
  o.access.api_key = "s3cret-key";
  TestServer s(o);
  std::string r = exchange(s.port(), raw_get("/api/tags"));
  EXPECT_EQ(test::status_of(r), 401) << r;
  EXPECT_EQ(test::header_of(r, "WWW-Authenticate"), "Bearer");
  EXPECT_EQ(json::parse(body_of(r))["error"], "unauthorized: this server needs an API key (\"Authorization: Bearer <key>\")");
  r = exchange(s.port(), "GET /api/tags HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 401);
  r = exchange(s.port(), "GET /api/tags HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret-keyX\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 401);
  r = exchange(s.port(), "GET /api/tags HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret-key\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 200);
  r = exchange(s.port(), raw_get("/v1/models"));
  EXPECT_EQ(test::status_of(r), 401);
  EXPECT_EQ(json::parse(body_of(r))["error"]["code"], "invalid_api_key");
  EXPECT_EQ(test::status_of(exchange(s.port(), raw_get("/health"))), 200);  // load balancers need it
  EXPECT_EQ(test::status_of(exchange(s.port(), raw_get("/"))), 200);
}

TEST_F(ServerHardening, ListeningBeyondLoopbackWithoutAnApiKeyIsRefused) {
  server::ServerOptions o = options();
  o.host = "0.0.0.0";
  try {
    server::Server srv(o);
    ADD_FAILURE() << "a server on 0.0.0.0 without an API key was created";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "refusing to listen on 0.0.0.0, which other machines can reach, without an API key: set one with "
              "--api-key or FLATLINE_API_KEY (clients send it as \"Authorization: Bearer <key>\"), or pass "
              "--insecure-public to serve without one");
  }
  o.access.insecure_public = true;
  EXPECT_NO_THROW(server::Server{o});
  o.access.insecure_public = false;
  o.access.api_key = "k";
  EXPECT_NO_THROW(server::Server{o});
}

TEST_F(ServerHardening, ResponsesNoLongerRevealTheModelsAbsolutePath) {
  server::ServerOptions o = options();
  TestServer s(o);
  const std::string dir = std::filesystem::weakly_canonical(dir_->path()).string();
  auto r = test::post(s, "/api/show", json{{"model", "random"}, {"verbose", true}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find(dir), std::string::npos);
  EXPECT_NE(r.js()["modelfile"].get<std::string>().find("FROM random.gguf\n"), std::string::npos);
  s.stop();
  // An error that names the file (the model does not fit the budget).
  o.models.max_memory = 1500u << 10;
  o.cache.memory_limit = 1u << 20;
  TestServer small(o);
  r = test::post(small, "/api/chat", chat("hi"));
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("random.gguf"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(dir), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(dir_->path()), std::string::npos) << r.body;
}

// ---------------------------------------------------------------------------
// Handshake details

TEST_F(ServerHardening, FormUrlencodedBodiesOver8KiBNoLongerGet413) {
  TestServer s(options());
  json body = chat("hello");
  body["messages"].insert(body["messages"].begin(), json{{"role", "system"}, {"content", std::string(100000, 'a')}});
  auto c = s.client();
  auto r = c->Post("/api/chat", body.dump(), "application/x-www-form-urlencoded");  // urllib's and curl -d's default
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body.substr(0, 300);
  EXPECT_TRUE(json::parse(r->body)["message"]["content"].is_string());
  r = c->Post("/api/show", R"({"model":"random"})", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServerHardening, PsWithKeepAliveForeverNoLongerExpiresInTheYear1734) {
  TestServer s(options());
  json body = chat("hi");
  body["keep_alive"] = -1;
  ASSERT_EQ(test::post(s, "/api/chat", body).status, 200);
  auto r = test::get(s, "/api/ps");
  ASSERT_EQ(r.status, 200);
  const std::string expires = r.js()["models"][0]["expires_at"];
  // Go prints now + MaxInt64 ns: about 292 years ahead.
  const int year = std::stoi(expires.substr(0, 4));
  const int now_year = 1970 + static_cast<int>(std::time(nullptr) / 31556952);
  EXPECT_GE(year, now_year + 291) << expires;
  EXPECT_LE(year, now_year + 293) << expires;
}

TEST_F(ServerHardening, AWrongMethodOnAKnownPathIs405Not404) {
  TestServer s(options());
  std::string r = exchange(s.port(), raw_get("/api/chat"));
  EXPECT_EQ(test::status_of(r), 405) << r;
  EXPECT_EQ(test::header_of(r, "Allow"), "POST");
  EXPECT_EQ(body_of(r), "405 method not allowed");
  r = exchange(s.port(), raw_post("/api/tags", "{}"));
  EXPECT_EQ(test::status_of(r), 405);
  EXPECT_EQ(test::header_of(r, "Allow"), "GET");
  r = exchange(s.port(), "DELETE /v1/models/random HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 405);
  EXPECT_EQ(test::status_of(exchange(s.port(), raw_get("/api/nothing"))), 404);
}

TEST_F(ServerHardening, RootAnswersOllamasBannerToClientsAndTheServerHeaderSaysFlatline) {
  TestServer s(options());
  std::string r = exchange(s.port(), raw_get("/"));
  EXPECT_EQ(body_of(r), "Ollama is running");
  EXPECT_EQ(test::header_of(r, "Server"), std::string("flatline/") + FLATLINE_VERSION);
  r = exchange(s.port(), "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html,application/xhtml+xml\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 200);
  // A browser gets the chat page instead (server_web_test.cpp has the rest).
  EXPECT_EQ(body_of(r).rfind("<!doctype html>", 0), 0u) << body_of(r).substr(0, 200);
  EXPECT_EQ(test::header_of(r, "Content-Type"), "text/html; charset=utf-8");
  auto v = test::get(s, "/api/version").js();
  EXPECT_EQ(v["version"], "0.32.15");
  EXPECT_EQ(v["flatline_version"], FLATLINE_VERSION);
}

// ---------------------------------------------------------------------------
// Model files changed under the server

// Rewrites `path` in place (same inode), as `cp other.gguf path` does.
void overwrite_in_place(const std::string& path, const std::string& from) {
  auto bytes = test::read_file(from);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

TEST_F(ServerHardening, AModelFileOverwrittenInPlaceIsReloadedInsteadOfCrashingTheServer) {
  test::write_random_rwkv7(dir_->file("other.gguf"), 7);
  TestServer s(options());
  auto first = test::post(s, "/api/chat", chat("hello there", 16));
  ASSERT_EQ(first.status, 200);
  json other_body = chat("hello there", 16);
  other_body["model"] = "other";
  const std::string expected_new = test::post(s, "/api/chat", other_body).js()["message"]["content"];
  struct stat before {};
  ::stat(dir_->file("random.gguf").c_str(), &before);
  overwrite_in_place(dir_->file("random.gguf"), dir_->file("other.gguf"));
  struct stat after {};
  ::stat(dir_->file("random.gguf").c_str(), &after);
  ASSERT_EQ(before.st_ino, after.st_ino) << "the test must rewrite the same inode";
  auto again = test::post(s, "/api/chat", chat("hello there", 16));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.js()["message"]["content"], expected_new) << "the request should be served by the file as it is now";
  EXPECT_NE(again.js()["message"]["content"], first.js()["message"]["content"]);
}

TEST_F(ServerHardening, AModelFileTruncatedDuringAGenerationFailsThatRequestNotTheProcess) {
  TestServer s(options());
  json body = chat("go on forever", 1000000);
  body["stream"] = true;
  body["options"]["num_ctx"] = 1000000;
  std::string streamed;
  bool truncated = false;
  test::post_streaming(s, "/api/chat", body, [&](const std::string& data) {
    streamed += data;
    if (!truncated && streamed.size() > 200) {
      truncated = true;
      ::truncate(dir_->file("random.gguf").c_str(), 0);  // the mapped weights vanish mid-generation
    }
    return true;
  });
  ASSERT_TRUE(truncated) << streamed.substr(0, 300);
  const auto lines = test::ndjson_lines(streamed);
  ASSERT_FALSE(lines.empty());
  ASSERT_TRUE(lines.back().contains("error")) << lines.back().dump();
  EXPECT_NE(lines.back()["error"].get<std::string>().find("changed on disk while this request was using it"),
            std::string::npos)
      << lines.back().dump();
  // Still serving; the truncated file is now an unknown model, a restored one serves again.
  EXPECT_EQ(test::get(s, "/api/version").status, 200);
  EXPECT_EQ(test::post(s, "/api/chat", chat("hi")).status, 404);
  test::write_random_rwkv7(dir_->file("random.gguf"), 1);
  EXPECT_EQ(test::post(s, "/api/chat", chat("hi")).status, 200);
}

// ---------------------------------------------------------------------------
// Hostile metadata

uint64_t read_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key) + 1));
  return 0;
}

TEST_F(ServerHardening, ShowVerboseWithAHugeMetadataArrayNoLongerBuildsAGigabyteResponse) {
  const size_t n = 20u << 20 >> 2;  // 20 MiB of int32
  test::copy_gguf(dir_->file("random.gguf"), dir_->file("blob.gguf"), {},
                  [&](gguf::Writer& w) { w.add_int32_array("evil.blob", std::vector<int32_t>(n, 7)); });
  TestServer s(options());
  // Peak RSS from here on (writing "5" to clear_refs resets VmHWM).
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5" << std::flush;
  const bool can_reset = static_cast<bool>(clear_refs);
  const uint64_t rss_before_kb = read_status_kb("VmRSS:");
  auto r = test::post(s, "/api/show", json{{"model", "blob"}, {"verbose", true}});
  ASSERT_EQ(r.status, 200);
  EXPECT_LT(r.body.size(), 1u << 20) << "the response should not carry the 20 MiB array";
  json j = r.js();
  EXPECT_EQ(j["flatline_omitted_arrays"]["evil.blob"], n);
  EXPECT_EQ(j["model_info"]["evil.blob"], json::array());
  EXPECT_EQ(j["model_info"]["tokenizer.ggml.tokens"].size(), test::random_model_vocab().size());
  EXPECT_FALSE(j["tensors"].empty());
  if (can_reset) {
    const uint64_t peak_growth_kb = read_status_kb("VmHWM:") - std::min(rss_before_kb, read_status_kb("VmHWM:"));
    EXPECT_LT(peak_growth_kb, 128u * 1024) << "peak RSS grew by " << peak_growth_kb << " KiB for one /api/show";
  }
}

TEST_F(ServerHardening, AModelWithWrongTypedFileTypeAndContextLengthIsListedLikeTheCliRunsIt) {
  test::copy_gguf(dir_->file("random.gguf"), dir_->file("oddtypes.gguf"), [](gguf::Writer& w, const std::string& key) {
    if (key == "general.file_type") return w.add_string(key, "F32"), true;
    if (key == "rwkv7.context_length") return w.add_float32(key, 1048576.0f), true;
    return false;
  });
  TestServer s(options());
  bool listed = false;
  const json tags = test::get(s, "/api/tags").js();
  for (const auto& m : tags["models"]) listed = listed || m["name"] == "oddtypes:latest";
  EXPECT_TRUE(listed) << "a model the CLI runs must not vanish from /api/tags: " << test::get(s, "/api/tags").body;
  json body = chat("hi");
  body["model"] = "oddtypes";
  EXPECT_EQ(test::post(s, "/api/chat", body).status, 200);
}

}  // namespace
}  // namespace flatline
