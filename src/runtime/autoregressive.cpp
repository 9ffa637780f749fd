// The autoregressive generator: sample from the last logits, stream the
// token's text (complete UTF-8 only, stop strings held back), feed it back,
// until the model ends its turn, a stop string appears, the budget or the
// context runs out, or the caller cancels. The last sampled token stays
// pending (shown but not fed) so that a following request which continues
// with it pays no extra decode step (see Conversation).
#include <chrono>
#include <cstring>

#include "runtime/diffusion.h"
#include "runtime/generator.h"
#include "runtime/text_stream.h"
#include "util/error.h"

namespace flatline {

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

GenerateResult AutoregressiveGenerator::generate(Conversation& conv, std::string_view prompt,
                                                 const GenerateOptions& options, const EventSink& sink) {
  GenerateResult r;
  engine_.reset_stats();
  const int64_t t0 = now_ns();
  r.prompt_eval_count = engine_.feed_prompt(conv, prompt);
  const int64_t t1 = now_ns();
  r.prompt_eval_ns = t1 - t0;
  decode(conv, options, sink, r, t1);
  return r;
}

GenerateResult AutoregressiveGenerator::generate_from_ids(Conversation& conv, std::span<const int32_t> ids,
                                                          const GenerateOptions& options, const EventSink& sink) {
  GenerateResult r;
  engine_.reset_stats();
  const int64_t t0 = now_ns();
  r.prompt_eval_count = engine_.feed_ids(conv, ids);
  const int64_t t1 = now_ns();
  r.prompt_eval_ns = t1 - t0;
  decode(conv, options, sink, r, t1);
  return r;
}

void AutoregressiveGenerator::decode(Conversation& conv, const GenerateOptions& options, const EventSink& sink,
                                     GenerateResult& r, int64_t t1) {
  r.prompt_tokens = static_cast<int64_t>(conv.tokens.size());
  LoadedModel& model = engine_.loaded();
  const Tokenizer& tok = model.tokenizer();
  std::vector<std::string> stops = options.stop;
  if (options.use_template_stops)
    for (auto& s : engine_.chat_template().stop_strings()) stops.push_back(s);
  TextStream stream(stops);
  // Sampling stays within the tokenizer's ids: a padded embedding table may
  // have rows no token stands for.
  Sampler sampler(options.sampling, static_cast<int32_t>(std::min<int64_t>(model.info().n_vocab, tok.n_vocab())));
  std::vector<float> logits(conv.last_logits.size());
  ModelState& st = *conv.state;
  bool cancelled = false;

  auto emit = [&](const std::string& text) {
    if (text.empty() || !sink || cancelled) return;
    GenerationEvent e;
    e.text = text;
    if (!sink(e)) cancelled = true;
  };
  auto keep_pending = [&](int32_t id, const std::string& text) {
    conv.pending_tokens.assign(1, id);
    conv.pending_text = text;
  };

  for (;;) {
    if (options.num_predict >= 0 && r.eval_count >= options.num_predict) {
      r.done_reason = DoneReason::Length;
      break;
    }
    if (options.should_stop && options.should_stop()) {
      r.done_reason = DoneReason::Cancelled;
      break;
    }
    std::memcpy(logits.data(), conv.last_logits.data(), logits.size() * sizeof(float));
    if (options.constraint && !options.constraint->apply(logits)) {
      r.done_reason = DoneReason::Stop;  // the grammar allows no token at all
      break;
    }
    const int32_t id = sampler.sample(logits.data(), conv.tokens);
    if (options.constraint) options.constraint->accept(id);
    if (tok.is_end_of_generation(id)) {
      keep_pending(id, tok.token_bytes(id, /*render_special=*/true));
      r.done_reason = DoneReason::Stop;
      break;
    }
    ++r.eval_count;
    r.generated.push_back(id);
    const std::string bytes = tok.token_bytes(id, /*render_special=*/true);
    const bool hit_stop = stream.push(tok.token_bytes(id));
    emit(stream.release());
    const bool context_full = st.n_ctx() > 0 && st.n_past() + 1 > st.n_ctx();
    const bool out_of_budget = options.num_predict >= 0 && r.eval_count >= options.num_predict;
    if (hit_stop || cancelled || context_full || out_of_budget) {
      keep_pending(id, bytes);
      r.done_reason = hit_stop ? DoneReason::Stop : cancelled ? DoneReason::Cancelled : DoneReason::Length;
      break;
    }
    engine_.feed_token(conv, id, bytes);
  }
  emit(stream.flush());
  r.text = stream.text();
  r.stop_string = stream.matched_stop();
  r.eval_ns = now_ns() - t1;
  r.loops_used = engine_.stats().loops_used;
}

std::unique_ptr<Generator> make_generator(Engine& engine) {
  if (engine.loaded().traits().generation == GenerationKind::MaskedDiffusion)
    return std::make_unique<DiffusionGenerator>(engine);
  return std::make_unique<AutoregressiveGenerator>(engine);
}

}  // namespace flatline
