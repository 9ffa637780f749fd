// Internal to the server: what route handlers share, and the generation
// path both APIs use (resolve model -> take a turn -> evaluate the prompt ->
// stream or collect the reply).
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "runtime/chat_service.h"
#include "runtime/grammar_constraint.h"
#include "runtime/model_manager.h"
#include "runtime/state_cache.h"
#include "server/http_transport.h"
#include "server/json_io.h"
#include "server/metrics.h"
#include "server/request_options.h"
#include "server/response_store.h"
#include "server/structured_output.h"
#include "server/server.h"
#include "server/tool_request.h"

namespace flatline::server {

// One finished generation, as GET /flatline/stats reports it (the chat
// page's per-turn figures).
struct TurnRecord {
  uint64_t sequence = 0;   // 1 for the first turn since the server started
  std::string model;       // as the client named it
  std::string finished_at; // RFC 3339
  std::string done_reason;
  int64_t prompt_tokens = 0, cached_tokens = 0, prompt_eval_count = 0, prompt_eval_ns = 0;
  int64_t eval_count = 0, eval_ns = 0;
  StateMemory state;       // the conversation's state after the reply
  uint64_t rss_bytes = 0;  // resident memory of the process right after the turn
};

// The last finished turn (any client's), numbered.
class TurnLog {
 public:
  void record(TurnRecord record);
  std::optional<TurnRecord> last() const;

 private:
  mutable std::mutex mutex_;
  uint64_t count_ = 0;
  std::optional<TurnRecord> last_;
};

struct ServerContext {
  ServerOptions options;
  std::atomic<bool> stopping{false};  // set by Server::stop(): generations end at the next token
  std::unique_ptr<StateCache> cache;
  std::unique_ptr<ModelManager> models;
  std::unique_ptr<ChatService> chat;
  std::unique_ptr<ResponseStore> responses;  // stored /v1/responses
  Metrics metrics;
  TurnLog turns;
  HttpTransport* transport = nullptr;

  // The request on this thread should stop: its client has gone or the
  // server is stopping.
  bool cancelled() const { return stopping || HttpTransport::client_gone(); }
};

// Route registration that knows every route's methods (for 405 and the
// metrics' route label) and reads POST bodies itself, whatever their
// Content-Type (cpp-httplib would cap form-urlencoded ones at 8 KiB).
using BodyHandler = std::function<void(const httplib::Request&, const std::string& body, httplib::Response&)>;

class Router {
 public:
  Router(httplib::Server& http, ServerContext& ctx) : http_(http), ctx_(ctx) {}
  // `pattern` is an httplib regex; `label` names it in metrics (default: the pattern).
  void get(const std::string& pattern, httplib::Server::Handler handler, std::string label = "");
  void post(const std::string& pattern, BodyHandler handler, std::string label = "");
  void del(const std::string& pattern, httplib::Server::Handler handler, std::string label = "");

  struct Route {
    std::regex pattern;
    std::string label;
    std::vector<std::string> methods;
  };
  // The route `path` belongs to, or nullptr.
  const Route* find(const std::string& path) const;

 private:
  Route& entry(const std::string& pattern, const std::string& label);
  httplib::Server& http_;
  ServerContext& ctx_;
  std::vector<Route> routes_;
};

int64_t steady_now_ns();

// Looks the model up; HttpError(400 "model is required" / 404 Ollama's
// not-found message) otherwise.
CatalogEntry resolve_model(ServerContext& ctx, const std::optional<std::string>& name);

// A generation request, whichever API it came from.
struct InferenceRequest {
  std::string model_name;  // as the client wrote it (echoed in responses)
  CatalogEntry entry;
  std::optional<KeepAlive> keep_alive;
  ParsedOptions options;
  bool chat = true;
  std::vector<ChatMessage> messages;  // chat
  std::optional<bool> truncate;       // chat: drop the oldest messages when over num_ctx (Ollama's "truncate")
  std::string prompt;                 // generate: the user text, or the whole prompt when raw
  std::string system;                 // generate
  bool raw = false;                   // generate
  std::vector<int32_t> context;       // generate: ids of an earlier reply's context
  OutputFormat format;                // format / response_format / grammar: the output's grammar
  ToolRequest tools;                  // chat: tools offered, tool_choice
  ThinkRequest think;                 // think / reasoning_effort
  // Ollama: think:true on a model whose template has no reasoning is a 400
  // ("does not support thinking"); OpenAI's reasoning_effort is a hint.
  bool refuse_unsupported_thinking = false;
};

// A request whose prompt is evaluated and whose model turn is held (until
// this is destroyed).
struct ActiveTurn {
  ~ActiveTurn();  // gives the engine back its own loop policy
  std::unique_ptr<ModelManager::Lease> lease;
  std::string model_name;
  PreparedTurn prepared;
  TurnOptions turn_options;
  int64_t start_ns = 0;  // when the request arrived
  int64_t load_ns = 0;   // queue wait + model load
  // The token mask of a constrained request (after `lease`: destroyed first).
  std::unique_ptr<GrammarConstraint> grammar;
  bool loop_policy_set = false;  // the request overrode a looped model's loop policy
  bool template_set = false;     // the alias's TEMPLATE is set on the engine
  // How the reply splits into reasoning, answer and tool calls.
  ReplySplitterOptions reply;
  bool keep_thinking = true;     // false (think:false): reasoning the model writes anyway is dropped
  bool parallel_calls = true;    // false: calls after the first are dropped
  // Log-probabilities of the generated tokens, as the generator makes them
  // (turn_options.logprob_log points here), and how many went out already.
  mutable std::vector<TokenLogprob> logprob_log;
  mutable size_t logprobs_sent = 0;
};

// `logprobs` (bool) and `top_logprobs` (0..20) as both APIs name them: the
// GenerateOptions::top_logprobs to use, -1 when none were asked for. Throws
// HttpError(400) for bad values.
int32_t parse_logprobs_request(const FieldReader& f);
// The log-probabilities recorded since the last call, as
// [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]
// (Ollama's Logprob and OpenAI's content entries have this one shape).
json take_logprobs(const ActiveTurn& turn);

// The reply parts a client is shown: reasoning dropped when the request
// turned it off, calls after the first when parallel calls are off
// (`calls_so_far`: how many were shown already).
ReplyParts visible_parts(const ActiveTurn& turn, ReplyParts parts, size_t calls_so_far);

// Looped models: flatline's own fields of a final response, `loops_used`
// (loops run for each token the request evaluated: the prompt_eval_count
// prompt tokens, then each generated token fed back, which is every one but
// a reply's last) and `loops_mean`. Nothing for other models.
void add_loop_stats(json& out, const TurnResult& r);

// Diffusion requests that asked for `diffusion_canvas` while streaming: after
// every refinement step `emit` gets {"canvas": text with ░ for masks,
// "step": s, "steps": n}; the route wraps it in its own chunk. A no-op for
// other models and requests.
void stream_canvas(ActiveTurn& turn, std::function<bool(json)> emit);

// Waits for the model turn and loads the model. HttpError: 503 busy, 500
// memory budget or unreadable model.
std::unique_ptr<ModelManager::Lease> acquire_model(ServerContext& ctx, const InferenceRequest& request);

// Takes the model turn, renders and evaluates the prompt. Errors become
// HttpError: 503 busy, 500 memory budget / unreadable model, 400 context
// overflow or bad context ids.
std::shared_ptr<ActiveTurn> start_turn(ServerContext& ctx, const InferenceRequest& request, int64_t start_ns);
// Generates the reply (stopping when the client goes away or the server
// stops), counts it in the metrics and checks that the model file did not
// change under the request (HttpError 500 if it did).
TurnResult finish_turn(ServerContext& ctx, ActiveTurn& turn, const TextCallback& on_text = {});

// Runs `fn`, turning exceptions into an error response written by `write_error(res, status, message)`.
using ErrorWriter = std::function<void(httplib::Response&, int, const std::string&)>;
void guarded(httplib::Response& res, const ErrorWriter& write_error, const std::function<void()>& fn);

void write_ollama_error(httplib::Response& res, int status, const std::string& message);
void write_openai_error(httplib::Response& res, int status, const std::string& message);
void write_json(httplib::Response& res, const json& body, int status = 200);

// Streams from the handler's thread: `produce` writes through the sink; the
// turn (and so the model) is held until the response is finished or the
// client is gone.
void stream_response(httplib::Response& res, const char* content_type, std::shared_ptr<ActiveTurn> turn,
                     std::function<void(ActiveTurn&, httplib::DataSink&)> produce);

void register_ollama_routes(Router& router, ServerContext& ctx);
void register_openai_routes(Router& router, ServerContext& ctx);
// /api/create, /api/copy, /api/delete, /api/pull (model_routes.cpp).
void register_model_routes(Router& router, ServerContext& ctx);
// An alias's defaults for this request (runtime/model_alias.h): its system
// prompt when the request has none, its MESSAGEs before the request's own.
// (Its parameters are applied where options are read; its template in
// start_turn.)
void apply_alias_prompt_defaults(InferenceRequest& request);
// POST /v1/responses, GET and DELETE /v1/responses/{id} (responses_routes.cpp).
void register_responses_routes(Router& router, ServerContext& ctx);
// POST /v1/messages, Anthropic's Messages API (anthropic_routes.cpp), whose
// errors are {"type": "error", "error": {"type", "message"}}.
void register_anthropic_routes(Router& router, ServerContext& ctx);
bool is_anthropic_path(const std::string& path);
void write_anthropic_error(httplib::Response& res, int status, const std::string& message);
// /api/embed, /api/embeddings, /v1/embeddings (embed_routes.cpp).
void register_embed_routes(Router& router, ServerContext& ctx);
// /api/show's "capabilities": Ollama's ["embedding"] for a file that
// declares <arch>.pooling_type, else ["completion", "embedding"] (flatline
// embeds with every generative model it runs).
json model_capabilities(const gguf::File& file);
// GET /health and GET /metrics.
void register_ops_routes(Router& router, ServerContext& ctx);
// GET /flatline/stats (stats_routes.cpp), and record_turn, which
// finish_turn calls to keep what it reports.
void register_stats_routes(Router& router, ServerContext& ctx);
void record_turn(ServerContext& ctx, ActiveTurn& turn, const TurnResult& result);
// The chat page: GET / for browsers (Accept: text/html) and its files under
// /ui/ (web_routes.cpp; the files come from web/, embedded at build time).
void serve_chat_page(const httplib::Request& req, httplib::Response& res);
void register_web_routes(Router& router);
// Paths served without an API key: the page and its files hold no data.
bool is_public_web_path(const std::string& path);

}  // namespace flatline::server
