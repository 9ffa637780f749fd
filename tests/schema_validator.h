// Outside truth for structured output: Debian's python3-jsonschema, run on
// a batch of (schema, texts) cases by tests/grammar/validate_json.py.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.h"

namespace flatline::test {

inline bool python_jsonschema_available() {
  return std::system("/usr/bin/python3 -c 'import jsonschema' >/dev/null 2>&1") == 0;
}

// `cases`: [{"schema": S, "texts": [T, ...]}, ...]. Returns, per case and
// text, "" when the text parses and validates, else the validator's message.
inline std::vector<std::vector<std::string>> validate_with_python(const nlohmann::ordered_json& cases) {
  const std::string in = temp_path("schema_cases.json");
  std::ofstream(in) << cases.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  const std::string cmd = "/usr/bin/python3 " + source_dir() + "/tests/grammar/validate_json.py " + in;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return nlohmann::json::parse(out).get<std::vector<std::vector<std::string>>>();
}

}  // namespace flatline::test
