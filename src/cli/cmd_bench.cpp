#include "cli/common.h"
namespace flatline::cli {
void register_bench(CLI::App& app) { (void)app; }
}  // namespace flatline::cli
