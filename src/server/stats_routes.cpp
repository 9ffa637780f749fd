// GET /flatline/stats: what the chat page draws after each turn (resident
// memory, the last turn's counts and its conversation's state size, the
// state cache per model). docs/SERVER.md "GET /flatline/stats".
#include "server/routes.h"
#include "util/system_info.h"

namespace flatline::server {

void TurnLog::record(TurnRecord record) {
  std::lock_guard<std::mutex> lock(mutex_);
  record.sequence = ++count_;
  last_ = std::move(record);
}

std::optional<TurnRecord> TurnLog::last() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_;
}

void record_turn(ServerContext& ctx, ActiveTurn& turn, const TurnResult& result) {
  const GenerateResult& g = result.generation;
  TurnRecord r;
  r.model = turn.model_name;
  r.finished_at = rfc3339_now();
  r.done_reason = done_reason_name(g.done_reason);
  r.prompt_tokens = g.prompt_tokens;
  r.cached_tokens = result.cached_tokens;
  r.prompt_eval_count = g.prompt_eval_count;
  r.prompt_eval_ns = g.prompt_eval_ns;
  r.eval_count = g.eval_count;
  r.eval_ns = g.eval_ns;
  r.state = result.state_memory;
  r.rss_bytes = current_rss_bytes();
  ctx.turns.record(std::move(r));
}

namespace {

json turn_json(const TurnRecord& t) {
  return json{{"sequence", t.sequence},
              {"model", t.model},
              {"finished_at", t.finished_at},
              {"done_reason", t.done_reason},
              {"prompt_tokens", t.prompt_tokens},
              {"cached_tokens", t.cached_tokens},
              {"prompt_eval_count", t.prompt_eval_count},
              {"prompt_eval_duration", t.prompt_eval_ns},
              {"eval_count", t.eval_count},
              {"eval_duration", t.eval_ns},
              {"state_bytes", t.state.total()},
              {"state_fixed_bytes", t.state.fixed},
              {"state_kv_bytes", t.state.kv},
              {"state_kv_shared_bytes", t.state.kv_shared},
              {"resident_memory_bytes", t.rss_bytes}};
}

json stats_json(ServerContext& ctx) {
  json models = json::array();
  for (const ResidentInfo& m : ctx.models->resident())
    models.push_back(json{{"name", m.entry.name}, {"size", m.size}, {"context_length", m.n_ctx}});
  const StateCacheStats s = ctx.cache->stats();
  const std::optional<TurnRecord> last = ctx.turns.last();
  return json{{"resident_memory_bytes", current_rss_bytes()},
              {"memory_budget_bytes", ctx.models->budget_limit()},
              {"memory_reserved_bytes", ctx.models->budget_reserved()},
              {"models", models},
              {"state_cache",
               {{"bytes", s.bytes},
                {"entries", s.entries},
                {"limit_bytes", ctx.cache->options().memory_limit},
                {"hits", s.hits},
                {"misses", s.misses}}},
              {"last_turn", last ? turn_json(*last) : json(nullptr)}};
}

}  // namespace

void register_stats_routes(Router& router, ServerContext& ctx) {
  router.get("/flatline/stats", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_ollama_error, [&] {
      write_json(res, stats_json(ctx));
      res.set_header("Cache-Control", "no-store");
    });
  });
}

}  // namespace flatline::server
