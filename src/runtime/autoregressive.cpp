// The autoregressive generator: sample from the last logits, stream the
// token's text (complete UTF-8 only, stop strings held back), feed it back,
// until the model ends its turn, a stop string appears, the budget or the
// context runs out, or the caller cancels. The last sampled token stays
// pending (shown but not fed) so that a following request which continues
// with it pays no extra decode step (see Conversation).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

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

// log p(chosen) = logit - log(sum exp(logits)), in double, over the ids the
// sampler may pick; masked (-inf) ids take no part.
TokenLogprob token_logprob(std::span<const float> logits, int32_t chosen, int32_t n_top,
                           std::vector<std::pair<float, int32_t>>& scratch) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float l : logits) max_logit = std::max(max_logit, l);
  double sum = 0;
  for (float l : logits)
    if (l != -std::numeric_limits<float>::infinity()) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  TokenLogprob out;
  out.id = chosen;
  out.logprob = static_cast<float>(logits[static_cast<size_t>(chosen)] - log_z);
  if (n_top <= 0) return out;
  scratch.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] != -std::numeric_limits<float>::infinity()) scratch.push_back({logits[i], static_cast<int32_t>(i)});
  const size_t k = std::min(scratch.size(), static_cast<size_t>(n_top));
  // Ties go to the lower id, so the list does not depend on the sort.
  std::partial_sort(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k), scratch.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (size_t i = 0; i < k; ++i) out.top.push_back({scratch[i].second, static_cast<float>(scratch[i].first - log_z)});
  return out;
}

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
  const size_t n_choosable = static_cast<size_t>(std::min<int64_t>(model.info().n_vocab, tok.n_vocab()));
  Sampler sampler(options.sampling, static_cast<int32_t>(n_choosable));
  std::vector<float> logits(conv.last_logits.size());
  ModelState& st = *conv.state;
  bool cancelled = false;
  const bool record_logprobs = options.top_logprobs >= 0;
  const int32_t n_top = std::min(options.top_logprobs, GenerateOptions::kMaxTopLogprobs);
  std::vector<float> masked_logits(record_logprobs ? logits.size() : 0);
  std::vector<std::pair<float, int32_t>> top_scratch;

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
    // The distribution before the sampler's penalties change it in place.
    if (record_logprobs) std::memcpy(masked_logits.data(), logits.data(), logits.size() * sizeof(float));
    const int32_t id = sampler.sample(logits.data(), conv.tokens);
    if (options.constraint) options.constraint->accept(id);
    if (tok.is_end_of_generation(id)) {
      keep_pending(id, tok.token_bytes(id, /*render_special=*/true));
      r.done_reason = DoneReason::Stop;
      break;
    }
    ++r.eval_count;
    r.generated.push_back(id);
    if (record_logprobs) {
      r.logprobs.push_back(token_logprob({masked_logits.data(), n_choosable}, id, n_top, top_scratch));
      if (options.logprob_log) options.logprob_log->push_back(r.logprobs.back());
    }
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
