#include "server/server.h"

#include <sys/socket.h>

#include <thread>

#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

struct Server::Impl {
  ServerContext ctx;
  httplib::Server http;
  int port = -1;
  std::thread thread;
};

namespace {

bool is_openai_path(const std::string& path) { return path.rfind("/v1/", 0) == 0; }

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
    const int status = res.status;
    if (is_openai_path(req.path)) write_openai_error(res, status, message);
    else write_ollama_error(res, status, message);
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
    if (is_openai_path(req.path)) write_openai_error(res, 500, message);
    else write_ollama_error(res, 500, message);
  });
}

}  // namespace

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  ServerContext& ctx = impl_->ctx;
  ctx.options = std::move(options);
  ctx.options.models.reserved_for_cache = ctx.options.cache.memory_limit;
  ctx.cache = std::make_unique<StateCache>(ctx.options.cache);
  ctx.models = std::make_unique<ModelManager>(ctx.options.models);
  ctx.chat = std::make_unique<ChatService>(*ctx.cache);

  httplib::Server& http = impl_->http;
  const int threads = std::max(4, ctx.options.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(ctx.options.max_body_bytes);
  // SO_REUSEADDR (restart while old connections linger) but not httplib's
  // default SO_REUSEPORT, which would let a second server share the port.
  http.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // A queued request's client waits without data; generous timeouts keep
  // slow CPUs from cutting off long prompts.
  http.set_read_timeout(300, 0);
  http.set_write_timeout(300, 0);
  install_error_handlers(http, ctx.options.max_body_bytes);
  register_ollama_routes(http, ctx);
  register_openai_routes(http, ctx);

  const auto models = ctx.models->catalog().list();
  LOG_INFO("serving " << models.size() << " model" << (models.size() == 1 ? "" : "s") << " from "
                      << ctx.options.models.models_dir << "; memory budget " << format_bytes(ctx.models->budget_limit())
                      << ", of which " << format_bytes(ctx.options.cache.memory_limit) << " for cached conversation states"
                      << (ctx.options.cache.directory.empty() ? "" : " (saved in " + ctx.options.cache.directory + ")"));
}

Server::~Server() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::bind() {
  if (impl_->port >= 0) return impl_->port;
  const ServerOptions& o = impl_->ctx.options;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host.c_str());
  } else if (impl_->http.bind_to_port(o.host.c_str(), o.port)) {
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
  impl_->http.listen_after_bind();
}

void Server::start() {
  bind();
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  for (int i = 0; i < 10000 && !impl_->http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::stop() {
  impl_->ctx.stopping = true;
  if (impl_->http.is_running()) impl_->http.stop();
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
