// `flatline perplexity MODEL FILE`: exp(mean negative log-likelihood) of a
// text, the standard quality check llama.cpp users know.
//
// Recurrent models read the whole text as one sequence from a fresh state
// (their context is unbounded). Transformers read it in windows of --ctx
// tokens, each from a fresh state, scoring every token after the window's
// first. In both cases the first token of the text is not predicted.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/common.h"
#include "runtime/perplexity.h"
#include "util/error.h"

namespace flatline::cli {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void register_perplexity(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string text_file;
    int64_t max_tokens = 0;
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("perplexity", "Perplexity of a text file (exp of the mean negative log-likelihood)");
  opts->model.add_to(*sub);
  sub->add_option("file", opts->text_file, "UTF-8 text file")->required();
  bounded(sub->add_option("--max-tokens", opts->max_tokens, "Score at most this many tokens (0: all)"), 0,
          int64_t{1} << 40);
  sub->add_flag("--json", opts->json, "Print the result as JSON");
  sub->callback([opts] {
    const Options& o = *opts;
    MemoryBudget budget = o.model.budget();
    auto lm = o.model.load(budget);
    const Tokenizer& tok = lm->tokenizer();
    std::vector<int32_t> ids;
    if (tok.add_bos() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    auto body = tok.encode(read_text(o.text_file), false);
    ids.insert(ids.end(), body.begin(), body.end());
    if (o.max_tokens > 0 && static_cast<int64_t>(ids.size()) > o.max_tokens + 1) ids.resize(o.max_tokens + 1);
    if (ids.size() < 2) throw Error(o.text_file + ": needs at least 2 tokens, has " + std::to_string(ids.size()));

    auto start = std::chrono::steady_clock::now();
    PerplexityResult r = compute_perplexity(*lm, ids, o.model.ctx, o.model.batch, [&](int64_t done, int64_t total, double ppl) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r[%lld/%lld tokens] perplexity so far %.4f (%.0f tok/s)   ", static_cast<long long>(done),
                   static_cast<long long>(total), ppl, done / secs);
    });
    std::fprintf(stderr, "\n");
    const double ppl = r.perplexity;
    const double nll = r.mean_nll * r.scored;
    const int64_t scored = r.scored;
    if (o.json)
      std::printf("{\"perplexity\": %.6f, \"tokens\": %lld, \"mean_nll\": %.8f}\n", ppl,
                  static_cast<long long>(scored), nll / scored);
    else
      std::printf("perplexity: %.4f over %lld tokens (mean NLL %.6f nats)\n", ppl, static_cast<long long>(scored),
                  nll / scored);
  });
}

}  // namespace flatline::cli
