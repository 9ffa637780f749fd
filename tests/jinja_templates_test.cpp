// Every chat template of the test set (tests/data/chat_templates, see its
// README for where each comes from) rendered with every conversation of
// conversations.json by flatline's Jinja interpreter and by Python's jinja2
// in Hugging Face's environment: the outputs must be identical, byte for
// byte; where Python raises, flatline must raise too (with the same message
// for raise_exception).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "jinja/template.h"
#include "jinja_reference.h"
#include "test_support.h"

namespace flatline {
namespace {

using ojson = nlohmann::ordered_json;

std::string data_dir() { return test::source_dir() + "/tests/data/chat_templates"; }

ojson read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return ojson::parse(in);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TemplateEntry {
  std::string file;
  ojson bos_token, eos_token;
};

void PrintTo(const TemplateEntry& e, std::ostream* os) { *os << e.file; }

std::vector<TemplateEntry> template_entries() {
  std::vector<TemplateEntry> out;
  const ojson manifest = read_json(data_dir() + "/templates.json");
  for (const auto& t : manifest.at("templates"))
    out.push_back({t.at("file").get<std::string>(), t.at("bos_token"), t.at("eos_token")});
  return out;
}

const ojson& conversations() {
  static const ojson c = read_json(data_dir() + "/conversations.json").at("conversations");
  return c;
}

// The variables transformers' apply_chat_template passes: messages, tools
// (None when absent), documents (None), add_generation_prompt, the special
// tokens it has, and any extra keyword (enable_thinking, date_string ...).
ojson context_for(const TemplateEntry& t, const ojson& conversation) {
  ojson ctx = conversation.at("context");
  if (!ctx.contains("tools")) ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  if (!t.bos_token.is_null()) ctx["bos_token"] = t.bos_token;
  if (!t.eos_token.is_null()) ctx["eos_token"] = t.eos_token;
  return ctx;
}

jinja::RenderOptions fixed_clock() {
  jinja::RenderOptions o;
  o.now = jinja::CivilTime{2025, 7, 15, 10, 30, 0};  // = test::kReferenceNow
  return o;
}

// Python's results for every (template, conversation), computed once.
class JinjaChatTemplates : public ::testing::TestWithParam<TemplateEntry> {
 public:
  static void SetUpTestSuite() {
    if (!test::python_jinja_unavailable_reason().empty()) return;
    std::vector<test::ReferenceCase> cases;
    for (const TemplateEntry& t : template_entries()) {
      const std::string source = read_text(data_dir() + "/" + t.file);
      for (const auto& c : conversations()) cases.push_back({source, context_for(t, c)});
    }
    const std::vector<test::ReferenceResult> results = test::render_with_python(cases);
    size_t i = 0;
    for (const TemplateEntry& t : template_entries()) {
      for (size_t k = 0; k < conversations().size(); ++k) reference()[t.file].push_back(results[i++]);
    }
  }
  static std::map<std::string, std::vector<test::ReferenceResult>>& reference() {
    static std::map<std::string, std::vector<test::ReferenceResult>> r;
    return r;
  }
};

std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  auto around = [&](const std::string& s) {
    const size_t from = i > 40 ? i - 40 : 0;
    return ojson(s.substr(from, 120)).dump();
  };
  return "first difference at byte " + std::to_string(i) + "\n  python:   " + around(a) + "\n  flatline: " + around(b);
}

TEST_P(JinjaChatTemplates, RendersLikePythonJinja2) {
  REQUIRE_PYTHON_JINJA();
  const TemplateEntry& t = GetParam();
  const std::string source = read_text(data_dir() + "/" + t.file);
  jinja::Template tpl = jinja::Template::parse(source);
  const auto& expected = reference().at(t.file);
  int identical = 0, raised = 0, failed = 0;
  for (size_t k = 0; k < conversations().size(); ++k) {
    const std::string name = conversations()[k].at("name").get<std::string>();
    const test::ReferenceResult& py = expected[k];
    const ojson ctx = context_for(t, conversations()[k]);
    try {
      const std::string out = tpl.render(ctx, fixed_clock());
      if (!py.ok) {
        ADD_FAILURE() << t.file << " / " << name << ": Python raised " << py.error_type << " (" << py.error
                      << ") but flatline rendered " << ojson(out.substr(0, 200)).dump();
      } else if (out != py.output) {
        ADD_FAILURE() << t.file << " / " << name << ": " << first_difference(py.output, out);
      } else {
        ++identical;
      }
    } catch (const jinja::TemplateRaisedError& e) {
      if (py.ok) {
        ADD_FAILURE() << t.file << " / " << name << ": flatline raised '" << e.what() << "', Python rendered";
      } else if (py.error_type != "TemplateError") {
        ADD_FAILURE() << t.file << " / " << name << ": flatline raised '" << e.what() << "', Python " << py.error_type
                      << ": " << py.error;
      } else {
        EXPECT_EQ(e.raised_message(), py.error) << t.file << " / " << name;
        ++raised;
      }
    } catch (const jinja::Error& e) {
      if (py.ok || py.error_type == "TemplateError") {
        ADD_FAILURE() << t.file << " / " << name << ": flatline failed: " << e.what() << "; Python "
                      << (py.ok ? "rendered" : py.error_type + ": " + py.error);
      } else {
        ++failed;  // both engines reject this conversation (e.g. None content concatenated)
      }
    }
  }
  RecordProperty("identical", identical);
  std::printf("[ jinja    ] %-55s %d identical, %d raise_exception, %d both failed\n", t.file.c_str(), identical,
              raised, failed);
}

std::string test_name(const ::testing::TestParamInfo<TemplateEntry>& info) {
  std::string n = info.param.file.substr(0, info.param.file.rfind('.'));
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Corpus, JinjaChatTemplates, ::testing::ValuesIn(template_entries()), test_name);

}  // namespace
}  // namespace flatline
