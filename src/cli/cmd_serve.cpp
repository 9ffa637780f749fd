#include "cli/common.h"
namespace flatline::cli {
void register_serve(CLI::App& app) { (void)app; }
}  // namespace flatline::cli
