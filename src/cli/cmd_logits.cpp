// `flatline logits`: raw f32 logits for verification against other engines.
#include <cstdio>
#include <fstream>

#include "cli/common.h"
#include "util/error.h"

namespace flatline::cli {

void register_logits(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string tokens, out, loops_out;
    bool all = false;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "logits", "Write raw little-endian f32 logits of the last position (or all, row-major [n_tokens][n_vocab])");
  opts->model.add_to(*sub);
  sub->add_option("--tokens", opts->tokens, "Comma-separated token ids, fed from a fresh state")->required();
  sub->add_option("--out", opts->out, "Output file")->required();
  sub->add_flag("--all", opts->all, "Logits of every position");
  sub->add_option("--loops-out", opts->loops_out,
                  "Looped models: write the loops used at each position as a JSON array of integers");
  sub->callback([opts] {
    auto ids = parse_token_list(opts->tokens);
    MemoryBudget budget = opts->model.budget();
    ModelOptions mo = opts->model;
    mo.ctx = std::max<int64_t>(mo.ctx, static_cast<int64_t>(ids.size()));
    auto model = mo.load(budget);
    const int64_t n_vocab = model->info().n_vocab;
    auto state = model->model().new_state(mo.ctx);
    std::vector<float> logits(static_cast<size_t>((opts->all ? ids.size() : 1) * n_vocab));
    auto ws = model->model().new_workspace();
    ForwardStats stats;
    SequenceInput in{state.get(), ids, opts->all ? LogitsMode::All : LogitsMode::Last, logits.data(), &stats};
    ForwardArgs args;
    args.sequences = std::span<const SequenceInput>(&in, 1);
    model->model().forward(args, *ws);
    if (!opts->loops_out.empty()) {
      std::ofstream lo(opts->loops_out);
      lo << "[";
      for (size_t i = 0; i < stats.loops_used.size(); ++i) lo << (i ? "," : "") << stats.loops_used[i];
      lo << "]\n";
      if (!lo) throw Error("cannot write " + opts->loops_out);
    }
    std::ofstream out(opts->out, std::ios::binary);
    if (!out) throw Error("cannot write " + opts->out);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    if (!out) throw Error("cannot write " + opts->out);
    std::fprintf(stderr, "wrote %zu x %lld logits to %s\n", opts->all ? ids.size() : size_t{1},
                 static_cast<long long>(n_vocab), opts->out.c_str());
  });
}

}  // namespace flatline::cli
