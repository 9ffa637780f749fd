// `flatline bench`: prompt-processing and generation speed (like llama-bench)
// plus memory and the fraction of the memory-bandwidth limit reached.
// `flatline bench turns` (cmd_bench_turns.cpp) is the multi-turn benchmark.
#include "cli/common.h"

namespace flatline::cli {

void register_bench_turns(CLI::App& bench);

void register_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Measure speed: pp/tg tokens/s, memory, roofline fraction; `bench turns` for chat");
  register_bench_turns(*sub);
}

}  // namespace flatline::cli
