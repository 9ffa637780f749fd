#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace flatline {

double log_softmax_at(const float* logits, int64_t n_vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  return static_cast<double>(logits[target] - mx) - std::log(sum);
}

PerplexityResult compute_perplexity(LoadedModel& lm, std::span<const int32_t> ids, int64_t window, int64_t chunk,
                                    const std::function<void(int64_t, int64_t, double)>& progress) {
  if (ids.size() < 2) throw Error("perplexity needs at least 2 tokens, got " + std::to_string(ids.size()));
  Model& model = lm.model();
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t n_vocab = lm.info().n_vocab;
  if (!lm.traits().has_context_limit || window <= 0) window = n;
  window = std::max<int64_t>(2, window);
  chunk = std::max<int64_t>(1, chunk);
  std::vector<float> logits(static_cast<size_t>(chunk * n_vocab));
  auto workspace = model.new_workspace();
  double nll = 0;
  PerplexityResult r;
  for (int64_t w0 = 0; w0 + 1 < n; w0 += window - 1) {
    const int64_t w1 = std::min(n, w0 + window);
    auto state = model.new_state(window);
    for (int64_t c0 = w0; c0 < w1 - 1; c0 += chunk) {
      const int64_t c1 = std::min(w1 - 1, c0 + chunk);
      model.forward(*state, ids.subspan(static_cast<size_t>(c0), static_cast<size_t>(c1 - c0)), LogitsMode::All,
                    logits.data(), *workspace);
      for (int64_t t = c0; t < c1; ++t) {
        nll -= log_softmax_at(logits.data() + (t - c0) * n_vocab, n_vocab, ids[static_cast<size_t>(t + 1)]);
        ++r.scored;
      }
      if (progress) progress(r.scored, n - 1, std::exp(nll / r.scored));
    }
  }
  r.mean_nll = nll / r.scored;
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace flatline
