#include "server/server.h"

#include <sys/socket.h>

#include <thread>

#include "server/access_policy.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

struct Server::Impl {
  ServerContext ctx;
  std::unique_ptr<HttpTransport> http;
  std::unique_ptr<Router> router;
  int port = -1;
  std::thread thread;
};

namespace {

bool is_openai_path(const std::string& path) { return path.rfind("/v1/", 0) == 0; }

void write_error_for(const std::string& path, httplib::Response& res, int status, const std::string& message) {
  if (is_anthropic_path(path)) write_anthropic_error(res, status, message);
  else if (is_openai_path(path)) write_openai_error(res, status, message);
  else write_ollama_error(res, status, message);
}

// When the current request started (headers parsed), for the duration metric.
thread_local int64_t tls_request_start_ns = 0;

void install_error_handlers(httplib::Server& http, size_t max_body) {
  // Called for every response with status >= 400; fills in a body only where
  // the route did not write one (unknown route, oversized or unreadable body).
  httplib::Server::HandlerWithResponse handler = [max_body](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    switch (res.status) {
      case 404:
        res.set_content("404 page not found", "text/plain");  // what Ollama's router says
        return httplib::Server::HandlerResponse::Handled;
      case 413: message = "request body too large (the limit is " + std::to_string(max_body >> 20) + " MiB)"; break;
      case 400: message = "bad request"; break;
      case 501: message = "not implemented"; break;
      default: message = "HTTP status " + std::to_string(res.status); break;
    }
    write_error_for(req.path, res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  };
  http.set_error_handler(handler);
  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string message = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      message += std::string(": ") + e.what();
    } catch (...) {
    }
    LOG_ERROR(req.method << " " << req.path << ": " << message);
    write_error_for(req.path, res, 500, message);
  });
}

// Host, Origin, API key and method checks, before any route runs. Returns
// Handled when the request was answered here.
httplib::Server::HandlerResponse check_access(ServerContext& ctx, const Router& router, bool loopback_bind,
                                              const httplib::Request& req, httplib::Response& res) {
  using R = httplib::Server::HandlerResponse;
  tls_request_start_ns = steady_now_ns();
  const AccessOptions& access = ctx.options.access;
  const std::string host = req.get_header_value("Host");
  if (loopback_bind && !host_allowed(host, access.allowed_hosts)) {
    LOG_WARN("refused " << req.method << " " << req.path << " from " << req.remote_addr << ": Host \"" << host
                        << "\" is not this machine (DNS rebinding?)");
    write_error_for(req.path, res, 403,
                    "host \"" + host_without_port(host) +
                        "\" is not allowed: this server only answers requests addressed to this machine "
                        "(flatline serve --allowed-hosts or FLATLINE_ALLOWED_HOSTS adds names)");
    return R::Handled;
  }
  const std::string origin = req.get_header_value("Origin");
  const bool cross_origin = !origin.empty() && !same_origin(origin, host);
  if (cross_origin) {
    if (!origin_allowed(origin, access.allowed_origins)) {
      LOG_WARN("refused " << req.method << " " << req.path << ": origin " << origin << " is not allowed");
      write_error_for(req.path, res, 403,
                      "origin " + origin + " is not allowed (set FLATLINE_ORIGINS or --allowed-origins to allow it)");
      return R::Handled;
    }
    add_cors_headers(res, origin, req.method == "OPTIONS");
  }
  if (req.method == "OPTIONS") {  // a preflight: browsers send no credentials with it
    res.status = 204;
    return R::Handled;
  }
  const bool open_route = req.path == "/health" || is_public_web_path(req.path);
  // Anthropic's clients send the key as x-api-key.
  const bool key_ok = bearer_matches(req.get_header_value("Authorization"), access.api_key) ||
                      (req.has_header("x-api-key") && api_key_matches(req.get_header_value("x-api-key"), access.api_key));
  if (!access.api_key.empty() && !open_route && !key_ok) {
    res.set_header("WWW-Authenticate", "Bearer");
    if (is_anthropic_path(req.path)) {
      write_anthropic_error(res, 401, "invalid x-api-key: send the API key as \"x-api-key: <key>\" or "
                                      "\"Authorization: Bearer <key>\"");
    } else if (is_openai_path(req.path)) {
      write_json(res,
                 json{{"error",
                       {{"message", "Incorrect API key provided: send it as \"Authorization: Bearer <key>\""},
                        {"type", "invalid_request_error"},
                        {"param", nullptr},
                        {"code", "invalid_api_key"}}}},
                 401);
    } else {
      write_ollama_error(res, 401, "unauthorized: this server needs an API key (\"Authorization: Bearer <key>\")");
    }
    return R::Handled;
  }
  if (const Router::Route* route = router.find(req.path)) {
    const std::string method = req.method == "HEAD" ? "GET" : req.method;
    if (std::find(route->methods.begin(), route->methods.end(), method) == route->methods.end()) {
      std::string allow;
      for (const std::string& m : route->methods) allow += (allow.empty() ? "" : ", ") + m;
      res.set_header("Allow", allow);
      res.status = 405;
      res.set_content("405 method not allowed", "text/plain");  // gin's text, as Ollama answers
      return R::Handled;
    }
  }
  return R::Unhandled;
}

std::string canned_error_body(const std::string& path, int status, const std::string& message) {
  httplib::Response res;
  write_error_for(path, res, status, message);
  return res.body;
}

}  // namespace

// ---------------------------------------------------------------------------
// Router

Router::Route& Router::entry(const std::string& pattern, const std::string& label) {
  for (Route& r : routes_)
    if (r.label == (label.empty() ? pattern : label)) return r;
  routes_.push_back(Route{std::regex(pattern), label.empty() ? pattern : label, {}});
  return routes_.back();
}

void Router::get(const std::string& pattern, httplib::Server::Handler handler, std::string label) {
  entry(pattern, label).methods.push_back("GET");
  http_.Get(pattern, std::move(handler));
}

void Router::del(const std::string& pattern, httplib::Server::Handler handler, std::string label) {
  entry(pattern, label).methods.push_back("DELETE");
  http_.Delete(pattern, std::move(handler));
}

void Router::post(const std::string& pattern, BodyHandler handler, std::string label) {
  entry(pattern, label).methods.push_back("POST");
  const uint64_t max_body = ctx_.options.max_body_bytes;
  // With a body: read it here, whatever the Content-Type (Ollama parses
  // JSON regardless of it; httplib would cap form-urlencoded bodies at 8 KiB).
  http_.Post(pattern, [handler, max_body](const httplib::Request& req, httplib::Response& res,
                                          const httplib::ContentReader& reader) {
    if (req.is_multipart_form_data()) {
      write_error_for(req.path, res, 400, "multipart/form-data bodies are not accepted: send the request as JSON");
      return;
    }
    std::string body;
    bool too_large = false;
    reader([&](const char* data, size_t n) {
      if (body.size() + n > max_body) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (too_large) {
      write_error_for(req.path, res, 413,
                      "request body too large (the limit is " + std::to_string(max_body >> 20) + " MiB, --max-body)");
      return;
    }
    HttpTransport::note_body_read();
    handler(req, body, res);
  });
  // Without a body (no Content-Length, not chunked).
  http_.Post(pattern, [handler](const httplib::Request& req, httplib::Response& res) { handler(req, req.body, res); });
}

const Router::Route* Router::find(const std::string& path) const {
  for (const Route& r : routes_)
    if (std::regex_match(path, r.pattern)) return &r;
  return nullptr;
}

// ---------------------------------------------------------------------------
// Server

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  ServerContext& ctx = impl_->ctx;
  ctx.options = std::move(options);
  const bool loopback = is_loopback_address(ctx.options.host);
  if (!loopback && ctx.options.access.api_key.empty() && !ctx.options.access.insecure_public)
    throw Error("refusing to listen on " + ctx.options.host +
                ", which other machines can reach, without an API key: set one with --api-key or FLATLINE_API_KEY "
                "(clients send it as \"Authorization: Bearer <key>\"), or pass --insecure-public to serve without one");
  if (!loopback)
    LOG_WARN("listening on " << ctx.options.host << ": other machines can reach this server"
                             << (ctx.options.access.api_key.empty() ? " and it has NO API key (--insecure-public)"
                                                                    : "; requests need the API key"));
  ctx.options.models.reserved_for_cache = ctx.options.cache.memory_limit;
  ctx.cache = std::make_unique<StateCache>(ctx.options.cache);
  ctx.models = std::make_unique<ModelManager>(ctx.options.models);
  ctx.chat = std::make_unique<ChatService>(*ctx.cache);
  ResponseStoreOptions stored;
  if (!ctx.options.cache.directory.empty()) stored.directory = ctx.options.cache.directory + "/responses";
  stored.max_responses = ctx.options.max_responses;
  ctx.responses = std::make_unique<ResponseStore>(stored);
  add_private_paths({ctx.options.models.models_dir, ctx.options.cache.directory});

  TransportLimits limits = ctx.options.transport;
  limits.workers = std::max(4, ctx.options.http_threads);
  limits.max_body_bytes = ctx.options.max_body_bytes;
  impl_->http = std::make_unique<HttpTransport>(limits);
  HttpTransport& http = *impl_->http;
  ctx.transport = &http;
  http.set_canned_body([](int status, const std::string& path, const std::string& message) {
    return canned_error_body(path, status, message);
  });
  // SO_REUSEADDR (restart while old connections linger) but not httplib's
  // default SO_REUSEPORT, which would let a second server share the port.
  http.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_default_headers({{"Server", std::string("flatline/") + FLATLINE_VERSION}});
  install_error_handlers(http, ctx.options.max_body_bytes);
  impl_->router = std::make_unique<Router>(http, ctx);
  Router& router = *impl_->router;
  register_ollama_routes(router, ctx);
  register_openai_routes(router, ctx);
  register_responses_routes(router, ctx);
  register_anthropic_routes(router, ctx);
  register_embed_routes(router, ctx);
  register_model_routes(router, ctx);
  register_ops_routes(router, ctx);
  register_stats_routes(router, ctx);
  register_web_routes(router);
  http.set_pre_routing_handler([&ctx, &router, loopback](const httplib::Request& req, httplib::Response& res) {
    return check_access(ctx, router, loopback, req, res);
  });
  http.set_logger([&ctx, &router](const httplib::Request& req, const httplib::Response& res) {
    const Router::Route* route = router.find(req.path);
    const double seconds = static_cast<double>(steady_now_ns() - tls_request_start_ns) * 1e-9;
    ctx.metrics.count_request(route ? route->label : "other", req.method, res.status, seconds);
  });

  const auto models = ctx.models->catalog().list();
  LOG_INFO("serving " << models.size() << " model" << (models.size() == 1 ? "" : "s") << " from "
                      << ctx.options.models.models_dir << "; memory budget " << format_bytes(ctx.models->budget_limit())
                      << " (" << ctx.models->budget_source() << "), of which "
                      << format_bytes(ctx.options.cache.memory_limit) << " for cached conversation states"
                      << (ctx.options.cache.directory.empty() ? "" : " (saved in " + ctx.options.cache.directory + ")"));
}

Server::~Server() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->http->shutdown();
}

int Server::bind() {
  if (impl_->port >= 0) return impl_->port;
  const ServerOptions& o = impl_->ctx.options;
  // Threads first: if the system refuses them, fail before anything listens.
  impl_->http->start_threads();
  if (o.port == 0) {
    impl_->port = impl_->http->bind_to_any_port(o.host.c_str());
  } else if (impl_->http->bind_to_port(o.host.c_str(), o.port)) {
    impl_->port = o.port;
  }
  if (impl_->port <= 0) {
    impl_->port = -1;
    throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                " (address in use, or not an address of this machine)");
  }
  return impl_->port;
}

void Server::run() {
  bind();
  impl_->http->listen_after_bind();
  impl_->http->shutdown();
}

void Server::start() {
  bind();
  impl_->thread = std::thread([this] { impl_->http->listen_after_bind(); });
  for (int i = 0; i < 10000 && !impl_->http->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::stop() {
  impl_->ctx.stopping = true;
  impl_->http->stop();  // closes the listening socket; run() then returns
  impl_->http->begin_shutdown();
}

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  std::string host = impl_->ctx.options.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(impl_->port);
}

ModelManager& Server::models() { return *impl_->ctx.models; }
StateCache& Server::cache() { return *impl_->ctx.cache; }

}  // namespace flatline::server
