// Runs a fuzz target over files and directories of inputs (a corpus), the way
// libFuzzer replays one, so the corpora in fuzz/corpus/ are regression tests
// under any compiler's sanitizers.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include "fuzz_target.h"

namespace {

int replay_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    return 1;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int inputs = 0, failures = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        failures += replay_file(entry.path());
        ++inputs;
      }
    } else {
      failures += replay_file(arg);
      ++inputs;
    }
  }
  if (inputs == 0) {
    std::cerr << "no inputs given (pass corpus files or directories)\n";
    return 1;
  }
  std::cout << "replayed " << inputs << " inputs\n";
  return failures == 0 ? 0 : 1;
}
