// The seam between a prompt and the text a model writes. A Generator runs
// one reply into a conversation and streams events while it does: pieces of
// text, and for models that refine a whole canvas (masked diffusion) the
// canvas after each step. Autoregressive models use AutoregressiveGenerator
// (sample, feed back, stop); the model's traits decide which one a request
// gets (make_generator).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/engine.h"

namespace flatline {

struct GenerationEvent {
  enum class Kind { Text, Canvas };
  Kind kind = Kind::Text;
  std::string_view text;               // Text: the next visible piece
  std::span<const int32_t> canvas;     // Canvas: the ids of the canvas (mask id where still masked)
  int64_t step = 0, steps = 0;         // Canvas: which refinement step this is
};

// Return false to cancel.
using EventSink = std::function<bool(const GenerationEvent&)>;

class Generator {
 public:
  virtual ~Generator() = default;
  // Feeds `prompt` (which extends conv.fed_text) and generates the reply.
  virtual GenerateResult generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                                  const EventSink& sink) = 0;
  // The same from token ids fed as they are (flatline run --prompt-tokens).
  virtual GenerateResult generate_from_ids(Conversation& conv, std::span<const int32_t> ids,
                                           const GenerateOptions& options, const EventSink& sink) = 0;
};

class AutoregressiveGenerator final : public Generator {
 public:
  explicit AutoregressiveGenerator(Engine& engine) : engine_(engine) {}
  GenerateResult generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                          const EventSink& sink) override;
  GenerateResult generate_from_ids(Conversation& conv, std::span<const int32_t> ids, const GenerateOptions& options,
                                   const EventSink& sink) override;

 private:
  // The sampling loop after the prompt is in the state.
  void decode(Conversation& conv, const GenerateOptions& options, const EventSink& sink, GenerateResult& r,
              int64_t t1);
  Engine& engine_;
};

// The log-probability of `chosen` and the `n_top` most likely ids under
// log-softmax(logits) (-inf entries excluded); `scratch` is reused storage.
TokenLogprob token_logprob(std::span<const float> logits, int32_t chosen, int32_t n_top,
                           std::vector<std::pair<float, int32_t>>& scratch);

// The generator the model's traits call for.
std::unique_ptr<Generator> make_generator(Engine& engine);

}  // namespace flatline
