// The chat page: GET / for a browser (Accept: text/html) answers web/index.html,
// and GET /ui/<file> the page's scripts and styles, all embedded in the
// binary (web_assets.h). Clients without text/html keep Ollama's banner
// (ollama_routes.cpp). The page talks to the same /api routes every client
// uses, plus GET /flatline/stats for its figures.
#include <string_view>

#include "server/routes.h"
#include "server/web_assets.h"

namespace flatline::server {

namespace {

const WebAsset* find_asset(std::string_view name) {
  for (const WebAsset& a : web_assets())
    if (name == a.name) return &a;
  return nullptr;
}

// The page never needs inline script, another origin, a frame or a form
// post, so the browser is told to refuse them: model output that slipped
// past the page's own escaping still could not run.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void serve_asset(const httplib::Request& req, httplib::Response& res, const WebAsset& asset) {
  res.set_header("ETag", asset.etag);
  // Revalidated on every load (a cheap 304), so a new flatline never runs
  // with an old cached script.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  if (req.get_header_value("If-None-Match") == asset.etag) {
    res.status = 304;
    return;
  }
  res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
}

}  // namespace

void serve_chat_page(const httplib::Request& req, httplib::Response& res) {
  const WebAsset* page = find_asset("index.html");
  if (!page) {  // only if web/ lost its index.html: say so rather than serve nothing
    res.set_content("Ollama is running", "text/plain; charset=utf-8");
    return;
  }
  serve_asset(req, res, *page);
}

bool is_public_web_path(const std::string& path) { return path == "/" || path.rfind("/ui/", 0) == 0; }

void register_web_routes(Router& router) {
  router.get(
      R"(/ui/([A-Za-z0-9._-]+))",
      [](const httplib::Request& req, httplib::Response& res) {
        const WebAsset* asset = find_asset(req.matches[1].str());
        if (!asset) {
          res.status = 404;
          res.set_content("404 page not found", "text/plain");
          return;
        }
        serve_asset(req, res, *asset);
      },
      "/ui/*");
}

}  // namespace flatline::server
