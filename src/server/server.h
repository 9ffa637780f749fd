// `flatline serve`: an Ollama-compatible HTTP server (plus the OpenAI
// /v1 shim Ollama offers) that keeps each conversation's state between
// requests. docs/SERVER.md describes the routes, fields, limits and files.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/chat_service.h"
#include "runtime/model_manager.h"
#include "runtime/state_cache.h"
#include "server/access_policy.h"
#include "server/http_transport.h"

namespace flatline::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11434;                     // 0: any free port (see bind())
  ModelManagerOptions models;
  // A request's reply stops (done_reason "length") this long after the
  // request arrived, prompt processing included (0: no limit).
  int64_t request_timeout_ms = 0;
  StateCacheOptions cache;
  size_t max_body_bytes = 32u << 20;    // larger request bodies get 413
  int http_threads = 48;                // requests served at once (queued requests hold one each)
  ContextPolicy context_policy = ContextPolicy::Refuse;  // chats that outgrow num_ctx (request "truncate" overrides)
  AccessOptions access;                 // API key, Host / Origin allowances
  // Stored /v1/responses kept (in --state-dir/responses/ when there is a
  // state directory, else in memory); the oldest go first.
  size_t max_responses = 1000;
  TransportLimits transport;            // timeouts, connection cap (workers and max_body come from above)
  bool allow_delete_files = false;      // /api/delete may delete a .gguf file itself (not only an alias)
};

class Server {
 public:
  // Opens the models directory and the state directory and sets up the
  // memory budget. Throws Error (missing directory, bad models.json, a
  // non-loopback host without an API key or --insecure-public, ...).
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the HTTP threads and binds the listening socket; returns the
  // port. Throws Error (threads refused, address in use, ...).
  int bind();
  // Serves until stop() (binds first if needed); returns once every
  // connection is closed.
  void run();
  // bind() + run() on a background thread; returns once connections are accepted.
  void start();
  // Stops accepting, cancels running generations at their next token and
  // shuts every connection. Safe from another thread (a signal handler
  // thread); does not wait.
  void stop();

  int port() const;
  std::string url() const;  // http://HOST:PORT

  ModelManager& models();
  StateCache& cache();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flatline::server
