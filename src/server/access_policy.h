// Who may talk to the server: the checks that keep a web page the user
// happens to visit from using a server on their own machine, and the
// optional API key. Modelled on Ollama (server/routes.go allowedHosts,
// envconfig.AllowedOrigins, gin-contrib/cors); docs/SERVER.md "Security
// defaults" says where flatline differs.
//
// - Host: when the server listens on loopback only, a request whose Host
//   header names another machine is refused (403). That is what a
//   DNS-rebinding page produces: its own name, resolved to 127.0.0.1.
//   Allowed: no Host, IP literals, localhost and *.localhost, *.local,
//   *.internal, this machine's hostname, and the configured extra names.
// - Origin: a browser request from another origin is refused (403) unless
//   the origin is local (http(s)://localhost, 127.0.0.1, 0.0.0.0, [::1],
//   any port), an app / extension scheme, or configured; allowed ones get
//   CORS headers, and OPTIONS preflights are answered 204.
// - API key: when set, every route but /health and / needs
//   "Authorization: Bearer <key>" (401 otherwise).
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>
#include <vector>

namespace flatline::server {

struct AccessOptions {
  std::string api_key;                       // "" = no key
  bool insecure_public = false;              // allow a bind beyond loopback without a key
  std::vector<std::string> allowed_hosts;    // extra Host names for loopback binds ("*" = any)
  std::vector<std::string> allowed_origins;  // extra origins, each with at most one '*' ("*" alone = any)
};

// "127.0.0.1", "127.x.y.z", "::1", "localhost": the bind address reaches only this machine.
bool is_loopback_address(const std::string& host);

// The host part of a Host header ("[::1]:11434" -> "::1", "a.b:80" -> "a.b"), lower case.
std::string host_without_port(std::string_view host_header);

bool host_allowed(std::string_view host_header, const std::vector<std::string>& extra_hosts);

// Whether the browser origin may use the server (before same-origin is considered).
bool origin_allowed(std::string_view origin, const std::vector<std::string>& extra_origins);

// Origin "http://<Host>" or "https://<Host>": the page came from the server itself.
bool same_origin(std::string_view origin, std::string_view host_header);

// Constant-time check of "Bearer <key>" (scheme case-insensitive).
bool bearer_matches(std::string_view authorization, const std::string& key);
// `given` (surrounding spaces ignored) is `key`, compared in constant time;
// true when no key is set. Anthropic's x-api-key header.
bool api_key_matches(std::string_view given, const std::string& key);

// CORS response headers for an allowed cross-origin request; `preflight`
// adds the Allow-Methods / Allow-Headers / Max-Age ones.
void add_cors_headers(httplib::Response& res, const std::string& origin, bool preflight);

// Splits "a, b,c" into trimmed, non-empty items.
std::vector<std::string> split_list(std::string_view text);

}  // namespace flatline::server
