// Writes the state-file seeds of fuzz/corpus/state_file: one short
// conversation saved by each model given on the command line.
//   make_state_seeds OUT_DIR NAME=MODEL.gguf...
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "runtime/engine.h"
#include "runtime/state_cache.h"
#include "tensor/thread_pool.h"
#include "util/error.h"

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::cerr << "usage: make_state_seeds OUT_DIR NAME=MODEL.gguf...\n";
    return 2;
  }
  const std::filesystem::path out_dir = argv[1];
  std::filesystem::create_directories(out_dir);
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) throw flatline::Error("expected NAME=MODEL.gguf, got " + arg);
    flatline::LoadOptions o;
    o.pool = std::make_shared<flatline::ThreadPool>(1);
    auto model = flatline::LoadedModel::load(arg.substr(eq + 1), o);
    flatline::Engine engine(*model);
    flatline::Conversation conv = engine.new_conversation(model->traits().has_context_limit ? 64 : 0);
    flatline::GenerateOptions g;
    g.sampling.temperature = 0;
    g.num_predict = 3;
    g.use_template_stops = false;
    engine.generate(conv, "User: hi\n\nAssistant:", g);
    const std::vector<uint8_t> bytes = flatline::encode_state_file(conv, model->fingerprint());
    std::ofstream(out_dir / (arg.substr(0, eq) + ".flstate"), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    std::cout << arg.substr(0, eq) << ": " << bytes.size() << " bytes\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "make_state_seeds: " << e.what() << "\n";
  return 1;
}
