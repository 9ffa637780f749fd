// The connection layer under the HTTP routes: which connections are read,
// when they are dropped, and which thread serves a request.
//
// cpp-httplib (Debian's compiled 0.11) gives every connection a worker thread
// for its whole life, including while it is idle between requests or
// trickling in its headers, and starts a fresh read buffer per request. That
// lets a few dozen half-open connections stop every endpoint and drops
// pipelined requests. HttpTransport keeps httplib's request parsing and
// routing (Server::process_request) but owns the sockets:
//
// - one poller thread (epoll) holds every connection that is idle or still
//   sending its request; only a request whose headers (and, up to
//   `prebuffer_body_bytes`, body) have arrived takes a worker thread;
// - deadlines: headers within `header_timeout_s` of the request's first
//   byte, the body within `body_timeout_s` of the headers, at most
//   `idle_timeout_s` between requests, `write_timeout_s` for a client that
//   stops reading;
// - at most `max_connections` open; at the cap the least recently active
//   connection without a request in progress is closed, and only when every
//   connection has one is the new one answered 503 at once;
// - a Content-Length over `max_body_bytes` is answered 413 from the headers,
//   without reading the body; headers over `max_header_bytes` get 431;
// - one read buffer per connection, so pipelined requests are served in order;
// - a request handler can ask whether its client has gone (client_gone()).
#pragma once

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace flatline::server {

struct TransportLimits {
  int workers = 48;                            // threads serving requests
  size_t max_connections = 256;                // open connections (idle ones are closed first at the cap)
  int header_timeout_s = 10;                   // first byte of a request -> end of its headers
  int body_timeout_s = 60;                     // end of headers -> end of the body
  int idle_timeout_s = 30;                     // keep-alive: between two requests
  int write_timeout_s = 30;                    // a client that reads nothing for this long is dropped
  uint64_t max_body_bytes = 32u << 20;         // Content-Length above this: 413 before the body is read
  size_t max_header_bytes = 64u << 10;         // request line + headers; 431 beyond
  size_t prebuffer_body_bytes = 1u << 20;      // bodies up to this size are read before a worker is taken
  size_t prebuffer_total_bytes = 64u << 20;    // ... as long as all such buffers stay under this
  size_t max_requests_per_connection = 10000;  // then "Connection: close"
};

// Counters since start (for /metrics).
struct TransportStats {
  uint64_t open = 0;            // connections open now
  uint64_t busy = 0;            // ... of which have a request being served or queued for a worker
  uint64_t accepted = 0;
  uint64_t refused_full = 0;    // 503 at the connection cap
  uint64_t evicted = 0;         // idle / slow connections closed to make room
  uint64_t timed_out = 0;       // closed by a header, body or idle deadline
  uint64_t too_large = 0;       // 413 / 431 from the headers
};

class HttpTransport : public httplib::Server {
 public:
  explicit HttpTransport(TransportLimits limits);
  ~HttpTransport() override;

  // Starts the poller and the workers. Throws Error (naming the thread
  // count) when the OS refuses to create them. Call before listening.
  void start_threads();
  // Shuts every connection's socket (a request in progress sees its client
  // gone) and tells the threads to end; does not wait. Any thread.
  void begin_shutdown();
  // begin_shutdown(), then waits for the threads and closes everything.
  // Not from a request handler.
  void shutdown();

  TransportStats stats() const;

  // Body of a response the transport writes itself (413, 431, 503, 400)
  // before routing: `path` is the request's path ("" if unknown).
  using CannedBody = std::function<std::string(int status, const std::string& path, const std::string& message)>;
  void set_canned_body(CannedBody fn) { canned_body_ = std::move(fn); }

  // For request handlers, on the thread serving the request: true once the
  // client has closed its connection (or the transport is shutting down).
  static bool client_gone();
  // Called by a handler that read a chunked request body completely;
  // requests whose body was not read end their connection after the reply.
  static void note_body_read();

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool serve_request(httplib::Stream& strm, bool close_after, bool& client_closes,
                     const std::function<void(httplib::Request&)>& on_headers) {
    return process_request(strm, close_after, client_closes, on_headers);
  }

  struct Impl;
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  CannedBody canned_body_;
};

}  // namespace flatline::server
