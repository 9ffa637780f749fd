// `flatline synth`: writes a random-weight model with a published shape, for
// benchmarks (bench/) and tests. Its output is meaningless text.
#include <cstdio>

#include "cli/common.h"
#include "models/synthetic.h"
#include "util/error.h"

namespace flatline::cli {

void register_synth(CLI::App& app) {
  struct Options {
    std::string arch = "rwkv7", preset = "2.9b", type = "q8_0", out;
    uint64_t seed = 1;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("synth", "Write a random-weight GGUF with a real model's shape (for benchmarks)");
  sub->add_option("--arch", opts->arch, "Architecture (rwkv7)")->capture_default_str();
  sub->add_option("--preset", opts->preset, "Size: 0.1b, 0.4b, 1.5b, 2.9b, 7.2b")->capture_default_str();
  sub->add_option("--type", opts->type, "Weight type (q8_0, q4_0, q4_k, f16, ...)")->capture_default_str();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("-o,--out", opts->out, "Output file")->required();
  sub->callback([opts] {
    auto type = dtype_from_name(opts->type);
    if (!type) throw Error("unknown weight type '" + opts->type + "'");
    if (opts->arch != "rwkv7") throw Error("synth: only --arch rwkv7 is implemented");
    write_synthetic_rwkv7(opts->out, rwkv7_preset(opts->preset), *type, opts->seed);
    std::fprintf(stderr, "wrote %s\n", opts->out.c_str());
  });
}

}  // namespace flatline::cli
