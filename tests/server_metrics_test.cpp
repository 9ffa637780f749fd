// GET /health and GET /metrics (issue 17). /metrics is read with a strict
// parser of the Prometheus text exposition format 0.0.4 written here from
// the format's specification (prometheus.io/docs/instrumenting/
// exposition_formats), and its counters are compared with what the test sent.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>
#include <sstream>

#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string type;
  bool has_help = false;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<std::string> errors;

  // The value of the one sample `name` with exactly these labels; NaN if absent.
  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [fname, f] : families)
      for (const Sample& s : f.samples)
        if (s.name == name && s.labels == labels) return s.value;
    return std::nan("");
  }
};

bool valid_metric_name(const std::string& s) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(s, re);
}
bool valid_label_name(const std::string& s) {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(s, re) && s.rfind("__", 0) != 0;
}

bool parse_value(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") return out = INFINITY, true;
  if (text == "-Inf") return out = -INFINITY, true;
  if (text == "NaN") return out = NAN, true;
  static const std::regex re(R"([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)");
  if (!std::regex_match(text, re)) return false;
  out = std::stod(text);
  return true;
}

// The family a sample belongs to: histograms own name_bucket/_sum/_count.
std::string family_of(const std::string& sample, const std::map<std::string, Family>& families) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      auto it = families.find(base);
      if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary")) return base;
    }
  }
  return sample;
}

Exposition parse_exposition(const std::string& text) {
  Exposition e;
  auto fail = [&](size_t line_no, const std::string& what) {
    e.errors.push_back("line " + std::to_string(line_no) + ": " + what);
  };
  if (text.empty() || text.back() != '\n') e.errors.push_back("the text must end with a newline");
  std::set<std::string> closed;  // families whose samples are finished (no interleaving)
  std::string current;
  std::set<std::string> series;
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream in(line.substr(1));
      std::string keyword, name;
      in >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!valid_metric_name(name)) fail(line_no, "bad metric name '" + name + "'");
      Family& f = e.families[name];
      if (keyword == "HELP") {
        if (f.has_help) fail(line_no, "second HELP for " + name);
        f.has_help = true;
      } else {
        std::string type, rest;
        in >> type;
        if (in >> rest) fail(line_no, "text after the TYPE");
        if (!f.type.empty()) fail(line_no, "second TYPE for " + name);
        if (!f.samples.empty()) fail(line_no, "TYPE after samples of " + name);
        static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!types.count(type)) fail(line_no, "unknown type '" + type + "'");
        f.type = type;
      }
      continue;
    }
    // name{labels} value [timestamp]
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!valid_metric_name(s.name)) fail(line_no, "bad sample name '" + s.name + "'");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          fail(line_no, "label without '='");
          break;
        }
        const std::string lname = line.substr(i, eq - i);
        if (!valid_label_name(lname)) fail(line_no, "bad label name '" + lname + "'");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') {
          fail(line_no, "label value not quoted");
          break;
        }
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            if (j >= line.size() || (line[j] != '\\' && line[j] != '"' && line[j] != 'n')) fail(line_no, "bad escape");
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) {
          fail(line_no, "unterminated label value");
          break;
        }
        if (s.labels.count(lname)) fail(line_no, "label " + lname + " twice");
        s.labels[lname] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) {
        fail(line_no, "missing '}'");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      fail(line_no, "no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    if (!parse_value(value_text, s.value)) fail(line_no, "bad value '" + value_text + "'");
    if (!timestamp.empty() && !std::regex_match(timestamp, std::regex("-?\\d+"))) fail(line_no, "bad timestamp");
    if (!extra.empty()) fail(line_no, "text after the timestamp");
    const std::string family = family_of(s.name, e.families);
    auto it = e.families.find(family);
    if (it == e.families.end() || it->second.type.empty()) fail(line_no, "sample " + s.name + " before its TYPE");
    if (family != current) {
      if (closed.count(family)) fail(line_no, "samples of " + family + " are not together");
      if (!current.empty()) closed.insert(current);
      current = family;
    }
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "|" + k + "=" + v;
    if (!series.insert(key).second) fail(line_no, "duplicate series " + key);
    Family& f = e.families[family];
    if (f.type == "counter" && s.value < 0) fail(line_no, "negative counter " + s.name);
    f.samples.push_back(std::move(s));
  }
  // Histograms: cumulative buckets ending in +Inf == _count.
  for (const auto& [name, f] : e.families) {
    if (f.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const Sample& s : f.samples) {
      auto labels = s.labels;
      if (s.name == name + "_bucket") {
        double le;
        if (!labels.count("le") || !parse_value(labels["le"], le)) {
          e.errors.push_back(name + ": bucket without a valid le");
          continue;
        }
        labels.erase("le");
        buckets[labels].push_back({le, s.value});
      } else if (s.name == name + "_count") {
        counts[labels] = s.value;
      }
    }
    for (const auto& [labels, b] : buckets) {
      for (size_t k = 1; k < b.size(); ++k)
        if (b[k].first <= b[k - 1].first || b[k].second < b[k - 1].second)
          e.errors.push_back(name + ": buckets not increasing and cumulative");
      if (b.empty() || !std::isinf(b.back().first)) e.errors.push_back(name + ": no +Inf bucket");
      else if (!counts.count(labels) || counts[labels] != b.back().second)
        e.errors.push_back(name + ": +Inf bucket differs from _count");
    }
  }
  return e;
}

TEST(PrometheusParser, RejectsMalformedExpositions) {
  // The parser must be able to fail, or the test below proves nothing.
  EXPECT_FALSE(parse_exposition("# TYPE a counter\na 1\n").errors.size());
  EXPECT_TRUE(parse_exposition("a 1\n").errors.size());                                    // no TYPE
  EXPECT_TRUE(parse_exposition("# TYPE a counter\na{x=\"1} 1\n").errors.size());           // unterminated
  EXPECT_TRUE(parse_exposition("# TYPE a counter\na{x=\"1\"} one\n").errors.size());       // bad value
  EXPECT_TRUE(parse_exposition("# TYPE a counter\na 1\na 2\n").errors.size());             // duplicate
  EXPECT_TRUE(parse_exposition("# TYPE a counter\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 2\n").errors.size());
  EXPECT_TRUE(parse_exposition("# TYPE a counter\na 1").errors.size());                    // no final newline
  EXPECT_TRUE(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n")
                  .errors.size());  // not cumulative
}

class ServerMetrics : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level(LogLevel::Error); }
  void TearDown() override { set_log_level(LogLevel::Info); }
};

TEST_F(ServerMetrics, MetricsParseStrictlyAndAgreeWithTheRequestsSent) {
  test::TempDir dir("metrics-models");
  test::write_random_rwkv7(dir.file("random.gguf"), 1);
  TestServer s(test::test_server_options(dir.path()));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(test::get(s, "/api/version").status, 200);
  ASSERT_EQ(test::get(s, "/api/nothing").status, 404);
  ASSERT_EQ(test::post(s, "/api/chat", std::string("{not json")).status, 400);
  // A two-turn conversation (the second reuses the first's state) and one OpenAI request.
  int64_t evaluated = 0, generated = 0;
  json messages = json::array({json{{"role", "user"}, {"content", "hello"}}});
  for (int turn = 0; turn < 2; ++turn) {
    auto r = test::post(s, "/api/chat",
                        json{{"model", "random"}, {"messages", messages}, {"stream", false},
                             {"options", {{"temperature", 0}, {"num_predict", 6}}}});
    ASSERT_EQ(r.status, 200);
    evaluated += r.js()["prompt_eval_count"].get<int64_t>();
    generated += r.js()["eval_count"].get<int64_t>();
    messages.push_back(r.js()["message"]);
    messages.push_back(json{{"role", "user"}, {"content", "and then?"}});
  }
  auto o = test::post(s, "/v1/chat/completions",
                      json{{"model", "random"}, {"messages", messages}, {"max_tokens", 5}, {"temperature", 0}});
  ASSERT_EQ(o.status, 200);
  generated += o.js()["usage"]["completion_tokens"].get<int64_t>();
  const int64_t openai_prompt = o.js()["usage"]["prompt_tokens"];
  const int64_t openai_cached = o.js()["usage"]["prompt_tokens_details"]["cached_tokens"];
  evaluated += openai_prompt - openai_cached;

  // A request is counted just after its last byte is written, on the thread
  // that served it, so the client may ask for /metrics before the counts of
  // its last requests land (and they may land in any order): wait until
  // every request above is counted.
  test::HttpReply page;
  for (int i = 0; i < 300; ++i) {
    page = test::get(s, "/metrics");
    const Exposition seen = parse_exposition(page.body);
    if (seen.errors.empty() &&
        seen.value("flatline_http_request_duration_seconds_count", {{"route", "/api/chat"}}) == 3 &&
        seen.value("flatline_http_request_duration_seconds_count", {{"route", "/v1/chat/completions"}}) == 1)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const Exposition e = parse_exposition(page.body);
  for (const std::string& err : e.errors) ADD_FAILURE() << err;
  ASSERT_TRUE(e.errors.empty()) << page.body;

  auto requests = [&](const char* route, const char* method, const char* status) {
    return e.value("flatline_http_requests_total", {{"route", route}, {"method", method}, {"status", status}});
  };
  EXPECT_EQ(requests("/api/version", "GET", "200"), 3);
  EXPECT_EQ(requests("other", "GET", "404"), 1);
  EXPECT_EQ(requests("/api/chat", "POST", "400"), 1);
  EXPECT_EQ(requests("/api/chat", "POST", "200"), 2);
  EXPECT_EQ(requests("/v1/chat/completions", "POST", "200"), 1);
  EXPECT_EQ(e.value("flatline_http_request_duration_seconds_count", {{"route", "/api/chat"}}), 3);
  EXPECT_EQ(e.families.at("flatline_http_request_duration_seconds").type, "histogram");

  EXPECT_EQ(e.value("flatline_generations_total", {{"model", "random"}}), 3);
  EXPECT_EQ(e.value("flatline_generated_tokens_total", {{"model", "random"}}), generated);
  EXPECT_EQ(e.value("flatline_prompt_tokens_evaluated_total", {{"model", "random"}}), evaluated);
  EXPECT_GE(e.value("flatline_prompt_tokens_reused_total", {{"model", "random"}}), 1)
      << "turns 2 and 3 start from the cached state";
  EXPECT_EQ(e.value("flatline_generations_cancelled_total", {{"model", "random"}}), 0);

  const StateCacheStats stats = s.get().cache().stats();
  EXPECT_EQ(e.value("flatline_state_cache_hits_total"), static_cast<double>(stats.hits));
  EXPECT_GE(stats.hits, 2u);
  EXPECT_EQ(e.value("flatline_state_cache_misses_total"), static_cast<double>(stats.misses));
  EXPECT_EQ(e.value("flatline_state_cache_bytes"), static_cast<double>(stats.bytes));
  EXPECT_EQ(e.value("flatline_queue_length"), 0);
  EXPECT_EQ(e.value("flatline_models_loaded"), 1);
  EXPECT_GT(e.value("flatline_resident_memory_bytes"), 1e6);
  EXPECT_EQ(e.value("flatline_memory_budget_bytes"), static_cast<double>(512ull << 20));
  EXPECT_EQ(e.value("flatline_build_info", {{"version", FLATLINE_VERSION}}), 1);
  for (const char* gauge : {"flatline_queue_length", "flatline_resident_memory_bytes", "flatline_state_cache_bytes"})
    EXPECT_EQ(e.families.at(gauge).type, "gauge") << gauge;
  for (const auto& [name, f] : e.families) {
    EXPECT_TRUE(f.has_help) << name;
    if (f.type == "counter") {
      EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
    }
  }
}

TEST_F(ServerMetrics, HealthIsOkOnlyWhenAModelCanBeServed) {
  test::TempDir dir("health-models");
  TestServer s(test::test_server_options(dir.path()));
  auto r = test::get(s, "/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.js(), json({{"status", "unavailable"}, {"reason", "no models in the models directory"}}));
  test::write_random_rwkv7(dir.file("random.gguf"), 1);
  r = test::get(s, "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.js(), json({{"status", "ok"}}));
  std::filesystem::remove_all(dir.path());
  r = test::get(s, "/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.js()["reason"], "the models directory cannot be read");
}

}  // namespace
}  // namespace flatline
