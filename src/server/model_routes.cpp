// Model management as Ollama's clients call it: /api/create, /api/copy,
// /api/delete, /api/pull (present models only) and the blob upload the
// Ollama CLI tries before a create (refused with what to do instead).
// docs/SERVER.md "Models from a Modelfile".
#include <filesystem>

#include "server/model_create.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

namespace {

namespace fs = std::filesystem;

// Ollama's progress lines, all at once: the work is done before the
// response starts, so a refusal still gets its own status code.
void write_status_lines(httplib::Response& res, const std::vector<std::string>& steps, bool stream) {
  if (!stream) {
    write_json(res, json{{"status", "success"}});
    return;
  }
  std::string body;
  for (const std::string& s : steps) body += dump(json{{"status", s}}) + "\n";
  body += dump(json{{"status", "success"}}) + "\n";
  res.status = 200;
  res.set_content(body, "application/x-ndjson");
}

std::string model_field(const FieldReader& f) {
  std::string name = f.string("model").value_or("");
  if (name.empty()) name = f.string("name").value_or("");
  if (name.empty()) throw HttpError(400, "model is required");
  return name;
}

void handle_create(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "CreateRequest");
  FieldReader f(body, "CreateRequest");
  const bool stream = f.boolean("stream").value_or(true);
  CreatePlan plan = plan_create(ctx.models->catalog(), body);
  carry_out(ctx.models->catalog(), plan);
  plan.steps.push_back("writing manifest");
  write_status_lines(res, plan.steps, stream);
}

void handle_copy(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "CopyRequest");
  FieldReader f(body, "CopyRequest");
  CreatePlan plan = plan_copy(ctx.models->catalog(), f.string("source").value_or(""), f.string("destination").value_or(""));
  carry_out(ctx.models->catalog(), plan);
  res.status = 200;  // Ollama answers a copy with an empty 200
}

// A model file the user put there: only with --allow-delete-files, and
// then the aliases created from it go too.
void delete_model_file(ServerContext& ctx, const CatalogEntry& entry) {
  const std::string file_name = fs::path(entry.path).filename().string();
  if (!ctx.options.allow_delete_files)
    throw HttpError(403, "\"" + entry.name + "\" is the model file " + file_name +
                             " in the models directory; flatline does not delete model files unless the server "
                             "runs with --allow-delete-files (or remove the file yourself)");
  ctx.models->unload(entry);
  for (const CatalogEntry& e : ctx.models->catalog().list())
    if (!e.manifest_path.empty() && e.path == entry.path) ctx.models->catalog().remove_alias(e.name);
  std::error_code ec;
  if (!fs::remove(entry.path, ec)) throw HttpError(500, "could not delete " + file_name + ": " + ec.message());
  LOG_INFO("models: deleted the file " << file_name << " (--allow-delete-files)");
}

void handle_delete(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "DeleteRequest");
  FieldReader f(body, "DeleteRequest");
  const std::string name = model_field(f);
  auto entry = ctx.models->catalog().find(name);
  if (!entry) throw HttpError(404, "model '" + name + "' not found");
  if (!entry->alias) {
    delete_model_file(ctx, *entry);
  } else {
    try {
      ctx.models->catalog().remove_alias(name);
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
    LOG_INFO("models: deleted the alias " << ModelCatalog::display_name(entry->name));
  }
  res.status = 200;
}

void handle_pull(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "PullRequest");
  FieldReader f(body, "PullRequest");
  const std::string name = model_field(f);
  const bool stream = f.boolean("stream").value_or(true);
  auto entry = ctx.models->catalog().find(name);
  if (!entry)
    throw HttpError(404, "flatline does not download models: \"" + name +
                             "\" is not in the models directory (put its .gguf file there, or create it from one "
                             "with /api/create)");
  const std::string digest = "sha256:" + entry->summary.digest;
  if (!stream) {
    write_json(res, json{{"status", "success"}});
    return;
  }
  std::string out = dump(json{{"status", "pulling manifest"}}) + "\n";
  out += dump(json{{"status", "pulling " + entry->summary.digest.substr(0, 12)},
                   {"digest", digest},
                   {"total", entry->size},
                   {"completed", entry->size}}) +
         "\n";
  for (const char* s : {"verifying sha256 digest", "writing manifest", "success"}) out += dump(json{{"status", s}}) + "\n";
  res.status = 200;
  res.set_content(out, "application/x-ndjson");
}

}  // namespace

void register_model_routes(Router& router, ServerContext& ctx) {
  using Handler = void (*)(ServerContext&, const std::string&, httplib::Response&);
  auto ollama = [&ctx](Handler fn) {
    return [&ctx, fn](const httplib::Request&, const std::string& body, httplib::Response& res) {
      guarded(res, write_ollama_error, [&] { fn(ctx, body, res); });
    };
  };
  router.post("/api/create", ollama(handle_create));
  router.post("/api/copy", ollama(handle_copy));
  router.post("/api/pull", ollama(handle_pull));
  router.del("/api/delete", [&ctx](const httplib::Request& req, httplib::Response& res) {
    guarded(res, write_ollama_error, [&] { handle_delete(ctx, req.body, res); });
  });
  // The Ollama CLI uploads a FROM file as a blob before it creates.
  router.post(R"(/api/blobs/[^/]+)", [](const httplib::Request&, const std::string&, httplib::Response& res) {
    write_ollama_error(res, 501,
                       "flatline does not store uploaded blobs: put the .gguf file into the models directory and "
                       "create the model with a Modelfile whose FROM names it (flatline create NAME -f Modelfile, or "
                       "/api/create with \"modelfile\" or \"from\")");
  }, "/api/blobs/:digest");
}

}  // namespace flatline::server
