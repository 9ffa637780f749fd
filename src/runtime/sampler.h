// Turning logits into the next token: repetition penalties, top-k, top-p,
// min-p, temperature, seeded random choice. Order as llama.cpp's default
// chain: penalties -> top_k -> top_p -> min_p -> temperature -> sample.
// temperature <= 0 means greedy (argmax after penalties).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace flatline {

// A hook the generator calls around each sampling step: constrained
// decoding (a grammar's token mask, runtime/grammar_constraint.h) and
// observers of the chosen tokens (log-probabilities, the raw text a
// tool-call parser reads).
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sees the logits before the sampler does and sets those of tokens that
  // may not come next to -infinity. Returns false when no token may come
  // next: the generation then ends (done_reason "stop").
  virtual bool apply(std::span<float> logits) = 0;
  // The token that was sampled (end-of-generation tokens included).
  virtual void accept(int32_t id) = 0;
};

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;          // <= 0: off
  float top_p = 0.9f;          // >= 1: off
  float min_p = 0.0f;          // <= 0: off
  float repeat_penalty = 1.0f; // 1: off (llama.cpp / Ollama semantics: divide positive, multiply negative logits)
  int32_t repeat_last_n = 64;  // window of previous tokens the penalties look at; -1 = whole history
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t seed = -1;           // < 0: random
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, int32_t n_vocab);

  // Picks a token from `logits` (n_vocab values, modified in place by the
  // penalties). `history` is every token of the context so far.
  int32_t sample(float* logits, std::span<const int32_t> history);

  const SamplerParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  void apply_penalties(float* logits, std::span<const int32_t> history);
  int32_t argmax(const float* logits) const;

  SamplerParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // reused: no allocation per token
  std::vector<int32_t> counts_;        // per-token occurrence counts in the window
};

}  // namespace flatline
