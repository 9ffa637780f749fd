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

// log softmax(logits)[target]
double log_prob(const float* logits, int64_t n_vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  return static_cast<double>(logits[target] - mx) - std::log(sum);
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
  sub->add_option("--max-tokens", opts->max_tokens, "Score at most this many tokens (0: all)");
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

    Model& model = lm->model();
    const int64_t n_vocab = lm->info().n_vocab;
    const bool recurrent = lm->info().recurrent;
    const int64_t window = recurrent ? static_cast<int64_t>(ids.size()) : std::max<int64_t>(2, o.model.ctx);
    const int64_t chunk = std::max<int64_t>(1, o.model.batch);
    std::vector<float> logits(static_cast<size_t>(chunk * n_vocab));
    double nll = 0;
    int64_t scored = 0;
    auto start = std::chrono::steady_clock::now();
    for (int64_t w0 = 0; w0 + 1 < static_cast<int64_t>(ids.size()); w0 += window - 1) {
      const int64_t w1 = std::min<int64_t>(static_cast<int64_t>(ids.size()), w0 + window);
      auto state = model.new_state(window);
      for (int64_t c0 = w0; c0 < w1 - 1; c0 += chunk) {
        const int64_t c1 = std::min(w1 - 1, c0 + chunk);
        std::span<const int32_t> part(ids.data() + c0, static_cast<size_t>(c1 - c0));
        model.forward(*state, part, LogitsMode::All, logits.data());
        for (int64_t t = c0; t < c1; ++t) {
          nll -= log_prob(logits.data() + (t - c0) * n_vocab, n_vocab, ids[t + 1]);
          ++scored;
        }
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\r[%lld/%zu tokens] perplexity so far %.4f (%.0f tok/s)   ",
                     static_cast<long long>(scored), ids.size() - 1, std::exp(nll / scored), scored / secs);
      }
    }
    std::fprintf(stderr, "\n");
    double ppl = std::exp(nll / scored);
    if (o.json)
      std::printf("{\"perplexity\": %.6f, \"tokens\": %lld, \"mean_nll\": %.8f}\n", ppl,
                  static_cast<long long>(scored), nll / scored);
    else
      std::printf("perplexity: %.4f over %lld tokens (mean NLL %.6f nats)\n", ppl, static_cast<long long>(scored),
                  nll / scored);
  });
}

}  // namespace flatline::cli
