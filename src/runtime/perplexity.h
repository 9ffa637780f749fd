// Perplexity of a text under a model: exp(mean negative log-likelihood of
// each token given the ones before it), the quality number llama.cpp's
// `perplexity` tool reports.
//
// Recurrent models read the whole text as one sequence from a fresh state
// (their context is unbounded). Transformers read it in windows of `window`
// tokens, each from a fresh state. The first token of the text (and of each
// window) is fed but not predicted.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "runtime/engine.h"

namespace flatline {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;      // nats per predicted token
  int64_t scored = 0;       // predicted tokens
};

// progress(scored, total) is called after every chunk.
PerplexityResult compute_perplexity(LoadedModel& model, std::span<const int32_t> ids, int64_t window, int64_t chunk,
                                    const std::function<void(int64_t, int64_t, double)>& progress = {});

// log softmax(logits)[target], in double precision.
double log_softmax_at(const float* logits, int64_t n_vocab, int32_t target);

}  // namespace flatline
