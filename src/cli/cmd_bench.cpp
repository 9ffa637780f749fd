// `flatline bench`: prompt-processing and generation speed (like
// llama-bench: pp = N prompt tokens in one call, tg = N tokens decoded one
// at a time, optionally after -d tokens already in the context), peak
// memory, and generation speed as a fraction of the memory-bandwidth limit
// (a decode step reads every weight once, so tok/s <= bandwidth / bytes).
// `flatline bench turns` (cmd_bench_turns.cpp) is the multi-turn benchmark.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "util/limits.h"
#include "tensor/bandwidth.h"
#include "tensor/isa.h"
#include "util/error.h"
#include "util/system_info.h"

namespace flatline::cli {

void register_bench_turns(CLI::App& bench);
void register_bench_grammar(CLI::App& bench);

namespace {

struct BenchOptions {
  ModelOptions model;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int repetitions = 3;
  std::string depths = "0";
  bool json = false;
  int64_t bandwidth_mib = 1024;
};

struct Stats {
  double mean = 0, stddev = 0;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(s.stddev / (v.size() - 1)) : 0;
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  // Stay inside the first 256 ids: every vocabulary has them as real tokens.
  for (auto& id : ids) id = static_cast<int32_t>(rng() % std::min<int64_t>(n_vocab, 256));
  return ids;
}

struct DepthResult {
  int64_t depth = 0;
  Stats pp, tg;
  double tg_loops = 0;  // looped models: mean loops run per generated token (0: not looped)
};

// One decode step that also records the loops it ran (looped models).
void decode_step(Model& model, ModelState& st, int32_t id, float* logits, Workspace& ws, ForwardStats& stats) {
  SequenceInput in{&st, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits, &stats};
  ForwardArgs args;
  args.sequences = std::span<const SequenceInput>(&in, 1);
  model.forward(args, ws);
}

// Fills a fresh state with `depth` tokens (untimed).
std::unique_ptr<ModelState> state_at_depth(Model& model, Workspace& ws, int64_t depth, int64_t n_ctx,
                                           std::vector<float>& logits) {
  auto st = model.new_state(n_ctx);
  if (depth > 0) model.forward(*st, random_tokens(depth, model.info().n_vocab, 1), LogitsMode::Last, logits.data(), ws);
  return st;
}

DepthResult run_depth(Model& model, const BenchOptions& o, int64_t depth, int64_t n_ctx) {
  const int64_t n_vocab = model.info().n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  std::vector<double> pp, tg;
  ForwardStats stats;
  auto ws = model.new_workspace();
  for (int rep = 0; rep < o.repetitions; ++rep) {
    if (o.n_prompt > 0) {
      auto st = state_at_depth(model, *ws, depth, n_ctx, logits);
      auto ids = random_tokens(o.n_prompt, n_vocab, 100 + rep);
      auto t0 = std::chrono::steady_clock::now();
      model.forward(*st, ids, LogitsMode::Last, logits.data(), *ws);
      pp.push_back(o.n_prompt / seconds_since(t0));
    }
    if (o.n_gen > 0) {
      auto st = state_at_depth(model, *ws, depth, n_ctx, logits);
      int32_t id = static_cast<int32_t>(rep % std::min<int64_t>(n_vocab, 256));
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < o.n_gen; ++i) {
        decode_step(model, *st, id, logits.data(), *ws, stats);
        id = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      tg.push_back(o.n_gen / seconds_since(t0));
    }
  }
  DepthResult r;
  r.depth = depth;
  if (!pp.empty()) r.pp = stats_of(pp);
  if (!tg.empty()) r.tg = stats_of(tg);
  if (!stats.loops_used.empty()) {
    double sum = 0;
    for (int32_t n : stats.loops_used) sum += n;
    r.tg_loops = sum / static_cast<double>(stats.loops_used.size());
  }
  return r;
}

std::vector<int64_t> parse_depths(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stoll(item));
    } catch (...) {
      throw Error("-d: '" + item + "' is not a token count (expected e.g. 0,2048,4096)");
    }
    if (out.back() < 0) throw Error("-d: depths must be >= 0");
  }
  if (out.empty()) out.push_back(0);
  return out;
}

void run_bench(const BenchOptions& o) {
  auto depths = parse_depths(o.depths);
  const int64_t max_depth = *std::max_element(depths.begin(), depths.end());
  ModelOptions mo = o.model;
  mo.ctx = std::max<int64_t>(mo.ctx, max_depth + std::max(o.n_prompt, o.n_gen) + 8);
  MemoryBudget budget = mo.budget();
  auto loaded = mo.load(budget);
  Model& model = loaded->model();
  const ModelInfo& mi = model.info();

  // Warm-up: page the mapped weights in and size the scratch buffers.
  {
    std::vector<float> logits(static_cast<size_t>(mi.n_vocab));
    auto st = model.new_state(mo.ctx);
    auto ws = model.new_workspace();
    auto ids = random_tokens(std::min<int64_t>(std::max<int64_t>(o.n_prompt, 1), mo.batch), mi.n_vocab, 7);
    model.forward(*st, ids, LogitsMode::Last, logits.data(), *ws);
    int32_t id = 0;
    model.forward(*st, std::span<const int32_t>(&id, 1), LogitsMode::Last, logits.data(), *ws);
  }

  std::vector<DepthResult> results;
  for (int64_t d : depths) results.push_back(run_depth(model, o, d, mo.ctx));
  // Peak memory first: the bandwidth test allocates a large buffer of its own.
  const uint64_t peak = peak_rss_bytes();
  auto pool = std::make_shared<ThreadPool>(o.model.threads);
  if (!o.json) std::fprintf(stderr, "measuring memory read bandwidth with %d threads...\n", pool->size());
  const double bandwidth = measure_read_bandwidth_gbs(*pool, static_cast<size_t>(o.bandwidth_mib) << 20);
  const double max_tg = bandwidth * 1e9 / static_cast<double>(mi.bytes_per_token);
  const int threads = o.model.threads > 0 ? o.model.threads : default_thread_count().threads;

  // A looped model reads its weights once per loop run.
  auto roofline = [&](const DepthResult& r) { return r.tg.mean * std::max(r.tg_loops, 1.0) / max_tg; };
  if (o.json) {
    nlohmann::json j;
    j["model"] = loaded->path();
    j["architecture"] = mi.architecture;
    j["file_type"] = mi.file_type;
    j["n_params"] = mi.n_params;
    j["weight_bytes"] = mi.weight_bytes;
    j["bytes_per_token"] = mi.bytes_per_token;
    j["threads"] = threads;
    j["isa"] = std::string(isa_name(active_isa()));
    j["n_prompt"] = o.n_prompt;
    j["n_gen"] = o.n_gen;
    j["repetitions"] = o.repetitions;
    j["pp_tok_s"] = results[0].pp.mean;
    j["tg_tok_s"] = results[0].tg.mean;
    j["peak_rss_bytes"] = peak;
    j["bandwidth_gb_s"] = bandwidth;
    j["roofline_tok_s"] = max_tg;
    j["roofline_fraction"] = roofline(results[0]);
    if (results[0].tg_loops > 0) j["tg_loops_per_token"] = results[0].tg_loops;
    for (const auto& r : results) {
      j["depths"].push_back({{"depth", r.depth},
                             {"pp_tok_s", r.pp.mean},
                             {"pp_stddev", r.pp.stddev},
                             {"tg_tok_s", r.tg.mean},
                             {"tg_stddev", r.tg.stddev},
                             {"roofline_fraction", roofline(r)}});
      if (r.tg_loops > 0) j["depths"].back()["tg_loops_per_token"] = r.tg_loops;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model: %s (%s, %s, %.2fB params, %s read per token)\n", loaded->path().c_str(),
              mi.architecture.c_str(), mi.file_type.c_str(), mi.n_params / 1e9,
              format_bytes(mi.bytes_per_token).c_str());
  std::printf("threads: %d, isa: %s, memory read bandwidth: %.1f GB/s -> generation limit %.2f tok/s\n", threads,
              std::string(isa_name(active_isa())).c_str(), bandwidth, max_tg);
  const std::string pp_head = "pp" + std::to_string(o.n_prompt) + " tok/s";
  const std::string tg_head = "tg" + std::to_string(o.n_gen) + " tok/s";
  std::printf("| %8s | %14s | %14s | %9s |\n", "depth", pp_head.c_str(), tg_head.c_str(), "roofline");
  std::printf("|---------:|---------------:|---------------:|----------:|\n");
  for (const auto& r : results)
    std::printf("| %8lld | %7.2f ± %5.2f | %7.2f ± %5.2f | %8.1f%% |\n", static_cast<long long>(r.depth), r.pp.mean,
                r.pp.stddev, r.tg.mean, r.tg.stddev, 100.0 * roofline(r));
  for (const auto& r : results)
    if (r.tg_loops > 0)
      std::printf("depth %lld: %.2f loops per generated token (the roofline counts the weights once per loop)\n",
                  static_cast<long long>(r.depth), r.tg_loops);
  std::printf("peak RSS: %s\n", format_bytes(peak).c_str());
}

}  // namespace

void register_bench(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  auto* sub = app.add_subcommand("bench", "Measure speed: pp/tg tokens/s, memory, roofline fraction; `bench turns` for chat");
  opts->model.add_to(*sub, /*model_required=*/false);
  bounded(sub->add_option("-p,--n-prompt", opts->n_prompt, "Prompt tokens per pp test")->capture_default_str(), 0,
          limits::kMaxContext);
  bounded(sub->add_option("-n,--n-gen", opts->n_gen, "Tokens per tg test")->capture_default_str(), 0, limits::kMaxPredict);
  bounded(sub->add_option("-r,--repetitions", opts->repetitions, "Repetitions of each test")->capture_default_str(), 1,
          1000);
  sub->add_option("-d,--depth", opts->depths, "Tokens already in the context, comma-separated (e.g. 0,2048,4096)")
      ->capture_default_str();
  sub->add_flag("--json", opts->json, "One JSON object on stdout");
  bounded(sub->add_option("--bandwidth-mib", opts->bandwidth_mib, "Buffer size of the bandwidth probe (keep >> L3)")
              ->capture_default_str(),
          1, 65536);
  register_bench_turns(*sub);
  register_bench_grammar(*sub);
  sub->callback([opts, sub] {
    if (!sub->get_subcommands().empty()) return;  // `bench turns` / `bench grammar` ran
    if (opts->model.model_path.empty()) throw Error("bench: give a MODEL.gguf (or use `flatline bench turns`)");
    if (opts->repetitions < 1) throw Error("bench: -r must be at least 1");
    run_bench(*opts);
  });
}

}  // namespace flatline::cli
