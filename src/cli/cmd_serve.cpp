// `flatline serve`: the Ollama-compatible server (src/server, docs/SERVER.md).
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/common.h"
#include "server/access_policy.h"
#include "server/request_options.h"
#include "server/server.h"
#include "util/error.h"
#include "util/limits.h"
#include "util/log.h"

namespace flatline::cli {

namespace {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 11434;
  std::string models_dir;
  std::string state_dir;
  std::string max_memory;
  std::string cache_memory;
  std::string state_disk = "4G";
  std::string keep_alive = "5m";
  std::string max_body = "32M";
  int threads = 0;
  int64_t batch = 256;
  int64_t ctx = 4096;
  std::string kv_type = "f16";
  std::string context_overflow = "refuse";
  int max_loaded = 1;
  int max_queue = 32;
  int queue_timeout = 300;
  int request_timeout = 0;
  int http_threads = 48;
  int max_connections = 256;
  int max_responses = 1000;
  int header_timeout = 10;
  int body_timeout = 60;
  int idle_timeout = 30;
  std::string api_key;
  bool insecure_public = false;
  bool allow_delete_files = false;
  std::string allowed_hosts;
  std::string allowed_origins;
};

// A flag's value, else the environment variable's.
std::string flag_or_env(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  const char* v = std::getenv(env);
  return v ? v : "";
}

int64_t parse_keep_alive_flag(const std::string& text) {
  char* end = nullptr;
  double seconds = std::strtod(text.c_str(), &end);
  const bool is_number = end && *end == '\0' && end != text.c_str();
  if (is_number && !(std::fabs(seconds) * 1e9 < 9.2e18)) return KeepAlive::kForever;  // also NaN
  int64_t ns = is_number ? static_cast<int64_t>(seconds * 1e9) : server::parse_go_duration_ns(text);
  return ns < 0 ? KeepAlive::kForever : ns;
}

// A share of the budget for cached conversation states: a fifth, at least
// 64 MiB, at most 4 GiB.
uint64_t default_cache_memory(uint64_t budget) {
  return std::clamp<uint64_t>(budget / 5, 64ull << 20, 4ull << 30);
}

void serve(const ServeOptions& o) {
  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.models.models_dir = o.models_dir.empty() ? default_models_dir() : o.models_dir;
  so.models.max_memory = o.max_memory.empty() ? 0 : parse_byte_size(o.max_memory, "--max-memory");
  so.models.threads = o.threads;
  so.models.batch = o.batch;
  so.models.default_ctx = o.ctx;
  so.models.kv_type = parse_kv_type(o.kv_type);
  so.context_policy = parse_context_policy(o.context_overflow);
  so.models.max_loaded = o.max_loaded;
  so.models.max_queue = static_cast<size_t>(std::max(1, o.max_queue));
  so.models.queue_timeout_ms = int64_t{o.queue_timeout} * 1000;
  so.request_timeout_ms = int64_t{o.request_timeout} * 1000;
  so.models.default_keep_alive.ns = parse_keep_alive_flag(o.keep_alive);
  const uint64_t budget = MemoryBudget(so.models.max_memory).limit();
  so.cache.memory_limit =
      o.cache_memory.empty() ? default_cache_memory(budget) : parse_byte_size(o.cache_memory, "--cache-memory");
  so.cache.directory = o.state_dir;
  so.cache.disk_limit = parse_byte_size(o.state_disk, "--state-dir-max");
  so.max_body_bytes = parse_byte_size(o.max_body, "--max-body");
  if (so.max_body_bytes < limits::kMinBodyBytes || so.max_body_bytes > limits::kMaxBodyBytes)
    throw Error("--max-body must be between 1K and 1G (got " + o.max_body + ")");
  // Each queued request holds an HTTP thread: keep some free for listings.
  so.http_threads = std::max(o.http_threads, o.max_queue + 8);
  so.transport.max_connections = static_cast<size_t>(o.max_connections);
  so.max_responses = static_cast<size_t>(o.max_responses);
  so.transport.header_timeout_s = o.header_timeout;
  so.transport.body_timeout_s = o.body_timeout;
  so.transport.idle_timeout_s = o.idle_timeout;
  so.access.api_key = flag_or_env(o.api_key, "FLATLINE_API_KEY");
  so.access.insecure_public = o.insecure_public;
  so.allow_delete_files = o.allow_delete_files;
  so.access.allowed_hosts = server::split_list(flag_or_env(o.allowed_hosts, "FLATLINE_ALLOWED_HOSTS"));
  so.access.allowed_origins = server::split_list(flag_or_env(o.allowed_origins, "FLATLINE_ORIGINS"));
  if (o.host == "0.0.0.0" || o.host == "::")
    LOG_WARN("--host " << o.host << " listens on every network interface of this machine");

  // Signals go to one thread that stops the server; every other thread
  // (HTTP workers, the compute pool) inherits the blocked mask.
  // A shell starts background jobs with SIGINT ignored; an ignored signal
  // is never delivered to sigwait, so restore the default first.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  server::Server srv(so);
  srv.bind();
  std::thread stopper([&srv, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    LOG_INFO("signal " << sig << ": shutting down (a second signal exits at once)");
    srv.stop();
    sigwait(&signals, &sig);
    std::fprintf(stderr, "flatline: signal %d again: exiting without waiting for requests to end\n", sig);
    std::_Exit(1);
  });
  stopper.detach();
  std::printf("listening on %s\n", srv.url().c_str());
  std::fflush(stdout);
  srv.run();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* sub = app.add_subcommand("serve", "Serve models over Ollama's HTTP API (and OpenAI's /v1), keeping conversation states");
  sub->add_option("--host", o->host, "Address to listen on (beyond loopback only with --api-key or --insecure-public)")
      ->capture_default_str();
  bounded(sub->add_option("--port", o->port, "Port (0: any free port)")->capture_default_str(), 0, 65535);
  sub->add_option("--models", o->models_dir, "Directory of .gguf models (default: $FLATLINE_MODELS, else the bundled models/ folder)");
  sub->add_option("--state-dir", o->state_dir,
                  "Save conversation states here so they survive a restart; several servers may share one directory");
  sub->add_option("--state-dir-max,--state-disk", o->state_disk,
                  "Most disk space for saved states, counted over every server using --state-dir (oldest deleted first)")
      ->capture_default_str();
  sub->add_option("--max-memory", o->max_memory,
                  "Memory budget, e.g. 6G (default: available memory, the tightest of MemAvailable and cgroup limits, minus 10%)");
  sub->add_option("--cache-memory", o->cache_memory, "Part of the budget for cached states (default: a fifth, 64 MiB..4 GiB)");
  bounded(sub->add_option("-t,--threads", o->threads, "Compute threads (default: the physical performance cores this process may use, see info)"), 0, limits::kMaxThreads);
  bounded(sub->add_option("-b,--batch", o->batch, "Tokens per prompt-processing chunk")->capture_default_str(), 1,
          limits::kMaxBatch);
  bounded(sub->add_option("-c,--ctx", o->ctx, "Default num_ctx (context tokens) for transformer models")->capture_default_str(),
          1, limits::kMaxContext);
  sub->add_option("--kv-type", o->kv_type, "KV cache type for transformers: f16, q8_0, f32")->capture_default_str();
  sub->add_option("--context-overflow", o->context_overflow,
                  "Chats that outgrow num_ctx: refuse (400 saying how many tokens fit) or drop-oldest (drop the oldest "
                  "messages and re-process); a request's \"truncate\": true/false overrides")
      ->capture_default_str();
  sub->add_option("--keep-alive", o->keep_alive, "Default keep_alive (Go duration or seconds; negative = forever)")
      ->capture_default_str();
  bounded(sub->add_option("--max-loaded", o->max_loaded, "Models resident at once")->capture_default_str(), 1,
          limits::kMaxLoaded);
  bounded(sub->add_option("--max-queue", o->max_queue, "Requests that may wait for the model before 503")->capture_default_str(),
          1, limits::kMaxQueue);
  bounded(sub->add_option("--queue-timeout", o->queue_timeout,
                          "Seconds a request may wait for the model before 503 with Retry-After (0: no limit)")
              ->capture_default_str(),
          0, limits::kMaxTimeoutSeconds);
  bounded(sub->add_option("--request-timeout", o->request_timeout,
                          "Seconds after which a request's reply stops with done_reason \"length\" (0: no limit)")
              ->capture_default_str(),
          0, limits::kMaxTimeoutSeconds);
  sub->add_option("--max-body", o->max_body, "Largest request body (413 beyond), 1K..1G")->capture_default_str();
  bounded(sub->add_option("--http-threads", o->http_threads, "HTTP worker threads (requests served at once)")
              ->capture_default_str(),
          limits::kMinHttpThreads, limits::kMaxHttpThreads);
  bounded(sub->add_option("--max-responses", o->max_responses,
                          "Stored /v1/responses kept for previous_response_id (in --state-dir/responses/ when "
                          "given, else in memory); the oldest go first")
              ->capture_default_str(),
          1, limits::kMaxStoredResponses);
  bounded(sub->add_option("--max-connections", o->max_connections,
                          "Open connections; at the cap the least recently active idle one is closed")
              ->capture_default_str(),
          16, limits::kMaxConnections);
  bounded(sub->add_option("--header-timeout", o->header_timeout, "Seconds a request's headers may take to arrive")
              ->capture_default_str(),
          1, limits::kMaxTimeoutSeconds);
  bounded(sub->add_option("--body-timeout", o->body_timeout, "Seconds a request's body may take after its headers")
              ->capture_default_str(),
          1, limits::kMaxTimeoutSeconds);
  bounded(sub->add_option("--idle-timeout", o->idle_timeout, "Seconds a keep-alive connection may wait for its next request")
              ->capture_default_str(),
          1, limits::kMaxTimeoutSeconds);
  sub->add_option("--api-key", o->api_key,
                  "Require \"Authorization: Bearer KEY\" on every route but /health and / (default: $FLATLINE_API_KEY)");
  sub->add_flag("--insecure-public", o->insecure_public, "Allow a --host beyond loopback without an API key");
  sub->add_flag("--allow-delete-files", o->allow_delete_files,
                "Let /api/delete delete a .gguf file of the models directory (by default it deletes only aliases)");
  sub->add_option("--allowed-hosts", o->allowed_hosts,
                  "Extra Host names accepted on a loopback bind, comma-separated, * = any (default: $FLATLINE_ALLOWED_HOSTS)");
  sub->add_option("--allowed-origins", o->allowed_origins,
                  "Extra browser origins allowed (CORS), comma-separated, one * wildcard each (default: $FLATLINE_ORIGINS)");
  sub->callback([o] { serve(*o); });
}

}  // namespace flatline::cli
