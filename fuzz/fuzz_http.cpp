// The whole server on arbitrary HTTP requests: one in-process `flatline
// serve` with the bundled demo model on a loopback port; each input is sent
// as raw bytes on a new connection. Every answer must be a well-formed HTTP
// response with a status below 500 (bad input is the client's error, 4xx;
// the documented 5xx are allowed, see below),
// and the server must keep answering. When the input holds a
// "Content-Length: " header its value is rewritten to the body's real length,
// so mutations of JSON bodies reach the routes instead of stalling the
// request parser.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "fuzz_target.h"
#include "server/server.h"
#include "util/log.h"

#ifndef FLATLINE_DEMO_MODEL
#define FLATLINE_DEMO_MODEL ""
#endif

namespace {

flatline::server::Server& server() {
  static std::unique_ptr<flatline::server::Server> instance = [] {
    namespace fs = std::filesystem;
    if (!std::getenv("FLATLINE_FUZZ_VERBOSE")) flatline::set_log_level(flatline::LogLevel::Error);
    const fs::path dir = fs::temp_directory_path() / ("flatline-fuzz-http-" + std::to_string(::getpid()));
    fs::create_directories(dir / "models");
    fs::copy_file(FLATLINE_DEMO_MODEL, dir / "models" / "demo.gguf", fs::copy_options::overwrite_existing);
    flatline::server::ServerOptions o;
    o.port = 0;
    o.models.models_dir = (dir / "models").string();
    o.models.threads = 1;
    o.models.default_ctx = 512;
    o.http_threads = 4;
    o.transport.workers = 4;
    o.transport.header_timeout_s = 2;
    o.transport.body_timeout_s = 2;
    o.cache.memory_limit = 16u << 20;
    auto s = std::make_unique<flatline::server::Server>(o);
    s->start();
    return s;
  }();
  return *instance;
}

std::string with_true_content_length(std::string request) {
  const std::string key = "Content-Length: ";
  const size_t header_end = request.find("\r\n\r\n");
  const size_t at = request.find(key);
  if (header_end == std::string::npos || at == std::string::npos || at > header_end) return request;
  const size_t value_begin = at + key.size();
  const size_t value_end = request.find("\r\n", value_begin);
  const size_t body_bytes = request.size() - (header_end + 4);
  request.replace(value_begin, value_end - value_begin, std::to_string(body_bytes));
  return request;
}

// True once `r` holds a whole response (Content-Length or chunked body).
// The connection stays open while we read: a half-closed socket counts as a
// client that has gone, and the server would cancel the generation.
bool complete_response(const std::string& r) {
  const size_t head_end = r.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = r.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const size_t at = head.find("\r\ncontent-length: "); at != std::string::npos)
    return r.size() - (head_end + 4) >= std::strtoull(head.c_str() + at + 18, nullptr, 10);
  if (head.find("transfer-encoding: chunked") != std::string::npos) return r.find("\r\n0\r\n\r\n", head_end) != std::string::npos;
  return false;  // read until the server closes
}

// Sends `request` and reads one response, until it is complete, the server
// closes or `timeout` passes (a long generation: closing the socket cancels it).
std::string exchange(int port, const std::string& request, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  FUZZ_CHECK(fd >= 0, "socket()");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "the server accepts connections");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading everything
    sent += static_cast<size_t>(n);
  }
  std::string response;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline && response.size() < (1u << 20)) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    if (complete_response(response)) break;
  }
  ::close(fd);
  return response;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flatline::server::Server& s = server();
  const std::string request = with_true_content_length(std::string(reinterpret_cast<const char*>(data), size));
  const std::string response = exchange(s.port(), request, std::chrono::milliseconds(3000));
  if (!response.empty()) {
    FUZZ_CHECK(response.rfind("HTTP/1.1 ", 0) == 0, "a response starts with a status line");
    const int status = std::atoi(response.c_str() + 9);
    // The documented 5xx answers: Ollama's 500 for a model (or num_ctx) that
    // does not fit the memory budget, 503 for a full queue.
    const bool documented = status == 503 || (status == 500 && response.find("requires more system memory") != std::string::npos);
    if (status >= 500 && !documented)
      std::fprintf(stderr, "status %d for:\n%s\n---\n%.2000s\n", status, request.c_str(), response.c_str());
    FUZZ_CHECK(status >= 100 && (status < 500 || documented), "bad input gets a 4xx, never an undocumented 5xx");
  }
  // The server still serves (a wedged worker pool or a dead listener is a finding).
  const std::string health = exchange(s.port(), "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                      std::chrono::milliseconds(10000));
  FUZZ_CHECK(health.rfind("HTTP/1.1 200", 0) == 0, "the server still answers /api/version");
  return 0;
}
