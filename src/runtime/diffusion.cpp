#include "runtime/diffusion.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "models/diffusion_lm.h"
#include "runtime/text_stream.h"
#include "util/error.h"

namespace flatline {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Candidate {
  int32_t id;
  float logit;
  float p;
};

// The token picked for one masked position, and how confident the pick is.
struct Pick {
  int32_t token;
  float confidence;
};

// One position's choice from its logits (see diffusion.h for the two ways).
class PositionSampler {
 public:
  PositionSampler(const SamplerParams& params, DiffusionAlgorithm algorithm, int64_t n_vocab, uint32_t seed)
      : params_(params), algorithm_(algorithm), n_vocab_(n_vocab), dist_rng_(seed), cand_(static_cast<size_t>(n_vocab)) {}

  Pick pick(const float* logits, std::mt19937& rng) {
    return params_.temperature <= 0.0f ? argmax_pick(logits, rng) : chain_pick(logits, rng);
  }

 private:
  // The reference code's way: argmax, confidence from softmax(logits).
  Pick argmax_pick(const float* logits, std::mt19937& rng) {
    int32_t best = 0;
    for (int64_t i = 1; i < n_vocab_; ++i)
      if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    const float mx = logits[best];
    double sum = 0;
    for (int64_t i = 0; i < n_vocab_; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    const auto prob = [&](int64_t i) { return static_cast<float>(std::exp(static_cast<double>(logits[i] - mx)) / sum); };
    switch (algorithm_) {
      case DiffusionAlgorithm::Entropy:
      case DiffusionAlgorithm::EntropyHighFirst: {
        double neg_entropy = 0;  // sum p log p: higher is more confident
        for (int64_t i = 0; i < n_vocab_; ++i) {
          const double p = std::exp(static_cast<double>(logits[i] - mx)) / sum;
          if (p > 0) neg_entropy += p * std::log(p);
        }
        const double c = algorithm_ == DiffusionAlgorithm::Entropy ? neg_entropy : -neg_entropy;
        return {best, static_cast<float>(c)};
      }
      case DiffusionAlgorithm::Margin: {
        int32_t second = best == 0 ? 1 : 0;
        for (int64_t i = 0; i < n_vocab_; ++i)
          if (i != best && logits[i] > logits[second]) second = static_cast<int32_t>(i);
        return {best, prob(best) - prob(second)};
      }
      case DiffusionAlgorithm::Random: return {best, std::uniform_real_distribution<float>(0.0f, 1.0f)(rng)};
      default: return {best, prob(best)};
    }
  }

  // llama.cpp's sampler chain: top-k, top-p, temperature, then a draw.
  Pick chain_pick(const float* logits, std::mt19937& rng) {
    for (int64_t i = 0; i < n_vocab_; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    size_t n = cand_.size();
    bool sorted = false;
    if (params_.top_k > 0) {
      n = std::min<size_t>(n, static_cast<size_t>(params_.top_k));
      std::partial_sort(cand_.begin(), cand_.begin() + n, cand_.end(),
                        [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
      sorted = true;
    }
    if (params_.top_p < 1.0f && n > 1) {
      if (!sorted) {
        std::sort(cand_.begin(), cand_.begin() + n, [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
        sorted = true;
      }
      softmax(n);
      double cum = 0;
      size_t keep = n;
      for (size_t i = 0; i < n; ++i) {
        cum += cand_[i].p;
        if (cum >= params_.top_p) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
    }
    if (params_.temperature != 1.0f)
      for (size_t i = 0; i < n; ++i) cand_[i].logit /= params_.temperature;
    const size_t selected = draw(n);
    return {cand_[selected].id, confidence(n, selected, sorted, rng)};
  }

  void softmax(size_t n) {
    float mx = cand_[0].logit;
    for (size_t i = 1; i < n; ++i) mx = std::max(mx, cand_[i].logit);
    float sum = 0;
    for (size_t i = 0; i < n; ++i) sum += cand_[i].p = std::exp(cand_[i].logit - mx);
    for (size_t i = 0; i < n; ++i) cand_[i].p /= sum;
  }

  // llama.cpp's dist sampler: softmax and one uniform draw from its own
  // std::mt19937 (seeded like the chain), the probabilities left normalised.
  size_t draw(size_t n) {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    if (n == 1) {
      uniform(dist_rng_);  // the draw happens for a single candidate too
      cand_[0].p = 1.0f;
      return 0;
    }
    float mx = cand_[0].logit;
    for (size_t i = 1; i < n; ++i) mx = std::max(mx, cand_[i].logit);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      cand_[i].p = std::exp(cand_[i].logit - mx);
      sum += cand_[i].p;
    }
    const double target = sum * uniform(dist_rng_);
    double run = 0;
    size_t selected = n - 1;
    bool found = false;
    for (size_t i = 0; i < n; ++i) {
      if (!found) {
        run += cand_[i].p;
        if (run >= target) selected = i, found = true;
      }
      cand_[i].p = static_cast<float>(cand_[i].p / sum);
    }
    return selected;
  }

  float confidence(size_t n, size_t selected, bool sorted, std::mt19937& rng) {
    switch (algorithm_) {
      case DiffusionAlgorithm::Entropy:
      case DiffusionAlgorithm::EntropyHighFirst: {
        float sum_plogp = 0;  // minus the entropy: higher is more confident
        for (size_t i = 0; i < n; ++i) sum_plogp += cand_[i].p * std::log(cand_[i].p + 1e-10f);
        return algorithm_ == DiffusionAlgorithm::Entropy ? sum_plogp : -sum_plogp;
      }
      case DiffusionAlgorithm::Margin: {
        if (n < 2) return cand_[0].p;
        if (!sorted) std::partial_sort(cand_.begin(), cand_.begin() + 2, cand_.begin() + n,
                                       [](const Candidate& a, const Candidate& b) { return a.p > b.p; });
        return cand_[0].p - cand_[1].p;
      }
      case DiffusionAlgorithm::Random: return std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
      default: return cand_[selected].p;
    }
  }

  SamplerParams params_;
  DiffusionAlgorithm algorithm_;
  int64_t n_vocab_;
  std::mt19937 dist_rng_;
  std::vector<Candidate> cand_;
};

// LLaDA's get_num_transfer_tokens: the masks of a block spread evenly over
// its steps, the remainder to the first ones.
std::vector<int64_t> block_transfers(int64_t masks, int64_t steps) {
  std::vector<int64_t> n(static_cast<size_t>(steps), masks / steps);
  for (int64_t i = 0; i < masks % steps; ++i) ++n[i];
  return n;
}

// Dream's timestep schedule: t = 1 - step / steps * (1 - eps), fill
// (1 - s / t) of the remaining masks, all of them at the last step.
int64_t timestep_transfers(int64_t step, int64_t steps, int64_t remaining, double eps) {
  if (step >= steps - 1) return remaining;
  const float t = 1.0f - static_cast<float>(step) / steps * (1.0f - static_cast<float>(eps));
  const float s = 1.0f - static_cast<float>(step + 1) / steps * (1.0f - static_cast<float>(eps));
  return static_cast<int64_t>(remaining * (1.0f - s / t));
}

}  // namespace

int64_t diffusion_gen_length(const DiffusionOptions& options, int64_t num_predict) {
  return options.gen_length > 0 ? options.gen_length : num_predict > 0 ? num_predict : 64;
}

void check_canvas_fits(int64_t prompt_tokens, int64_t gen_length, int64_t n_ctx) {
  if (n_ctx > 0 && prompt_tokens + gen_length > n_ctx)
    throw ContextOverflowError("the canvas needs " + std::to_string(prompt_tokens + gen_length) + " positions (a " +
                               std::to_string(prompt_tokens) + "-token prompt and " + std::to_string(gen_length) +
                               " to generate) but the context holds " + std::to_string(n_ctx) +
                               "; raise num_ctx or lower num_predict / gen_length");
}

std::string canvas_text(const LoadedModel& model, std::span<const int32_t> canvas, std::string_view mask_glyph) {
  const int32_t mask = diffusion_info(model.model().file()).mask_token;
  std::string text;
  for (int32_t id : canvas) {
    if (id == mask) text += mask_glyph;
    else text += model.tokenizer().token_bytes(id);
  }
  return text;
}

DiffusionAlgorithm parse_diffusion_algorithm(const std::string& name) {
  if (name == "origin") return DiffusionAlgorithm::Origin;
  if (name == "entropy") return DiffusionAlgorithm::Entropy;
  if (name == "entropy-llamacpp") return DiffusionAlgorithm::EntropyHighFirst;
  // Dream's own names: maskgit_plus is the top-1 probability, topk_margin the margin.
  if (name == "maskgit_plus") return DiffusionAlgorithm::Confidence;
  if (name == "topk_margin") return DiffusionAlgorithm::Margin;
  if (name == "margin") return DiffusionAlgorithm::Margin;
  if (name == "random") return DiffusionAlgorithm::Random;
  if (name == "confidence" || name == "low-confidence" || name == "low_confidence") return DiffusionAlgorithm::Confidence;
  throw Error("unknown diffusion algorithm '" + name + "' (origin, entropy, entropy-llamacpp, margin / topk_margin, random, confidence / low-confidence / maskgit_plus)");
}

DiffusionGenerator::DiffusionGenerator(Engine& engine) : engine_(engine) {
  const DiffusionInfo d = diffusion_info(engine.loaded().model().file());
  mask_ = d.mask_token;
  shift_ = d.shift_logits;
  llada_ = engine.loaded().info().architecture != "dream";
}

GenerateResult DiffusionGenerator::generate(Conversation& conv, std::string_view prompt, const GenerateOptions& options,
                                            const EventSink& sink) {
  // Nothing carries over between diffusion requests: the whole prompt goes in.
  return run(conv, engine_.tokenize_prompt(prompt), options, sink);
}

GenerateResult DiffusionGenerator::generate_from_ids(Conversation& conv, std::span<const int32_t> ids,
                                                     const GenerateOptions& options, const EventSink& sink) {
  return run(conv, std::vector<int32_t>(ids.begin(), ids.end()), options, sink);
}

GenerateResult DiffusionGenerator::run(Conversation& conv, std::vector<int32_t> prompt, const GenerateOptions& options,
                                       const EventSink& sink) {
  const LoadedModel& lm = engine_.loaded();
  const Model& model = lm.model();
  const Tokenizer& tok = lm.tokenizer();
  const int64_t V = lm.info().n_vocab;
  const DiffusionOptions& d = options.diffusion;
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (P == 0) throw Error("diffusion: empty prompt");
  const int64_t gen = diffusion_gen_length(d, options.num_predict);
  const int64_t L = P + gen;
  ModelState& state = *conv.state;
  check_canvas_fits(P, gen, state.n_ctx());
  const int64_t block = d.block_length >= 0 ? (d.block_length == 0 ? gen : d.block_length) : llada_ ? std::min<int64_t>(32, gen) : gen;
  const bool timestep = d.block_length == 0 || (d.block_length < 0 && !llada_);
  const int64_t n_blocks = timestep ? 1 : (gen + block - 1) / block;
  const int64_t steps = d.steps > 0 ? d.steps : gen;
  const int64_t steps_per_block = std::max<int64_t>(1, steps / n_blocks);
  DiffusionAlgorithm alg = d.algorithm;
  if (alg == DiffusionAlgorithm::Default) alg = llada_ ? DiffusionAlgorithm::Confidence : DiffusionAlgorithm::Entropy;
  const uint32_t seed = options.sampling.seed < 0 ? std::random_device{}() : static_cast<uint32_t>(options.sampling.seed);
  std::mt19937 rng(seed);
  PositionSampler sampler(options.sampling, alg, std::min<int64_t>(V, tok.n_vocab()), seed);

  std::vector<int32_t> canvas = prompt;
  canvas.resize(static_cast<size_t>(L), mask_);
  std::vector<float> logits;
  Workspace& ws = engine_.workspace();
  GenerateResult r;
  r.prompt_tokens = P;
  r.prompt_eval_count = P;
  const int64_t t_start = now_ns();
  int64_t since_refresh = 0;
  bool cancelled = false, ended = false;
  std::vector<std::string> stops = options.stop;
  if (options.use_template_stops)
    for (auto& s : engine_.chat_template().stop_strings()) stops.push_back(s);
  TextStream stream(stops);
  int64_t total_step = 0;

  // Logits of the rows [lo, hi) of the canvas after a pass: exact (a full
  // pass, keeping the canvas K/V when caching is on) or cached (only those
  // rows against the kept K/V).
  auto pass = [&](int64_t lo, int64_t hi, bool full) -> const float* {
    SequenceInput in;
    in.state = &state;
    ForwardArgs args;
    if (full) {
      in.tokens = canvas;
      logits.resize(static_cast<size_t>((hi - lo) * V));
      args.mask = AttentionMask::Full;
      args.store_kv = d.cache_refresh > 0;
      in.out = logits.data();
      in.logits = LogitsMode::All;
      in.logits_first = lo;
      in.logits_end = hi;
      args.sequences = std::span<const SequenceInput>(&in, 1);
      model.forward(args, ws);
      return logits.data() - lo * V;  // indexed by canvas position
    }
    in.tokens = std::span<const int32_t>(canvas.data() + lo, static_cast<size_t>(hi - lo));
    in.position = lo;
    logits.resize(static_cast<size_t>((hi - lo) * V));
    in.out = logits.data();
    in.logits = LogitsMode::All;
    args.mask = AttentionMask::Cached;
    args.sequences = std::span<const SequenceInput>(&in, 1);
    model.forward(args, ws);
    return logits.data() - lo * V;  // indexed by canvas position
  };

  for (int64_t b = 0; b < n_blocks && !cancelled && !ended; ++b) {
    const int64_t lo = timestep ? P : P + b * block, hi = timestep ? L : std::min(L, P + (b + 1) * block);
    int64_t masks = 0;
    for (int64_t i = lo; i < hi; ++i) masks += canvas[i] == mask_;
    const std::vector<int64_t> transfers = block_transfers(masks, steps_per_block);
    since_refresh = 0;
    for (int64_t step = 0; step < steps_per_block; ++step, ++total_step) {
      if (options.should_stop && options.should_stop()) {
        cancelled = true;
        break;
      }
      std::vector<int64_t> masked;
      for (int64_t i = lo; i < hi; ++i)
        if (canvas[i] == mask_) masked.push_back(i);
      if (masked.empty()) break;  // the block is done early
      // Which rows the logits must cover: the row of a position is itself,
      // or the one before it when logits are shifted (Dream).
      const int64_t need_lo = shift_ ? std::max<int64_t>(0, lo - 1) : lo;
      const bool full = d.cache_refresh == 0 || step == 0 || since_refresh >= d.cache_refresh;
      const float* all = pass(need_lo, hi, full);
      since_refresh = full ? 1 : since_refresh + 1;
      ++r.diffusion_steps;
      r.diffusion_full_passes += full;
      if (total_step == 0) r.prompt_eval_ns = now_ns() - t_start;
      auto row_of = [&](int64_t pos) { return all + (shift_ ? std::max<int64_t>(0, pos - 1) : pos) * V; };
      const int64_t count = timestep ? timestep_transfers(step, steps_per_block, static_cast<int64_t>(masked.size()), d.eps)
                                     : transfers[step];
      if (alg == DiffusionAlgorithm::Origin) {
        const float p_transfer = static_cast<float>(count) / static_cast<float>(masked.size());
        for (int64_t pos : masked)
          if (std::uniform_real_distribution<float>(0.0f, 1.0f)(rng) < p_transfer) canvas[pos] = sampler.pick(row_of(pos), rng).token;
      } else {
        std::vector<std::pair<float, int64_t>> conf;
        std::vector<int32_t> picked(masked.size());
        for (size_t i = 0; i < masked.size(); ++i) {
          const Pick p = sampler.pick(row_of(masked[i]), rng);
          picked[i] = p.token;
          conf.emplace_back(p.confidence, static_cast<int64_t>(i));
        }
        const size_t k = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(0, count)), conf.size());
        // Most confident first; ties go to the earlier position.
        std::partial_sort(conf.begin(), conf.begin() + k, conf.end(), [](const auto& a, const auto& c) {
          return a.first != c.first ? a.first > c.first : a.second < c.second;
        });
        for (size_t i = 0; i < k; ++i) canvas[masked[conf[i].second]] = picked[conf[i].second];
      }
      if (d.canvas_events && sink) {
        GenerationEvent e;
        e.kind = GenerationEvent::Kind::Canvas;
        e.canvas = std::span<const int32_t>(canvas.data() + P, static_cast<size_t>(gen));
        e.step = total_step + 1;
        e.steps = n_blocks * steps_per_block;
        if (!sink(e)) {
          cancelled = true;
          break;
        }
      }
    }
    // The block is committed: its text goes out, up to an end of generation.
    for (int64_t i = lo; i < hi && !ended; ++i) {
      const int32_t id = canvas[i];
      if (id == mask_ || tok.is_end_of_generation(id)) {
        ended = id != mask_;
        if (id == mask_) continue;
        break;
      }
      r.generated.push_back(id);
      if (stream.push(tok.token_bytes(id))) ended = true;
    }
    const std::string text = stream.release();
    if (!text.empty() && sink) {
      GenerationEvent e;
      e.text = text;
      if (!sink(e)) cancelled = true;
    }
  }
  const std::string rest = stream.flush();
  if (!rest.empty() && sink && !cancelled) {
    GenerationEvent e;
    e.text = rest;
    sink(e);
  }
  r.text = stream.text();
  r.eval_count = static_cast<int64_t>(r.generated.size());
  // The first pass reads the prompt (and the masks): its time is the
  // prompt's; every later step counts as generation.
  r.eval_ns = now_ns() - t_start - r.prompt_eval_ns;
  r.done_reason = cancelled ? DoneReason::Cancelled : ended ? DoneReason::Stop : DoneReason::Length;
  conv.tokens = prompt;
  conv.fed_text = r.text;
  return r;
}

}  // namespace flatline
