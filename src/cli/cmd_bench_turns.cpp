// PLACEHOLDER: `flatline bench turns` is implemented on the server branch.
#include "cli/common.h"

namespace flatline::cli {

void register_bench_turns(CLI::App& bench) { (void)bench; }

}  // namespace flatline::cli
