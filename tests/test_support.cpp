#include "test_support.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <stdexcept>

namespace flatline::test {

std::string shared_dir() {
  const char* env = std::getenv("FLATLINE_SHARED_DIR");
  std::string dir = env && *env ? env : FLATLINE_DEFAULT_SHARED_DIR;
  return std::filesystem::is_directory(dir) ? dir : "";
}

std::string shared_model(const std::string& relative) {
  std::string dir = shared_dir();
  if (dir.empty()) return "";
  std::string path = dir + "/models/" + relative;
  return std::filesystem::exists(path) ? path : "";
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<float> read_f32_file(const std::string& path) {
  auto bytes = read_file(path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::string temp_path(const std::string& name) {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() / ("flatline-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / (std::to_string(counter++) + "-" + name)).string();
}

std::string flatline_binary() { return FLATLINE_BINARY_PATH; }
std::string source_dir() { return FLATLINE_SOURCE_DIR; }

}  // namespace flatline::test
