// Helpers shared by the tests: where the outside-truth fixtures are, and
// reading raw f32 files.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flatline::test {

// ../shared (or $FLATLINE_SHARED_DIR); empty if it does not exist.
std::string shared_dir();
// Path of a file under ../shared/models, or "" when absent.
std::string shared_model(const std::string& relative);
std::vector<float> read_f32_file(const std::string& path);
std::vector<uint8_t> read_file(const std::string& path);
std::string temp_path(const std::string& name);  // unique path under the test temp dir
std::string flatline_binary();                    // path of the built `flatline` command
std::string source_dir();                         // the checkout this test binary was built from

}  // namespace flatline::test

// Skips the current test with a clear message when a ../shared fixture is
// missing (CI without ../shared must not pass silently).
#define REQUIRE_SHARED_MODEL(var, relative)                                                     \
  std::string var = ::flatline::test::shared_model(relative);                                  \
  if (var.empty()) GTEST_SKIP() << "fixture ../shared/models/" << (relative)                   \
                                << " not found (set FLATLINE_SHARED_DIR); skipping this check"
