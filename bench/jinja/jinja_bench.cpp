// Time to render a chat template: every template of tests/data/chat_templates
// with the "ten_turns" conversation of conversations.json (system prompt +
// 10 messages + a new question), parse excluded, best of several rounds.
//
//   jinja_bench [DATA_DIR] [ROUNDS]     (DATA_DIR defaults to the checkout's)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "jinja/template.h"

namespace {

using ojson = nlohmann::ordered_json;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int run(int argc, char** argv) {
  const std::string dir = argc > 1 && argv[1][0] ? argv[1] : FLATLINE_SOURCE_DIR "/tests/data/chat_templates";
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 200;
  const ojson manifest = ojson::parse(read_text(dir + "/templates.json"));
  const ojson conversations = ojson::parse(read_text(dir + "/conversations.json")).at("conversations");
  ojson chat;
  for (const auto& c : conversations)
    if (c.at("name") == "ten_turns") chat = c.at("context");
  chat["tools"] = nullptr;
  chat["documents"] = nullptr;
  flatline::jinja::RenderOptions options;
  options.now = flatline::jinja::CivilTime{2025, 7, 15, 10, 30, 0};
  std::vector<double> all;
  std::printf("%-55s %10s %10s %8s\n", "template", "parse us", "render us", "bytes");
  for (const auto& t : manifest.at("templates")) {
    const std::string file = t.at("file").get<std::string>();
    ojson ctx = chat;
    if (!t.at("bos_token").is_null()) ctx["bos_token"] = t.at("bos_token");
    if (!t.at("eos_token").is_null()) ctx["eos_token"] = t.at("eos_token");
    const std::string source = read_text(dir + "/" + file);
    auto t0 = std::chrono::steady_clock::now();
    const flatline::jinja::Template tpl = flatline::jinja::Template::parse(source);
    const double parse_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    double best = 1e30;
    size_t bytes = 0;
    try {
      for (int r = 0; r < rounds; ++r) {
        t0 = std::chrono::steady_clock::now();
        bytes = tpl.render(ctx, options).size();
        best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
    } catch (const flatline::jinja::Error& e) {
      std::printf("%-55s %10.1f %10s (%s)\n", file.c_str(), parse_us, "error", e.what());
      continue;
    }
    all.push_back(best);
    std::printf("%-55s %10.1f %10.1f %8zu\n", file.c_str(), parse_us, best, bytes);
  }
  std::sort(all.begin(), all.end());
  if (!all.empty())
    std::printf("\n%zu templates: median %.1f us, max %.1f us per 10-turn render\n", all.size(), all[all.size() / 2],
                all.back());
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jinja_bench: %s\n", e.what());
    return 1;
  }
}
