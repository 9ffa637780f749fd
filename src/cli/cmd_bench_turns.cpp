// `flatline bench turns MODEL...`: a 10-question conversation, resent in
// full each turn as a chat client does, through the same chat service and
// state cache as the server's /api/chat. Per turn: tokens generated and
// their speed, prompt tokens actually evaluated and how long that took, and
// resident memory, one column group per model. `--plot FILE.svg` draws
// tokens/s and resident memory per turn, one line per model.
#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/common.h"
#include "util/limits.h"
#include "runtime/chat_service.h"
#include "runtime/state_cache.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/svg_chart.h"
#include "util/system_info.h"

namespace flatline::cli {

namespace {

const char* const kQuestions[] = {
    "What is beekeeping?",
    "What are Layens hives?",
    "How do you harvest honey?",
    "What is the newspaper method for combining colonies?",
    "How do you treat varroa mites naturally?",
    "What flowers are best for bees in California?",
    "How do you split a colony in spring?",
    "What is a swarm trap and how do you use one?",
    "How do you overwinter a hive in mild climates?",
    "Summarize everything we discussed about beekeeping.",
};
constexpr int kQuestionCount = sizeof(kQuestions) / sizeof(kQuestions[0]);

struct BenchTurnsOptions {
  std::vector<std::string> models;
  int turns = kQuestionCount;
  bool json = false;
  int threads = 0;
  int64_t batch = 256;
  int64_t ctx = 4096;
  std::string max_memory;
  std::string cache_memory = "1G";
  std::string kv_type = "f16";
  std::string context_overflow = "refuse";
  std::string plot;  // SVG file to write, "" = none
  SamplingOptions sampling;
};

struct TurnRow {
  int turn = 0;
  std::string question;
  int64_t eval_count = 0;
  double eval_tps = 0;
  int64_t prompt_tokens = 0;      // whole prompt
  int64_t prompt_eval_count = 0;  // evaluated this turn
  int64_t cached_tokens = 0;
  double prompt_ms = 0;
  uint64_t rss = 0;
  std::string done_reason;
  std::string error;  // set when the turn could not run (e.g. context full)
  std::string stop;   // what the plot calls it: "refused: context full", "stopped: memory budget"
  int dropped_messages = 0;  // --context-overflow drop-oldest: history dropped to fit
};

struct ModelRun {
  std::string path;
  std::string name;
  std::string error;  // the model could not be loaded
  std::vector<TurnRow> rows;
};

ModelRun run_model(const std::string& path, const BenchTurnsOptions& o, std::shared_ptr<ThreadPool> pool) {
  ModelRun run;
  run.path = path;
  MemoryBudget budget(o.max_memory.empty() ? 0 : parse_byte_size(o.max_memory));
  LoadOptions lo;
  lo.pool = std::move(pool);
  lo.max_batch = o.batch;
  lo.kv_type = parse_kv_type(o.kv_type);
  std::unique_ptr<LoadedModel> model;
  try {
    model = LoadedModel::load(path, lo, &budget, o.ctx);
    model->prefault(path);  // as the server does: resident memory then only grows with states
  } catch (const Error& e) {
    run.error = e.what();
    return run;
  }
  run.name = model->info().name;
  Engine engine(*model);
  {
    // Warm-up, untimed and not cached (as llama-bench does): the first
    // decode steps of a process pay for page faults in buffers and caches,
    // which would make turn 1 look slower than it is.
    Conversation warm = engine.new_conversation(std::min<int64_t>(o.ctx, 256));
    GenerateOptions g;
    g.num_predict = 16;
    g.sampling.temperature = 0;
    engine.generate(warm, "Warm-up.", g);
  }
  StateCacheOptions co;
  co.memory_limit = parse_byte_size(o.cache_memory);
  StateCache cache(co);
  ChatService service(cache);
  TurnOptions topts;
  topts.sampling = o.sampling.params;
  topts.num_predict = o.sampling.num_predict;
  topts.stop = o.sampling.stop;
  topts.recurrent_reply_cap = o.ctx;
  const int64_t n_ctx = model->usable_context(o.ctx);

  const ContextPolicy policy = parse_context_policy(o.context_overflow);
  std::vector<ChatMessage> messages;
  for (int i = 0; i < o.turns; ++i) {
    TurnRow row;
    row.turn = i + 1;
    row.question = kQuestions[i % kQuestionCount];
    messages.push_back({"user", row.question});
    try {
      PreparedTurn prepared = service.prepare_chat(engine, n_ctx, messages, policy, &row.dropped_messages, topts.num_predict);
      TurnResult r = service.finish(engine, std::move(prepared), topts);
      const GenerateResult& g = r.generation;
      row.eval_count = g.eval_count;
      // A reply of one token ran no decode step (it was sampled from the
      // prompt's logits), so it has no generation speed to show.
      row.eval_tps = g.eval_count >= 2 && g.eval_ns > 0 ? g.eval_count * 1e9 / g.eval_ns : NAN;
      row.prompt_tokens = g.prompt_tokens;
      row.prompt_eval_count = g.prompt_eval_count;
      row.cached_tokens = r.cached_tokens;
      row.prompt_ms = g.prompt_eval_ns / 1e6;
      row.done_reason = done_reason_name(g.done_reason);
      messages.push_back({"assistant", g.text});
    } catch (const ContextOverflowError& e) {
      // Default policy: a turn that does not fit the context is refused whole
      // (no silent truncation of the history); the conversation ends there.
      row.error = e.what();
      row.stop = "refused: context full";
    } catch (const MemoryBudgetError& e) {
      // The state outgrew the memory budget: the stop an OOM kill would be
      // elsewhere, reported instead.
      row.error = std::string("memory budget: ") + e.what();
      row.stop = "stopped: memory budget";
    }
    row.rss = current_rss_bytes();
    run.rows.push_back(row);
    if (!o.json)
      std::fprintf(stderr, "%s turn %d: %s\n", run.name.c_str(), row.turn,
                   row.error.empty() ? (std::to_string(row.eval_count) + " tokens, " +
                                        std::to_string(row.prompt_eval_count) + " prompt tokens evaluated")
                                           .c_str()
                                     : row.error.c_str());
    if (!row.error.empty()) break;
  }
  return run;
}

void print_table(const std::vector<ModelRun>& runs, int turns) {
  std::printf("%-5s", "turn");
  for (const auto& r : runs) std::printf(" | %-47.47s", (r.name.empty() ? r.path : r.name).c_str());
  std::printf("\n%-5s", "");
  for (size_t i = 0; i < runs.size(); ++i)
    std::printf(" | %6s %8s %8s %10s %10s", "gen", "tok/s", "prompt", "prompt ms", "RSS");
  std::printf("\n");
  for (int t = 0; t < turns; ++t) {
    std::printf("%-5d", t + 1);
    for (const auto& r : runs) {
      if (!r.error.empty()) {
        std::printf(" | %-47.47s", t == 0 ? ("error: " + r.error).c_str() : "");
      } else if (t >= static_cast<int>(r.rows.size())) {
        std::printf(" | %-47s", "");
      } else if (!r.rows[t].error.empty()) {
        std::printf(" | %-47.47s", ("stopped: " + r.rows[t].error).c_str());
      } else {
        const TurnRow& row = r.rows[t];
        char tps[16] = "       -";
        if (!std::isnan(row.eval_tps)) std::snprintf(tps, sizeof tps, "%8.2f", row.eval_tps);
        std::printf(" | %6lld %s %8lld %10.1f %10s", static_cast<long long>(row.eval_count), tps,
                    static_cast<long long>(row.prompt_eval_count), row.prompt_ms, format_bytes(row.rss).c_str());
      }
    }
    std::printf("\n");
  }
  // Full error texts (the table cuts them) and where history was dropped.
  for (const auto& r : runs) {
    if (!r.error.empty()) std::printf("%s: %s\n", r.path.c_str(), r.error.c_str());
    for (const auto& row : r.rows)
      if (!row.error.empty())
        std::printf("%s turn %d: %s\n", r.name.c_str(), row.turn, row.error.c_str());
      else if (row.dropped_messages > 0)
        std::printf("%s turn %d: the %d oldest messages were dropped to fit the context (all re-processed)\n",
                    r.name.c_str(), row.turn, row.dropped_messages);
  }
}

void print_json(const std::vector<ModelRun>& runs, int turns) {
  nlohmann::ordered_json out;
  out["turns"] = turns;
  out["models"] = nlohmann::ordered_json::array();
  for (const auto& r : runs) {
    nlohmann::ordered_json m;
    m["model"] = r.path;
    m["name"] = r.name;
    if (!r.error.empty()) m["error"] = r.error;
    m["turns"] = nlohmann::ordered_json::array();
    for (const auto& row : r.rows) {
      nlohmann::ordered_json t;
      t["turn"] = row.turn;
      t["question"] = row.question;
      if (!row.error.empty()) {
        t["error"] = row.error;
      } else {
        t["eval_count"] = row.eval_count;
        t["eval_tokens_per_second"] = std::isnan(row.eval_tps) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(row.eval_tps);
        t["prompt_tokens"] = row.prompt_tokens;
        t["prompt_eval_count"] = row.prompt_eval_count;
        t["cached_tokens"] = row.cached_tokens;
        t["prompt_eval_ms"] = row.prompt_ms;
        t["done_reason"] = row.done_reason;
        t["dropped_messages"] = row.dropped_messages;
      }
      t["rss_bytes"] = row.rss;
      m["turns"].push_back(t);
    }
    out["models"].push_back(m);
  }
  std::printf("%s\n", out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
}

// Short enough for a legend: the first sentence, at most ~70 characters.
std::string short_reason(const std::string& error) {
  std::string s = error.substr(0, error.find_first_of(".;\n"));
  if (s.size() > 70) s = s.substr(0, 67) + "...";
  return s;
}

ChartFigure turns_figure(const std::vector<ModelRun>& runs, const BenchTurnsOptions& o, int threads) {
  ChartFigure fig;
  fig.title = "flatline bench turns: speed and memory per turn";
  fig.subtitle = "history resent each turn, " + std::to_string(o.turns) + " turns, -n " +
                 std::to_string(o.sampling.num_predict) + ", seed " + std::to_string(o.sampling.params.seed) +
                 ", -c " + std::to_string(o.ctx) +
                 (o.max_memory.empty() ? "" : ", --max-memory " + o.max_memory) + ", --context-overflow " +
                 o.context_overflow + ", " + std::to_string(threads) + " threads, flatline " +
                 FLATLINE_VERSION;
  ChartPanel speed{"Generation speed", "turn", "tokens/s (generated)", true, {}};
  ChartPanel memory{"Resident memory of the process after each turn", "turn", "resident memory (MiB)", true, {}};
  for (const ModelRun& r : runs) {
    ChartSeries sp, mem;
    sp.name = mem.name = r.name.empty() ? r.path : r.name;
    if (!r.error.empty()) {
      sp.note = mem.note = "not run: " + short_reason(r.error);
      fig.notes.push_back(sp.name + ": " + r.error);
    }
    for (const TurnRow& row : r.rows) {
      const double mib = static_cast<double>(row.rss) / (1 << 20);
      if (row.error.empty()) {
        if (!std::isnan(row.eval_tps)) sp.points.push_back({static_cast<double>(row.turn), row.eval_tps});
        mem.points.push_back({static_cast<double>(row.turn), mib});
      } else {
        sp.marks.push_back({static_cast<double>(row.turn), NAN, row.stop});
        mem.marks.push_back({static_cast<double>(row.turn), mib, row.stop});
        fig.notes.push_back(sp.name + " turn " + std::to_string(row.turn) + ": " + row.error);
      }
      if (row.dropped_messages > 0) {
        const std::string label = "dropped " + std::to_string(row.dropped_messages) + " messages";
        sp.marks.push_back({static_cast<double>(row.turn), row.eval_tps, label});
      }
    }
    speed.series.push_back(std::move(sp));
    memory.series.push_back(std::move(mem));
  }
  fig.panels = {std::move(speed), std::move(memory)};
  return fig;
}

}  // namespace

void register_bench_turns(CLI::App& bench) {
  auto o = std::make_shared<BenchTurnsOptions>();
  auto* sub = bench.add_subcommand("turns", "Multi-turn chat benchmark (10 beekeeping questions, history resent each turn)");
  sub->add_option("models", o->models, "GGUF model files (one column group each)")->required();
  bounded(sub->add_option("--turns", o->turns, "Number of turns (the 10 questions repeat beyond 10)")->capture_default_str(),
          1, 10000);
  sub->add_flag("--json", o->json, "Machine-readable output");
  bounded(sub->add_option("-t,--threads", o->threads, "Threads (default: the physical performance cores this process may use, see info)"), 0, limits::kMaxThreads);
  bounded(sub->add_option("-b,--batch", o->batch, "Tokens per prompt-processing chunk")->capture_default_str(), 1,
          limits::kMaxBatch);
  bounded(sub->add_option("-c,--ctx", o->ctx, "Context for transformer models; cap on one reply for recurrent ones")
              ->capture_default_str(),
          1, limits::kMaxContext);
  sub->add_option("--max-memory", o->max_memory, "Memory budget, e.g. 6G (default: available memory minus 10%)");
  sub->add_option("--cache-memory", o->cache_memory, "Memory for cached conversation states")->capture_default_str();
  sub->add_option("--kv-type", o->kv_type, "KV cache type for transformers: f16, q8_0, f32")->capture_default_str();
  sub->add_option("--context-overflow", o->context_overflow,
                  "When a transformer's context is full: refuse (end the run with the message) or drop-oldest "
                  "(drop the oldest messages and re-process)")
      ->capture_default_str();
  sub->add_option("--plot", o->plot, "Also write tokens/s and resident memory per turn as an SVG chart to this file");
  o->sampling.params.seed = 42;
  o->sampling.add_to(*sub, 128);
  sub->callback([o] {
    if (o->turns < 1) throw Error("--turns must be at least 1, got " + std::to_string(o->turns));
    // Opened first, so an unwritable path fails before a long run, not after.
    std::unique_ptr<AtomicFileWriter> plot;
    if (!o->plot.empty()) plot = std::make_unique<AtomicFileWriter>(o->plot);
    auto pool = std::make_shared<ThreadPool>(o->threads);
    std::vector<ModelRun> runs;
    for (const auto& path : o->models) runs.push_back(run_model(path, *o, pool));
    if (o->json) print_json(runs, o->turns);
    else print_table(runs, o->turns);
    if (plot) {
      const std::string svg = render_svg(turns_figure(runs, *o, pool->size()));
      plot->write(svg.data(), svg.size());
      plot->commit();
      std::fprintf(stderr, "wrote %s\n", o->plot.c_str());
    }
  });
}

}  // namespace flatline::cli
