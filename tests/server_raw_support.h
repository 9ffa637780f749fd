// Helpers for tests that talk to the server below the HTTP client library:
// a raw TCP connection (half-open and pipelined requests, odd headers), a
// `flatline serve` child process, and copying a GGUF with some metadata
// changed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "test_support.h"

namespace flatline::test {

class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  RawConnection(RawConnection&& o) noexcept : fd_(o.fd_), connected_(o.connected_) { o.fd_ = -1; }

  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until the peer closes, `until` returns true on what was read, or
  // `timeout_ms` pass without any data.
  std::string read(int timeout_ms, const std::function<bool(const std::string&)>& until = {}) {
    std::string out;
    char buf[65536];
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) break;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_by_peer_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (until && until(out)) break;
    }
    return out;
  }
  // True once a read saw the server close the connection.
  bool closed_by_peer() const { return closed_by_peer_; }
  // Waits up to `timeout_ms` for the server to close the connection.
  bool wait_closed(int timeout_ms) {
    read(timeout_ms);
    return closed_by_peer_;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_by_peer_ = false;
};

inline size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// The value of header `name` in a raw response ("" if absent; case-insensitive name).
inline std::string header_of(const std::string& response, const std::string& name) {
  const size_t end = response.find("\r\n\r\n");
  std::string head = response.substr(0, end);
  std::string lower_head = head, lower_name = name + ":";
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = lower_head.find("\r\n" + lower_name);
  if (at == std::string::npos) return "";
  at += 2 + lower_name.size();
  size_t stop = head.find("\r\n", at);
  std::string v = head.substr(at, stop == std::string::npos ? std::string::npos : stop - at);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  return v;
}

inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

// A `flatline serve` child; stdout is read for the "listening on" line,
// stderr goes to a file.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args) {
    log_path_ = temp_path("serve-stderr.log");
    // Everything the child needs is built before fork(): after it, only
    // async-signal-safe calls (this test process has threads).
    std::vector<std::string> argv_s = {flatline_binary(), "serve"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int err = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int out[2];
    if (::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err, 2);
      ::close(out[0]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(err);
    ::close(out[1]);
    out_fd_ = out[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  // Reads stdout until "listening on http://HOST:PORT\n"; returns the port (0 on failure).
  int wait_listening(int timeout_ms = 30000) {
    std::string text;
    char c;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      if (::read(out_fd_, &c, 1) != 1) return 0;
      text += c;
      if (c == '\n') {
        stdout_ += text;
        size_t colon = text.rfind(':');
        if (text.find("listening on") != std::string::npos && colon != std::string::npos)
          return std::stoi(text.substr(colon + 1));
        text.clear();
      }
    }
    return 0;
  }
  // Waits for the process to exit; its exit status, or -1 (still running
  // after `timeout_ms`), or 128 + signal.
  int wait_exit(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const {
    auto bytes = read_file(log_path_);
    return std::string(bytes.begin(), bytes.end());
  }
  const std::string& stdout_text() const { return stdout_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  std::string log_path_;
  std::string stdout_;
};

// Copies the GGUF at `src` to `dst`, letting `override_key` replace the
// value of a key (return true when it wrote the key itself) and `extra` add
// keys at the end.
inline void copy_gguf(const std::string& src, const std::string& dst,
                      const std::function<bool(gguf::Writer&, const std::string& key)>& override_key,
                      const std::function<void(gguf::Writer&)>& extra = {}) {
  gguf::File f = gguf::File::open(src);
  gguf::Writer w;
  for (const auto& [key, value] : f.metadata()) {
    if (key == "general.alignment") continue;
    if (override_key && override_key(w, key)) continue;
    w.add_value(key, value);
  }
  if (extra) extra(w);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
  w.write(dst);
}

}  // namespace flatline::test
