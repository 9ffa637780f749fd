#include "server/http_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "util/error.h"
#include "util/log.h"

namespace flatline::server {

namespace {

using Clock = std::chrono::steady_clock;

enum class Phase {
  Idle,      // between requests (poller)
  Reading,   // a request is arriving (poller)
  Busy,      // a worker serves it, or it waits for one
  Draining,  // a canned error was sent; reading and discarding until the client closes (poller)
};

struct Connection {
  int fd = -1;
  std::atomic<Phase> phase{Phase::Idle};  // written by the poller, read by stats()
  std::string in;    // received and not yet consumed
  size_t offset = 0; // consumed prefix of `in` (worker side)
  Clock::time_point deadline;       // poller phases
  Clock::time_point last_active;
  Clock::time_point body_deadline;  // worker: the rest of the body must arrive by then
  bool head_seen = false;           // the current request's headers are complete (poller)
  size_t requests = 0;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;
  const std::atomic<bool>* stopping = nullptr;
  // Per request, on the worker.
  uint64_t consumed = 0;            // bytes handed to httplib
  uint64_t consumed_at_head = 0;    // ... when its headers were parsed
  uint64_t body_length = 0;
  bool chunked = false;
  bool body_read = false;           // note_body_read() was called
  bool broken = false;              // a write failed or timed out
};

thread_local Connection* tls_connection = nullptr;

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i)
    if (ieq(haystack.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// What the poller needs to know about a request before a worker takes it.
struct Framing {
  bool complete = false;    // the headers have all arrived
  size_t head_bytes = 0;    // request line + headers + blank line
  std::string path;
  uint64_t content_length = 0;
  bool chunked = false;
  bool expect_continue = false;
  int error_status = 0;     // 400 / 431: answer and close
  std::string error;
};

Framing parse_framing(std::string_view data, size_t max_header_bytes) {
  Framing f;
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 > max_header_bytes) {
    if (data.size() > max_header_bytes || end != std::string_view::npos) {
      f.error_status = 431;
      f.error = "request headers are larger than " + std::to_string(max_header_bytes >> 10) + " KiB";
    }
    return f;
  }
  f.complete = true;
  f.head_bytes = end + 4;
  std::string_view head = data.substr(0, end + 2);
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  if (sp1 != std::string_view::npos) {
    size_t sp2 = request_line.find(' ', sp1 + 1);
    std::string_view target = request_line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
    f.path = std::string(target.substr(0, target.find('?')));
  }
  bool has_length = false;
  for (size_t pos = line_end + 2; pos < head.size();) {
    size_t next = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (ieq(name, "Content-Length")) {
      uint64_t v = 0;
      bool ok = !value.empty() && value.size() <= 19;
      for (char c : value) ok = ok && c >= '0' && c <= '9';
      if (ok)
        for (char c : value) v = v * 10 + static_cast<uint64_t>(c - '0');
      if (!ok || (has_length && v != f.content_length)) {
        f.error_status = 400;
        f.error = "invalid Content-Length header: \"" + std::string(value.substr(0, 40)) + "\"";
        return f;
      }
      has_length = true;
      f.content_length = v;
    } else if (ieq(name, "Transfer-Encoding")) {
      f.chunked = f.chunked || icontains(value, "chunked");
    } else if (ieq(name, "Expect")) {
      f.expect_continue = icontains(value, "100-continue");
    }
  }
  if (f.chunked && has_length) {
    f.error_status = 400;
    f.error = "a request may not have both Content-Length and Transfer-Encoding";
  }
  return f;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// The peer has shut its side (or the socket failed). Data waiting to be
// read (a pipelined request) does not count.
bool peer_closed(int fd) {
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

int ms_until(Clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
}

// httplib's view of one request on a connection: reads come from the
// connection's buffer first (so nothing received is lost between pipelined
// requests), writes wait at most the write timeout.
class ConnectionStream : public httplib::Stream {
 public:
  ConnectionStream(Connection& c, int write_timeout_s) : c_(c), write_timeout_ms_(write_timeout_s * 1000) {}

  bool is_readable() const override { return c_.offset < c_.in.size() || wait_for(POLLIN, 0); }
  bool is_writable() const override { return !c_.broken && !c_.stopping->load() && !peer_closed(c_.fd); }

  ssize_t read(char* ptr, size_t size) override {
    if (c_.offset == c_.in.size() && !fill()) return c_.broken ? -1 : 0;
    const size_t n = std::min(size, c_.in.size() - c_.offset);
    std::memcpy(ptr, c_.in.data() + c_.offset, n);
    c_.offset += n;
    c_.consumed += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::send(c_.fd, ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !c_.stopping->load() &&
          wait_for(POLLOUT, write_timeout_ms_))
        continue;
      c_.broken = true;
      return -1;
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.remote_ip;
    port = c_.remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.local_ip;
    port = c_.local_port;
  }
  socket_t socket() const override { return c_.fd; }

 private:
  bool wait_for(short events, int timeout_ms) const {
    pollfd p{c_.fd, events, 0};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & events) != 0;
  }

  // Receives more of the request body, until its deadline. False at end of
  // stream, on error or timeout.
  bool fill() {
    c_.in.erase(0, c_.offset);
    c_.offset = 0;
    char buf[16384];
    while (!c_.stopping->load()) {
      if (Clock::now() >= c_.body_deadline) {
        c_.broken = true;
        return false;
      }
      if (!wait_for(POLLIN, ms_until(c_.body_deadline))) continue;
      ssize_t n = ::recv(c_.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c_.in.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) return false;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c_.broken = true;
        return false;
      }
    }
    c_.broken = true;
    return false;
  }

  Connection& c_;
  int write_timeout_ms_;
};

// httplib hands each accepted socket to its task queue; this one passes it
// straight on (to HttpTransport::process_and_close_socket, on the accept
// thread), which queues it for the poller.
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

}  // namespace

struct HttpTransport::Impl {
  HttpTransport& owner;
  TransportLimits limits;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::thread poller;
  std::vector<std::thread> workers;
  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};
  std::mutex join_mutex;  // one shutdown() at a time

  mutable std::mutex mu;  // guards everything below
  std::condition_variable work_cv;
  std::unordered_map<int, std::unique_ptr<Connection>> connections;  // every open one
  std::deque<int> incoming;            // accepted, not yet seen by the poller
  std::deque<Connection*> returned;    // back from workers
  std::deque<Connection*> work;        // waiting for a worker
  size_t buffered = 0;                 // bytes held by poller-side connections
  TransportStats stats;

  Impl(HttpTransport& o, TransportLimits l) : owner(o), limits(l) {}

  void wake() {
    uint64_t one = 1;
    if (wake_fd >= 0) {
      [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
    }
  }

  // ---- poller ----------------------------------------------------------------

  void poll_loop() {
    epoll_event events[64];
    while (!stopping) {
      int n = epoll_wait(epoll_fd, events, 64, 250);
      for (int i = 0; i < n && !stopping; ++i) {
        if (events[i].data.ptr == nullptr) {
          uint64_t v;
          [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
          continue;
        }
        on_readable(static_cast<Connection*>(events[i].data.ptr));
      }
      if (stopping) break;
      take_incoming();
      take_returned();
      expire();
    }
    close_all_on_exit();
  }

  void watch(Connection* c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
  }

  void close_poller_side(Connection* c) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, nullptr);
    std::lock_guard<std::mutex> lock(mu);
    buffered -= std::min(buffered, c->in.size());
    const int fd = c->fd;
    connections.erase(fd);  // destroys c
    ::close(fd);
  }

  void take_incoming() {
    std::deque<int> fds;
    {
      std::lock_guard<std::mutex> lock(mu);
      fds.swap(incoming);
    }
    for (int fd : fds) admit(fd);
  }

  // The least recently active connection the poller holds that is not
  // draining; nullptr if every connection has a request in progress.
  Connection* eviction_candidate() {
    Connection* best = nullptr;
    for (auto& [fd, c] : connections)
      if ((c->phase == Phase::Idle || c->phase == Phase::Reading) && (!best || c->last_active < best->last_active))
        best = c.get();
    return best;
  }

  void admit(int fd) {
    set_nonblocking(fd);
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);  // streamed tokens go out at once
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->stopping = &stopping;
    c->last_active = Clock::now();
    c->deadline = c->last_active + std::chrono::seconds(limits.header_timeout_s);
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, c->remote_ip, c->remote_port);
    len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, c->local_ip, c->local_port);
    Connection* victim = nullptr;
    bool full = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      size_t active = 0;
      for (auto& [f, other] : connections) active += other->phase != Phase::Draining;
      if (active >= limits.max_connections) {
        victim = eviction_candidate();
        full = victim == nullptr;
        if (full && connections.size() - active >= limits.max_connections) {
          ++stats.refused_full;  // even the 503s pile up: just close
          ::close(fd);
          return;
        }
      }
      ++stats.accepted;
      if (victim) ++stats.evicted;
      if (full) ++stats.refused_full;
    }
    if (victim) {
      LOG_DEBUG("http: " << limits.max_connections << " connections open; closing the least recently active one ("
                         << victim->remote_ip << ":" << victim->remote_port << ")");
      close_poller_side(victim);
    }
    Connection* raw = c.get();
    {
      std::lock_guard<std::mutex> lock(mu);
      connections.emplace(fd, std::move(c));
    }
    watch(raw);
    if (full) {
      LOG_WARN("http: every one of the " << limits.max_connections
                                        << " connections has a request in progress; answering 503");
      respond_and_drain(raw, 503, "",
                        "server busy: " + std::to_string(limits.max_connections) + " connections are being served");
    }
  }

  void take_returned() {
    std::deque<Connection*> back;
    {
      std::lock_guard<std::mutex> lock(mu);
      back.swap(returned);
      for (Connection* c : back) buffered += c->in.size();
    }
    const auto now = Clock::now();
    for (Connection* c : back) {
      c->phase = c->in.empty() ? Phase::Idle : Phase::Reading;
      c->head_seen = false;
      c->last_active = now;
      c->deadline = now + std::chrono::seconds(c->in.empty() ? limits.idle_timeout_s : limits.header_timeout_s);
      watch(c);
      if (!c->in.empty()) try_dispatch(c, false);  // a pipelined request
    }
  }

  void expire() {
    const auto now = Clock::now();
    std::vector<Connection*> expired;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [fd, c] : connections)
        if (c->phase != Phase::Busy && c->deadline <= now) expired.push_back(c.get());
      for (Connection* c : expired) stats.timed_out += c->phase == Phase::Reading;
    }
    for (Connection* c : expired) {
      if (c->phase == Phase::Reading)
        LOG_DEBUG("http: " << c->remote_ip << ":" << c->remote_port << " did not finish its request in time; closing");
      close_poller_side(c);
    }
  }

  void on_readable(Connection* c) {
    const size_t limit = limits.max_header_bytes + limits.prebuffer_body_bytes;
    char buf[16384];
    bool eof = false;
    while (true) {
      size_t room = c->phase == Phase::Draining ? sizeof buf : (limit > c->in.size() ? limit - c->in.size() : 0);
      if (room == 0) break;
      ssize_t n = ::recv(c->fd, buf, std::min(room, sizeof buf), 0);
      if (n > 0) {
        if (c->phase == Phase::Draining) continue;  // discarded
        c->in.append(buf, static_cast<size_t>(n));
        {
          std::lock_guard<std::mutex> lock(mu);
          buffered += static_cast<size_t>(n);
        }
        c->last_active = Clock::now();
        if (c->phase == Phase::Idle) {
          c->phase = Phase::Reading;
          c->deadline = c->last_active + std::chrono::seconds(limits.header_timeout_s);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;  // closed or failed
      break;
    }
    if (c->phase == Phase::Draining) {
      if (eof) close_poller_side(c);
      return;
    }
    if (!try_dispatch(c, eof) && eof) close_poller_side(c);
  }

  // Hands `c` to a worker if its request is ready; answers malformed or
  // oversized ones. Returns true if `c` is no longer the poller's to close.
  bool try_dispatch(Connection* c, bool eof) {
    size_t skip = 0;  // empty lines before a request line are allowed (RFC 9112 2.2)
    while (skip + 1 < c->in.size() && c->in[skip] == '\r' && c->in[skip + 1] == '\n') skip += 2;
    if (skip) {
      c->in.erase(0, skip);
      std::lock_guard<std::mutex> lock(mu);
      buffered -= std::min(buffered, skip);
    }
    if (c->in.empty()) return false;
    Framing f = parse_framing(c->in, limits.max_header_bytes);
    if (f.error_status) {
      respond_and_drain(c, f.error_status, f.path, f.error);
      return true;
    }
    if (!f.complete) return false;
    if (f.content_length > limits.max_body_bytes) {
      respond_and_drain(c, 413, f.path,
                        "request body too large: Content-Length " + std::to_string(f.content_length) +
                            " is over the limit of " + std::to_string(limits.max_body_bytes >> 20) + " MiB (--max-body)");
      return true;
    }
    const uint64_t need = f.head_bytes + f.content_length;
    bool buffer_full;
    {
      std::lock_guard<std::mutex> lock(mu);
      buffer_full = buffered > limits.prebuffer_total_bytes;
    }
    const bool wait_for_body = !eof && !f.chunked && !f.expect_continue &&
                               f.content_length <= limits.prebuffer_body_bytes && c->in.size() < need && !buffer_full;
    if (!c->head_seen) {
      c->head_seen = true;
      c->body_deadline = Clock::now() + std::chrono::seconds(limits.body_timeout_s);
      c->deadline = c->body_deadline;
    }
    if (wait_for_body) return false;
    dispatch(c);
    return true;
  }

  void dispatch(Connection* c) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, nullptr);
    c->phase = Phase::Busy;
    c->offset = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      buffered -= std::min(buffered, c->in.size());
      work.push_back(c);
    }
    work_cv.notify_one();
  }

  // Writes a complete error response, shuts the sending side and reads
  // (discarding) until the client closes or 2 s pass, so the client sees the
  // response instead of a reset.
  void respond_and_drain(Connection* c, int status, const std::string& path, const std::string& message) {
    if (status == 413 || status == 431) {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.too_large;
    }
    std::string body = owner.canned_body_ ? owner.canned_body_(status, path, message) : message;
    std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                           "\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] auto n = ::send(c->fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(c->fd, SHUT_WR);
    {
      std::lock_guard<std::mutex> lock(mu);
      buffered -= std::min(buffered, c->in.size());
    }
    c->in.clear();
    c->in.shrink_to_fit();
    c->phase = Phase::Draining;
    c->deadline = Clock::now() + std::chrono::seconds(2);
  }

  void close_all_on_exit() {
    std::lock_guard<std::mutex> lock(mu);
    for (int fd : incoming) ::close(fd);
    incoming.clear();
    returned.clear();  // their connections are closed below
    for (auto it = connections.begin(); it != connections.end();) {
      if (it->second->phase == Phase::Busy && std::find(work.begin(), work.end(), it->second.get()) == work.end()) {
        ::shutdown(it->first, SHUT_RDWR);  // its worker closes it
        ++it;
        continue;
      }
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, it->first, nullptr);
      ::close(it->first);
      it = connections.erase(it);
    }
    work.clear();
  }

  // ---- workers ---------------------------------------------------------------

  void work_loop() {
    while (true) {
      Connection* c;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stopping || !work.empty(); });
        if (stopping) return;
        c = work.front();
        work.pop_front();
      }
      serve(c);
    }
  }

  void serve(Connection* c) {
    ++c->requests;
    c->consumed = 0;
    c->consumed_at_head = 0;
    c->body_length = 0;
    c->chunked = false;
    c->body_read = false;
    const bool close_after = stopping || c->requests >= limits.max_requests_per_connection;
    bool client_closes = false;
    bool ok;
    {
      ConnectionStream strm(*c, limits.write_timeout_s);
      tls_connection = c;
      ok = owner.serve_request(strm, close_after, client_closes, [c](httplib::Request& req) {
        c->consumed_at_head = c->consumed;
        c->chunked = icontains(req.get_header_value("Transfer-Encoding"), "chunked");
        c->body_length = req.get_header_value<uint64_t>("Content-Length");
      });
      tls_connection = nullptr;
    }
    const bool body_left = c->chunked ? !c->body_read : c->consumed - c->consumed_at_head < c->body_length;
    if (!ok || client_closes || close_after || c->broken || body_left || stopping) {
      std::lock_guard<std::mutex> lock(mu);
      const int fd = c->fd;
      connections.erase(fd);
      ::close(fd);
      return;
    }
    c->in.erase(0, c->offset);
    c->offset = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      returned.push_back(c);
    }
    wake();
  }
};

HttpTransport::HttpTransport(TransportLimits limits) : impl_(std::make_unique<Impl>(*this, limits)) {
  new_task_queue = [] { return new InlineQueue(); };
  set_keep_alive_timeout(limits.idle_timeout_s);  // only announced in "Keep-Alive:"; the poller enforces it
  set_keep_alive_max_count(limits.max_requests_per_connection);
  set_payload_max_length(limits.max_body_bytes);
}

HttpTransport::~HttpTransport() { shutdown(); }

void HttpTransport::start_threads() {
  Impl& m = *impl_;
  if (m.started) return;
  m.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  m.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (m.epoll_fd < 0 || m.wake_fd < 0) throw Error(std::string("cannot set up the HTTP poller: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.wake_fd, &ev);
  try {
    m.poller = std::thread([&m] { m.poll_loop(); });
    m.workers.reserve(static_cast<size_t>(m.limits.workers));
    for (int i = 0; i < m.limits.workers; ++i) m.workers.emplace_back([&m] { m.work_loop(); });
  } catch (const std::system_error& e) {
    const size_t made = m.workers.size();
    m.started = true;  // so shutdown() joins what was made
    shutdown();
    m.stopping = false;
    throw Error("cannot start " + std::to_string(m.limits.workers) + " HTTP worker threads (the system refused after " +
                std::to_string(made) + ": " + e.what() + "); lower --http-threads");
  }
  m.started = true;
}

void HttpTransport::begin_shutdown() {
  Impl& m = *impl_;
  if (!m.started) return;
  m.stopping = true;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    for (auto& [fd, c] : m.connections)
      if (c->phase == Phase::Busy) ::shutdown(fd, SHUT_RDWR);  // wakes a worker blocked on it
  }
  m.wake();
  m.work_cv.notify_all();
}

void HttpTransport::shutdown() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> joining(m.join_mutex);
  if (!m.started) return;
  begin_shutdown();
  if (m.poller.joinable()) m.poller.join();
  for (auto& t : m.workers)
    if (t.joinable()) t.join();
  m.workers.clear();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    for (auto& [fd, c] : m.connections) ::close(fd);
    m.connections.clear();
  }
  if (m.epoll_fd >= 0) ::close(m.epoll_fd);
  if (m.wake_fd >= 0) ::close(m.wake_fd);
  m.epoll_fd = m.wake_fd = -1;
  m.started = false;
}

TransportStats HttpTransport::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  TransportStats s = impl_->stats;
  s.open = impl_->connections.size();
  s.busy = 0;
  for (auto& [fd, c] : impl_->connections) s.busy += c->phase == Phase::Busy;
  return s;
}

bool HttpTransport::process_and_close_socket(socket_t sock) {
  Impl& m = *impl_;
  if (m.stopping || !m.started) {
    ::close(sock);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.incoming.push_back(sock);
  }
  m.wake();
  return true;
}

bool HttpTransport::client_gone() {
  Connection* c = tls_connection;
  if (!c) return false;
  return c->broken || c->stopping->load() || peer_closed(c->fd);
}

void HttpTransport::note_body_read() {
  if (tls_connection) tls_connection->body_read = true;
}

}  // namespace flatline::server
