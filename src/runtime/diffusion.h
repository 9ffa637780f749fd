// The masked-diffusion generator (LLaDA, Dream): the prompt followed by
// gen_length mask tokens is refined over a number of steps; each step is one
// bidirectional pass over the canvas (a matmul over all its rows), after
// which the most confident masked positions are filled in.
//
// Schedules: blocks of block_length positions decoded left to right with an
// even split of their masks over the block's steps (LLaDA's generate.py), or
// one timestep schedule over the whole generation (Dream: t from 1 to eps,
// a fraction 1 - s/t of the remaining masks filled per step, all at the
// last). Confidence: the sampled token's probability (confidence), minus the
// entropy (entropy), top-1 minus top-2 probability (margin), uniform random
// (random), or Dream's origin (each masked position filled with probability
// transfer / masked).
//
// Two ways to pick a position's token:
//   temperature 0: argmax, confidence from the unfiltered distribution (the
//     LLaDA / Dream reference code);
//   otherwise llama.cpp's diffusion sampler: top-k, top-p, temperature, then a
//     draw from std::mt19937(seed), confidence from that filtered
//     distribution. --top-k 1 is its greedy mode (every confidence 1, ties
//     filled left to right).
// A block stops early once it has no masks left; generation stops after a
// block that committed an end-of-generation token.
#pragma once

#include "runtime/generator.h"

namespace flatline {

class DiffusionGenerator final : public Generator {
 public:
  explicit DiffusionGenerator(Engine& engine);
  GenerateResult generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                          const EventSink& sink) override;
  GenerateResult generate_from_ids(Conversation& conv, std::span<const int32_t> ids, const GenerateOptions& options,
                                   const EventSink& sink) override;

 private:
  GenerateResult run(Conversation& conv, std::vector<int32_t> prompt, const GenerateOptions& options,
                     const EventSink& sink);

  Engine& engine_;
  int32_t mask_ = -1;
  bool shift_ = false;
  bool llada_ = true;  // default schedule and algorithm: LLaDA's (blocks, confidence) or Dream's (timestep, entropy)
};

// Parses "origin" | "entropy" | "margin" | "random" | "confidence" (also
// "low-confidence", LLaDA's name for it). Throws Error listing them.
DiffusionAlgorithm parse_diffusion_algorithm(const std::string& name);

}  // namespace flatline
