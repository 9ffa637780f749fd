// Routes for operators and load balancers: GET /health and GET /metrics
// (docs/SERVER.md "Health and metrics").
#include <unistd.h>

#include <filesystem>

#include "server/routes.h"
#include "util/system_info.h"

namespace flatline::server {

namespace {

// Ready when a model can be served: not shutting down, the models
// directory readable, at least one model in it.
void handle_health(ServerContext& ctx, httplib::Response& res) {
  std::string reason;
  size_t n_models = 0;
  const std::string& dir = ctx.options.models.models_dir;
  if (ctx.stopping) {
    reason = "shutting down";
  } else if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    reason = "the models directory cannot be read";
  } else {
    n_models = ctx.models->catalog().list().size();
    if (n_models == 0) reason = "no models in the models directory";
  }
  if (!reason.empty()) {
    write_json(res, json{{"status", "unavailable"}, {"reason", reason}}, 503);
    return;
  }
  write_json(res, json{{"status", "ok"}});
}

std::string render_metrics(ServerContext& ctx) {
  std::string out;
  ctx.metrics.render(out);
  PromWriter w(out);
  auto gauge = [&](const char* name, const char* help, double v) {
    w.family(name, "gauge", help);
    w.sample(name, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    w.family(name, "counter", help);
    w.sample(name, v);
  };
  const StateCacheStats s = ctx.cache->stats();
  counter("flatline_state_cache_hits_total", "Prompts that started from a cached conversation state.",
          static_cast<double>(s.hits));
  counter("flatline_state_cache_misses_total", "Prompts that found no cached state.", static_cast<double>(s.misses));
  counter("flatline_state_cache_evictions_total", "Cached states dropped from memory for space.",
          static_cast<double>(s.evictions));
  gauge("flatline_state_cache_bytes", "Bytes of conversation states held in memory (shared KV pages counted once).",
        static_cast<double>(s.bytes));
  gauge("flatline_state_cache_fixed_bytes", "Of the state cache bytes: all but KV pages (recurrent parts, text, logits).",
        static_cast<double>(s.fixed_bytes));
  gauge("flatline_state_cache_kv_bytes", "Of the state cache bytes: KV pages, each counted once.",
        static_cast<double>(s.kv_bytes));
  gauge("flatline_state_cache_kv_shared_bytes", "KV pages held by more than one cached state.",
        static_cast<double>(s.kv_shared_bytes));
  gauge("flatline_state_cache_peak_bytes", "Most bytes the state cache has held.", static_cast<double>(s.peak_bytes));
  gauge("flatline_state_cache_entries", "Conversation states held in memory.", static_cast<double>(s.entries));
  counter("flatline_state_cache_disk_hits_total", "Prompts that started from a state read from --state-dir.",
          static_cast<double>(s.disk_hits));
  counter("flatline_state_files_read_total", "State files read from --state-dir (cache hits served from disk).",
          static_cast<double>(s.files_read));
  counter("flatline_state_files_rejected_total", "State files refused (corrupt, truncated, other model) and moved aside.",
          static_cast<double>(s.rejected_files));
  counter("flatline_state_files_written_total", "State files written to --state-dir.",
          static_cast<double>(s.files_written));
  counter("flatline_state_files_deleted_total", "State files deleted (superseded, or beyond --state-dir-max).",
          static_cast<double>(s.files_deleted));
  gauge("flatline_state_disk_bytes", "Bytes of state files in --state-dir.", static_cast<double>(s.disk_bytes));
  gauge("flatline_state_disk_files", "State files in --state-dir.", static_cast<double>(s.disk_entries));

  gauge("flatline_queue_length", "Requests holding or waiting for the model turn.",
        static_cast<double>(ctx.models->queued()));
  gauge("flatline_models_loaded", "Models resident in memory.", static_cast<double>(ctx.models->resident().size()));
  gauge("flatline_resident_memory_bytes", "Resident set size of the server process (VmRSS).",
        static_cast<double>(current_rss_bytes()));
  gauge("flatline_memory_budget_bytes", "The memory budget (--max-memory or derived from the machine).",
        static_cast<double>(ctx.models->budget_limit()));
  gauge("flatline_memory_reserved_bytes", "Part of the budget reserved by resident models and the state cache.",
        static_cast<double>(ctx.models->budget_reserved()));

  const TransportStats t = ctx.transport->stats();
  gauge("flatline_http_connections_open", "Open HTTP connections.", static_cast<double>(t.open));
  gauge("flatline_http_connections_busy", "Connections with a request being served or waiting for a worker.",
        static_cast<double>(t.busy));
  counter("flatline_http_connections_accepted_total", "HTTP connections accepted.", static_cast<double>(t.accepted));
  counter("flatline_http_connections_refused_total", "Connections answered 503 because every connection was busy.",
          static_cast<double>(t.refused_full));
  counter("flatline_http_connections_evicted_total", "Idle or slow connections closed to make room for a new one.",
          static_cast<double>(t.evicted));
  counter("flatline_http_connections_timed_out_total", "Connections closed because a request did not arrive in time.",
          static_cast<double>(t.timed_out));
  counter("flatline_http_requests_too_large_total", "Requests refused from their headers (413 body, 431 headers).",
          static_cast<double>(t.too_large));
  w.family("flatline_build_info", "gauge", "Always 1; the labels name the versions.");
  w.sample("flatline_build_info", {{"version", FLATLINE_VERSION}}, 1);
  return out;
}

}  // namespace

void register_ops_routes(Router& router, ServerContext& ctx) {
  router.get("/health", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_ollama_error, [&] { handle_health(ctx, res); });
  });
  router.get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
    guarded(res, write_ollama_error,
            [&] { res.set_content(render_metrics(ctx), "text/plain; version=0.0.4; charset=utf-8"); });
  });
}

}  // namespace flatline::server
