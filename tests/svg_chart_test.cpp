// The SVG line-chart writer (src/util/svg_chart.h) and `bench turns --plot`,
// checked with a parser flatline did not write: Python's XML parser
// (tests/svg/inspect_svg.py, run with Debian's /usr/bin/python3), which
// refuses a document that is not well-formed and reports the points, marks
// and labels it finds.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"
#include "util/svg_chart.h"

namespace flatline {
namespace {

using json = nlohmann::json;

constexpr const char* kPython = "/usr/bin/python3";

struct Inspected {
  int status = -1;
  json info;
  std::string output;
};

std::string run_command(const std::string& cmd, int& status) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return out;
}

Inspected inspect_file(const std::string& path) {
  Inspected r;
  r.output = run_command(std::string(kPython) + " '" + test::source_dir() + "/tests/svg/inspect_svg.py' '" + path + "'",
                         r.status);
  if (r.status == 0) r.info = json::parse(r.output);
  return r;
}

Inspected inspect(const std::string& svg) {
  const std::string path = test::temp_path("chart.svg");
  std::ofstream(path, std::ios::binary) << svg;
  return inspect_file(path);
}

#define REQUIRE_PYTHON()                                                                                  \
  if (!std::filesystem::exists(kPython))                                                                  \
  GTEST_SKIP() << kPython << " not found (Debian's python3, tools/install-deps.sh): the SVG output cannot " \
                             "be checked with an outside XML parser"

ChartFigure two_panel_figure() {
  ChartFigure f;
  f.title = "speed and memory";
  f.subtitle = "test figure";
  ChartPanel speed{"Generation speed", "turn", "tokens/s", true, {}};
  ChartSeries a{"model A", {{1, 10}, {2, 11}, {3, 10.5}}, {}, ""};
  ChartSeries b{"model B", {{1, 20}, {2, 15}, {3, 9}, {4, 6}, {5, 4}}, {{6, NAN, "refused: context full"}}, ""};
  speed.series = {a, b};
  ChartPanel mem{"Resident memory", "turn", "resident memory (MiB)", true, {}};
  ChartSeries am{"model A", {{1, 300}, {2, 300}, {3, 300}}, {}, ""};
  ChartSeries bm{"model B", {{1, 900}, {2, 1200}, {3, 1500}, {4, 1800}, {5, 2100}}, {{6, 2150, "refused: context full"}}, ""};
  mem.series = {am, bm};
  f.panels = {speed, mem};
  f.notes = {"model B turn 6: the prompt needs 5000 tokens but the context holds 4096"};
  return f;
}

TEST(SvgChart, IsWellFormedXmlWithEveryPointMarkAndLabel) {
  REQUIRE_PYTHON();
  const Inspected r = inspect(render_svg(two_panel_figure()));
  ASSERT_EQ(r.status, 0) << r.output;
  const json& j = r.info;
  EXPECT_EQ(j["root"], "svg");
  EXPECT_TRUE(j["namespace_ok"].get<bool>());
  EXPECT_EQ(j["title"], "speed and memory");
  EXPECT_EQ(j["legend"], json::array({"model A", "model B"}));
  ASSERT_EQ(j["panels"].size(), 2u);
  const json& speed = j["panels"][0];
  EXPECT_EQ(speed["title"], "Generation speed");
  EXPECT_EQ(speed["x_label"], "turn");
  EXPECT_EQ(speed["y_label"], "tokens/s");
  EXPECT_EQ(speed["series"]["model A"]["points"].size(), 3u);
  EXPECT_EQ(speed["series"]["model A"]["polyline_points"], 3);
  EXPECT_EQ(speed["series"]["model B"]["points"].size(), 5u);
  ASSERT_EQ(speed["marks"].size(), 1u);
  EXPECT_EQ(speed["marks"][0]["series"], "model B");
  EXPECT_EQ(speed["marks"][0]["label"], "refused: context full");
  const json& mem = j["panels"][1];
  EXPECT_EQ(mem["y_label"], "resident memory (MiB)");
  EXPECT_EQ(mem["series"]["model B"]["points"].size(), 5u);
  ASSERT_EQ(j["notes"].size(), 1u);
  EXPECT_NE(j["notes"][0].get<std::string>().find("context holds 4096"), std::string::npos);
}

TEST(SvgChart, PointsAreWhereTheirValuesSay) {
  REQUIRE_PYTHON();
  const Inspected r = inspect(render_svg(two_panel_figure()));
  ASSERT_EQ(r.status, 0) << r.output;
  // SVG y grows downwards: a larger value sits higher (smaller cy); x grows
  // with the turn, and equal values share a height.
  const json& b = r.info["panels"][1]["series"]["model B"]["points"];
  for (size_t i = 1; i < b.size(); ++i) {
    EXPECT_GT(b[i][0].get<double>(), b[i - 1][0].get<double>());
    EXPECT_LT(b[i][1].get<double>(), b[i - 1][1].get<double>());
  }
  const json& a = r.info["panels"][1]["series"]["model A"]["points"];
  EXPECT_DOUBLE_EQ(a[0][1].get<double>(), a[2][1].get<double>());
  // Model A's turn 2 and model B's turn 2 share an x.
  EXPECT_DOUBLE_EQ(a[1][0].get<double>(), b[1][0].get<double>());
  // Linear: 900 -> 1200 -> 1500 are equally spaced.
  EXPECT_NEAR(b[0][1].get<double>() - b[1][1].get<double>(), b[1][1].get<double>() - b[2][1].get<double>(), 0.15);
}

TEST(SvgChart, HostileNamesStayTextAndTheDocumentWellFormed) {
  REQUIRE_PYTHON();
  ChartFigure f;
  f.title = "<script>alert(1)</script> & \"quotes\" 'too'";
  ChartPanel p{"panel </g>", "turn", "y", true, {}};
  // A name with markup, a control character and bytes that are not UTF-8.
  p.series.push_back(ChartSeries{std::string("m<1>&\x01\xff\xfe" "end"), {{1, 1}, {2, 2}}, {}, ""});
  f.panels = {p};
  const Inspected r = inspect(render_svg(f));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.info["title"], "<script>alert(1)</script> & \"quotes\" 'too'");
  EXPECT_EQ(r.info["panels"][0]["title"], "panel </g>");
  EXPECT_EQ(r.info["legend"][0], "m<1>&\xEF\xBF\xBD\xEF\xBF\xBD" "end");
  EXPECT_EQ(r.info["panels"][0]["series"].size(), 1u);
}

TEST(SvgChart, EmptySeriesAndFiguresAreStillDocuments) {
  REQUIRE_PYTHON();
  ChartFigure f;
  f.title = "nothing ran";
  ChartPanel p{"speed", "turn", "tokens/s", true, {}};
  p.series.push_back(ChartSeries{"broken.gguf", {}, {}, "not run: not a GGUF file"});
  f.panels = {p};
  const Inspected r = inspect(render_svg(f));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.info["panels"][0]["series"]["broken.gguf"]["points"].size(), 0u);
  EXPECT_EQ(r.info["legend_texts"][0], "broken.gguf  (not run: not a GGUF file)");
  ChartFigure none;
  EXPECT_EQ(inspect(render_svg(none)).status, 0);
}

TEST(SvgChart, NiceTicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 47, 5), (std::vector<double>{0, 10, 20, 30, 40, 50}));
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(nice_ticks(0, 2150, 5), (std::vector<double>{0, 500, 1000, 1500, 2000, 2500}));
  EXPECT_EQ(nice_ticks(-3, 3, 3), (std::vector<double>{-4, -2, 0, 2, 4}));
  const std::vector<double> flat = nice_ticks(300, 300, 5);  // a range around a single value
  ASSERT_GE(flat.size(), 2u);
  EXPECT_LE(flat.front(), 300);
  EXPECT_GE(flat.back(), 300);
}

TEST(SvgChart, XmlEscapeHandlesMarkupControlsAndBrokenUtf8) {
  EXPECT_EQ(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
  EXPECT_EQ(xml_escape("tab\tnl\nbell\x07"), "tab\tnl\nbell");
  EXPECT_EQ(xml_escape("caf\xC3\xA9"), "caf\xC3\xA9");          // valid UTF-8 kept
  EXPECT_EQ(xml_escape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(xml_escape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a UTF-16 surrogate
  EXPECT_EQ(xml_escape("\xF0\x9F\x90\x9D"), "\xF0\x9F\x90\x9D");  // a bee
}

// The command itself: the demo model for a flat run, a transformer whose
// small context refuses a turn (a mark), and a file that is not a model (a
// legend note), each checked in the parsed SVG.
TEST(SvgChart, BenchTurnsPlotHasOneLinePerModelAndMarksTheRefusal) {
  REQUIRE_PYTHON();
  REQUIRE_SHARED_MODEL(stories, "stories260K/stories260K.gguf");
  const std::string demo = test::source_dir() + "/models/flatline-demo-kjv.gguf";
  const std::string not_a_model = test::temp_path("not-a-model.gguf");
  std::ofstream(not_a_model) << "hello";
  const std::string svg = test::temp_path("turns.svg");
  int status = 0;
  const std::string out = run_command(test::flatline_binary() + " bench turns '" + demo + "' '" + stories + "' '" +
                                          not_a_model + "' --turns 6 -c 96 -n 16 -t 1 --plot '" + svg + "'",
                                      status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("wrote " + svg), std::string::npos) << out;
  const Inspected r = inspect_file(svg);
  ASSERT_EQ(r.status, 0) << r.output;
  const json& j = r.info;
  ASSERT_EQ(j["legend"].size(), 3u) << j.dump();
  ASSERT_EQ(j["panels"].size(), 2u);
  EXPECT_EQ(j["panels"][0]["y_label"], "tokens/s (generated)");
  EXPECT_EQ(j["panels"][1]["y_label"], "resident memory (MiB)");
  EXPECT_EQ(j["panels"][0]["x_label"], "turn");
  const std::string demo_name = j["legend"][0], stories_name = j["legend"][1];
  for (const json& panel : j["panels"]) {
    EXPECT_EQ(panel["series"][demo_name]["points"].size(), 6u) << panel.dump();  // RWKV: every turn runs
    const size_t done = panel["series"][stories_name]["points"].size();
    EXPECT_GE(done, 1u);
    EXPECT_LT(done, 6u) << "96 tokens of context cannot hold six turns";
    ASSERT_EQ(panel["marks"].size(), 1u) << panel.dump();
    EXPECT_EQ(panel["marks"][0]["series"], stories_name);
    EXPECT_EQ(panel["marks"][0]["label"], "refused: context full");
    EXPECT_EQ(panel["series"][j["legend"][2].get<std::string>()]["points"].size(), 0u);
  }
  EXPECT_NE(j["legend_texts"][2].get<std::string>().find("not run:"), std::string::npos) << j["legend_texts"].dump();
  bool note_for_refusal = false;
  for (const json& n : j["notes"]) note_for_refusal |= n.get<std::string>().find("the context holds 96") != std::string::npos;
  EXPECT_TRUE(note_for_refusal) << j["notes"].dump();
}

TEST(SvgChart, BenchTurnsPlotToAnUnwritablePathFailsBeforeRunning) {
  const std::string demo = test::source_dir() + "/models/flatline-demo-kjv.gguf";
  int status = 0;
  const std::string out =
      run_command(test::flatline_binary() + " bench turns '" + demo + "' --plot /nonexistent-dir/x.svg", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("/nonexistent-dir/x.svg"), std::string::npos) << out;
  EXPECT_EQ(out.find("turn 1"), std::string::npos) << "the run should not start: " << out;
}

}  // namespace
}  // namespace flatline
