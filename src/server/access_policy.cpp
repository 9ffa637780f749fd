#include "server/access_policy.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace flatline::server {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// gin-contrib/cors wildcard rule: one '*' standing for any text.
bool wildcard_match(std::string_view pattern, std::string_view text) {
  const size_t star = pattern.find('*');
  if (star == std::string_view::npos) return pattern == text;
  const std::string_view prefix = pattern.substr(0, star), suffix = pattern.substr(star + 1);
  return text.size() >= prefix.size() + suffix.size() && starts_with(text, prefix) && ends_with(text, suffix);
}

std::string machine_hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return lower(buf);
}

}  // namespace

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = comma + 1;
  }
  return out;
}

bool is_loopback_address(const std::string& host) {
  const std::string h = lower(host);
  if (h == "localhost" || h == "::1" || h == "[::1]") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

std::string host_without_port(std::string_view host_header) {
  std::string_view h = host_header;
  if (starts_with(h, "[")) {
    const size_t close = h.find(']');
    return lower(close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1));
  }
  const size_t colon = h.find(':');
  if (colon != std::string_view::npos && h.find(':', colon + 1) == std::string_view::npos) h = h.substr(0, colon);
  return lower(h);
}

bool host_allowed(std::string_view host_header, const std::vector<std::string>& extra_hosts) {
  const std::string host = host_without_port(host_header);
  if (host.empty() || host == "localhost") return true;
  // A browser only sends an IP literal when it was pointed at that address:
  // DNS rebinding needs a name.
  if (is_ip_literal(host)) return true;
  for (const char* tld : {".localhost", ".local", ".internal"})
    if (ends_with(host, tld)) return true;
  static const std::string hostname = machine_hostname();
  if (!hostname.empty() && host == hostname) return true;
  for (const std::string& extra : extra_hosts)
    if (extra == "*" || lower(extra) == host) return true;
  return false;
}

bool origin_allowed(std::string_view origin_in, const std::vector<std::string>& extra_origins) {
  const std::string origin = lower(origin_in);
  for (const char* scheme : {"http://", "https://"}) {
    for (const char* local : {"localhost", "127.0.0.1", "0.0.0.0", "[::1]"}) {
      const std::string base = std::string(scheme) + local;
      if (origin == base) return true;
      if (starts_with(origin, base + ":") && all_digits(std::string_view(origin).substr(base.size() + 1))) return true;
    }
  }
  for (const char* scheme : {"app://", "file://", "tauri://", "vscode-webview://", "vscode-file://",
                             "chrome-extension://", "moz-extension://", "safari-web-extension://"})
    if (starts_with(origin, scheme)) return true;
  for (const std::string& extra : extra_origins)
    if (extra == "*" || wildcard_match(lower(extra), origin)) return true;
  return false;
}

bool same_origin(std::string_view origin, std::string_view host_header) {
  if (host_header.empty()) return false;
  const std::string o = lower(origin), h = lower(host_header);
  return o == "http://" + h || o == "https://" + h;
}

bool bearer_matches(std::string_view authorization, const std::string& key) {
  if (key.empty()) return true;
  if (authorization.size() < 7 || lower(authorization.substr(0, 7)) != "bearer ") return false;
  return api_key_matches(authorization.substr(7), key);
}

bool api_key_matches(std::string_view given, const std::string& key) {
  if (key.empty()) return true;
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  // Compare every byte whatever the first mismatch, so the time taken does
  // not tell how much of a guess was right.
  unsigned diff = given.size() == key.size() ? 0u : 1u;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(key[i]) ^ static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

void add_cors_headers(httplib::Response& res, const std::string& origin, bool preflight) {
  res.set_header("Access-Control-Allow-Origin", origin);
  res.set_header("Vary", "Origin");
  if (!preflight) return;
  res.headers.emplace("Vary", "Access-Control-Request-Method");
  res.headers.emplace("Vary", "Access-Control-Request-Headers");
  res.set_header("Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS");
  // Ollama's list (its OpenAI client headers included), in Go's canonical form.
  res.set_header("Access-Control-Allow-Headers",
                 "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,"
                 "X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,"
                 "X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,"
                 "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout,"
                 // Anthropic's clients.
                 "X-Api-Key,Anthropic-Version,Anthropic-Beta,Anthropic-Dangerous-Direct-Browser-Access");
  res.set_header("Access-Control-Max-Age", "43200");
}

}  // namespace flatline::server
