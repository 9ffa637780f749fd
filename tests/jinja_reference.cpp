#include "jinja_reference.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "test_support.h"

namespace flatline::test {

namespace {
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, which sees python3-jinja2
}

std::string python_jinja_unavailable_reason() {
  static const std::string reason = [] {
    const std::string cmd = std::string(kPython) + " -c 'import jinja2' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return std::string("/usr/bin/python3 cannot import jinja2 (install Debian's python3-jinja2, see "
                         "tools/install-deps.sh); skipping the comparison with Python's Jinja2");
    return std::string();
  }();
  return reason;
}

std::vector<ReferenceResult> render_with_python(const std::vector<ReferenceCase>& cases) {
  nlohmann::ordered_json job;
  job["cases"] = nlohmann::ordered_json::array();
  for (const ReferenceCase& c : cases)
    job["cases"].push_back({{"template", c.template_source}, {"context", c.context}, {"now", kReferenceNow}});
  const std::string in_path = temp_path("jinja-job.json");
  const std::string out_path = temp_path("jinja-out.json");
  const std::string err_path = temp_path("jinja-err.txt");
  {
    std::ofstream in(in_path, std::ios::binary);
    in << job.dump();
  }
  const std::string script = source_dir() + "/tests/jinja/render_reference.py";
  const std::string cmd = std::string(kPython) + " '" + script + "' < '" + in_path + "' > '" + out_path + "' 2> '" +
                          err_path + "'";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream err(err_path);
    std::stringstream ss;
    ss << err.rdbuf();
    throw std::runtime_error("render_reference.py failed: " + ss.str());
  }
  std::ifstream out(out_path, std::ios::binary);
  const nlohmann::json results = nlohmann::json::parse(out);
  std::vector<ReferenceResult> rv;
  for (const auto& r : results.at("results")) {
    ReferenceResult x;
    x.ok = r.at("ok").get<bool>();
    if (x.ok) {
      x.output = r.at("output").get<std::string>();
    } else {
      x.error_type = r.at("error_type").get<std::string>();
      x.error = r.at("error").get<std::string>();
    }
    rv.push_back(std::move(x));
  }
  if (rv.size() != cases.size()) throw std::runtime_error("render_reference.py returned the wrong number of results");
  return rv;
}

}  // namespace flatline::test
