#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace flatline {

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab), counts_(static_cast<size_t>(n_vocab), 0) {
  uint64_t seed = params.seed >= 0 ? static_cast<uint64_t>(params.seed) : std::random_device{}();
  rng_.seed(seed);
  candidates_.reserve(static_cast<size_t>(n_vocab));
}

void Sampler::apply_penalties(float* logits, std::span<const int32_t> history) {
  const bool any = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                   params_.frequency_penalty != 0.0f;
  if (!any || params_.repeat_last_n == 0 || history.empty()) return;
  size_t window = params_.repeat_last_n < 0 ? history.size()
                                             : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  auto recent = history.subspan(history.size() - window);
  for (int32_t id : recent)
    if (id >= 0 && id < n_vocab_) ++counts_[static_cast<size_t>(id)];
  for (int32_t id : recent) {
    if (id < 0 || id >= n_vocab_) continue;
    int32_t& count = counts_[static_cast<size_t>(id)];
    if (count == 0) continue;  // already penalised (duplicates in the window)
    float& l = logits[id];
    if (params_.repeat_penalty != 1.0f) l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
    count = 0;
  }
}

int32_t Sampler::argmax(const float* logits) const {
  return static_cast<int32_t>(std::max_element(logits, logits + n_vocab_) - logits);
}

int32_t Sampler::sample(float* logits, std::span<const int32_t> history) {
  apply_penalties(logits, history);
  if (params_.temperature <= 0.0f || params_.top_k == 1) return argmax(logits);

  candidates_.clear();
  for (int32_t i = 0; i < n_vocab_; ++i) candidates_.push_back({i, logits[i], 0.0f});
  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; };

  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }

  // Probabilities at temperature 1 for top-p / min-p, as llama.cpp does.
  auto softmax = [&](float temperature) {
    const float max_logit = candidates_[0].logit;
    double sum = 0;
    for (auto& c : candidates_) {
      c.p = std::exp((c.logit - max_logit) / temperature);
      sum += c.p;
    }
    for (auto& c : candidates_) c.p = static_cast<float>(c.p / sum);
  };
  softmax(1.0f);
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      cum += candidates_[n].p;
      ++n;
      if (cum >= params_.top_p) break;
    }
    candidates_.resize(std::max<size_t>(n, 1));
  }
  if (params_.min_p > 0.0f) {
    const float threshold = candidates_[0].p * params_.min_p;
    size_t n = 1;
    while (n < candidates_.size() && candidates_[n].p >= threshold) ++n;
    candidates_.resize(n);
  }
  softmax(params_.temperature);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  double r = uniform(rng_);
  double cum = 0;
  for (const auto& c : candidates_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return candidates_.back().id;
}

}  // namespace flatline
