// The `flatline` command: thin front ends over the library.
#include <malloc.h>

#include <cstdio>
#include <exception>

#include "cli/common.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  // Large buffers (model states, KV caches, snapshots) come from mmap and go
  // back to the system when freed. glibc would otherwise raise this
  // threshold after the first free and serve them from the heap, where
  // fragmentation makes resident memory creep up turn after turn.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CLI::App app{"flatline: local language models on small CPUs, fast and flat however long the conversation"};
  app.set_version_flag("--version", std::string("flatline ") + FLATLINE_VERSION);
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  flatline::cli::register_run(app);
  flatline::cli::register_info(app);
  flatline::cli::register_tokenize(app);
  flatline::cli::register_logits(app);
  flatline::cli::register_bench(app);
  flatline::cli::register_serve(app);
  flatline::cli::register_perplexity(app);
  flatline::cli::register_quantize(app);
  flatline::cli::register_synth(app);
  flatline::cli::register_convert(app);
  flatline::cli::register_create(app);
  app.parse_complete_callback([&] {
    if (verbose) flatline::set_log_level(flatline::LogLevel::Debug);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const flatline::MemoryBudgetError& e) {
    std::fprintf(stderr, "flatline: out of memory budget: %s\n", e.what());
    return 3;
  } catch (const flatline::Error& e) {
    std::fprintf(stderr, "flatline: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flatline: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
