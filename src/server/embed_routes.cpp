// Embeddings: Ollama's /api/embed and legacy /api/embeddings, OpenAI's
// /v1/embeddings. Each input is tokenized (BOS as the model adds it), fed
// into a fresh state of its own, and its output-normed hidden states pooled
// as the model declares (runtime/embedding.h), then L2-normalised as Ollama
// does; `dimensions` keeps the first entries and normalises again. Inputs
// run one after the other under one model turn, so memory stays at one state.
#include <bit>
#include <climits>
#include <cstring>

#include "runtime/embedding.h"
#include "server/routes.h"
#include "util/log.h"

namespace flatline::server {

namespace {

// One input: text to tokenize, or token ids as given (/v1 only).
struct EmbedInput {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

struct EmbedJob {
  std::string model_name;
  CatalogEntry entry;
  std::vector<EmbedInput> inputs;
  bool truncate = true;
  int64_t dimensions = 0;  // 0: all
  std::optional<KeepAlive> keep_alive;
  int64_t num_ctx = 0;
};

struct EmbedResult {
  std::vector<std::vector<float>> vectors;
  int64_t prompt_tokens = 0;
  int64_t load_ns = 0;
};

// `dimensions` when given: an integer from 1 to the embedding length (which
// is checked once the model is known).
int64_t read_dimensions(const FieldReader& f) {
  const json* d = f.raw("dimensions");
  if (!d) return 0;
  if (!d->is_number_integer())
    throw HttpError(400, std::string("dimensions must be a positive integer, found ") + go_json_kind(*d) + " " + d->dump());
  const int64_t v = d->is_number_unsigned() && d->get<uint64_t>() > INT64_MAX ? INT64_MAX : d->get<int64_t>();
  if (v < 1) throw HttpError(400, "dimensions must be at least 1, found " + std::to_string(v));
  return v;
}

std::vector<int32_t> token_ids(const json& array, const std::string& where) {
  std::vector<int32_t> ids;
  for (const json& id : array) {
    const bool fits = id.is_number_integer() && (id.is_number_unsigned() ? id.get<uint64_t>() <= INT32_MAX
                                                                         : id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX);
    if (!fits)
      throw HttpError(400, where + "[" + std::to_string(ids.size()) + "] is " + id.dump() +
                               ": token ids are integers from 0 to the vocabulary size - 1");
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  if (ids.empty()) throw HttpError(400, where + " is an empty list of token ids: there is nothing to embed");
  return ids;
}

EmbedInput text_input(const json& v, const std::string& where) {
  if (!v.is_string())
    throw HttpError(400, "invalid input type: " + where + " is " + go_json_kind(v) +
                             ", expected a string (or a list of strings)");
  EmbedInput in;
  in.text = v.get<std::string>();
  if (in.text.empty()) throw HttpError(400, where + " is an empty string: there is no text to embed");
  return in;
}

// Ollama's `input`: a string or a list of strings. Absent, "" and [] mean
// "load the model only" (Ollama answers them with no embeddings).
std::vector<EmbedInput> ollama_inputs(const json* input) {
  std::vector<EmbedInput> out;
  if (!input || (input->is_string() && input->get<std::string>().empty())) return out;
  if (input->is_string()) {
    out.push_back(text_input(*input, "input"));
  } else if (input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) out.push_back(text_input((*input)[i], "input[" + std::to_string(i) + "]"));
  } else {
    throw HttpError(400, std::string("invalid input type: input is ") + go_json_kind(*input) +
                             ", expected a string or a list of strings");
  }
  return out;
}

// OpenAI's `input`: a string, a list of strings, a list of token ids, or a
// list of lists of token ids. Nothing to embed is an error there.
std::vector<EmbedInput> openai_inputs(const json* input) {
  const char* expected = "expected a string, a list of strings, a list of token ids or a list of lists of token ids";
  if (!input) throw HttpError(400, std::string("input is required: ") + expected);
  std::vector<EmbedInput> out;
  if (input->is_string()) {
    out.push_back(text_input(*input, "input"));
    return out;
  }
  if (!input->is_array()) throw HttpError(400, std::string("invalid input type: input is ") + go_json_kind(*input) + ", " + expected);
  if (input->empty()) throw HttpError(400, "input is an empty list: there is nothing to embed");
  if ((*input)[0].is_number()) {
    EmbedInput in;
    in.ids = token_ids(*input, "input");
    in.is_ids = true;
    out.push_back(std::move(in));
    return out;
  }
  for (size_t i = 0; i < input->size(); ++i) {
    const json& item = (*input)[i];
    const std::string where = "input[" + std::to_string(i) + "]";
    if (item.is_array()) {
      EmbedInput in;
      in.ids = token_ids(item, where);
      in.is_ids = true;
      out.push_back(std::move(in));
    } else if (item.is_string()) {
      out.push_back(text_input(item, where));
    } else {
      throw HttpError(400, "invalid input type: " + where + " is " + go_json_kind(item) + ", " + expected);
    }
  }
  return out;
}

// The ids of one input, cut to `limit` tokens or refused when longer.
std::vector<int32_t> input_ids(Engine& engine, const EmbedInput& in, size_t index, int64_t limit, bool truncate) {
  std::vector<int32_t> ids = in.is_ids ? in.ids : engine.tokenize_prompt(in.text);
  const int64_t vocab = engine.loaded().info().n_vocab;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab)
      throw HttpError(400, "input " + std::to_string(index) + ": token id " + std::to_string(ids[i]) +
                               " is outside the model's vocabulary of " + std::to_string(vocab) + " tokens");
  if (ids.empty()) throw HttpError(400, "input " + std::to_string(index) + " has no tokens to embed");
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n > limit) {
    if (!truncate)
      throw HttpError(400, "the input length exceeds the context length: input " + std::to_string(index) + " is " +
                               std::to_string(n) + " tokens and the context holds " + std::to_string(limit) +
                               " (num_ctx); send \"truncate\": true to embed its first " + std::to_string(limit) +
                               " tokens, or a shorter input");
    ids.resize(static_cast<size_t>(limit));
  }
  return ids;
}

EmbedResult run_embeddings(ServerContext& ctx, const EmbedJob& job, bool normalise = true) {
  InferenceRequest ir;
  ir.model_name = job.model_name;
  ir.entry = job.entry;
  ir.keep_alive = job.keep_alive;
  ir.options.num_ctx = job.num_ctx;
  auto lease = acquire_model(ctx, ir);
  EmbedResult r;
  r.load_ns = lease->load_ns();
  if (ctx.stopping) throw HttpError(503, "the server is shutting down");
  Engine& engine = lease->engine();
  const int64_t n_embd = engine.loaded().info().n_embd;
  if (job.dimensions > n_embd)
    throw HttpError(400, "dimensions must be at most " + std::to_string(n_embd) + ", the embedding length of " +
                             job.model_name + ", found " + std::to_string(job.dimensions));
  Pooling pooling;
  try {
    pooling = pooling_of(engine.loaded().model());
  } catch (const Error& e) {
    throw HttpError(400, job.model_name + " cannot give embeddings: " + e.what());
  }
  for (size_t i = 0; i < job.inputs.size(); ++i) {
    if (ctx.cancelled()) throw HttpError(503, "the request was cancelled");
    std::vector<int32_t> ids = input_ids(engine, job.inputs[i], i, lease->n_ctx(), job.truncate);
    std::vector<float> v;
    try {
      v = pooled_hidden_state(engine, ids, pooling, lease->n_ctx());
      if (normalise) l2_normalise(v);
      if (job.dimensions > 0 && job.dimensions < n_embd) truncate_dimensions(v, job.dimensions);
    } catch (const ContextOverflowError& e) {
      throw HttpError(400, e.what());
    }
    r.prompt_tokens += static_cast<int64_t>(ids.size());
    r.vectors.push_back(std::move(v));
  }
  if (lease->file_changed())
    throw HttpError(500, "the file of model " + job.model_name +
                             " changed on disk while this request was using it, so the embeddings were discarded");
  LOG_DEBUG(job.model_name << ": " << job.inputs.size() << " embeddings (" << pooling_name(pooling) << " pooling, "
                           << r.prompt_tokens << " tokens)");
  return r;
}

EmbedJob common_job(ServerContext& ctx, const FieldReader& f) {
  EmbedJob job;
  auto model = f.string("model");
  job.entry = resolve_model(ctx, model);
  job.model_name = *model;
  job.keep_alive = parse_keep_alive(f.raw("keep_alive"));
  if (const json* o = f.raw("options")) {
    ParsedOptions parsed;
    apply_options(*o, parsed);
    job.num_ctx = parsed.num_ctx;
  }
  return job;
}

json float_array(const std::vector<float>& v) {
  json out = json::array();
  for (float x : v) out.push_back(x);
  return out;
}

void handle_embed(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  const int64_t start = steady_now_ns();
  json body = parse_body(request_body, "EmbedRequest");
  FieldReader f(body, "EmbedRequest");
  std::vector<EmbedInput> inputs = ollama_inputs(f.raw("input"));
  const bool truncate = f.boolean("truncate").value_or(true);
  const int64_t dimensions = read_dimensions(f);
  EmbedJob job = common_job(ctx, f);
  job.inputs = std::move(inputs);
  job.truncate = truncate;
  job.dimensions = dimensions;
  EmbedResult r = run_embeddings(ctx, job);
  json embeddings = json::array();
  for (const auto& v : r.vectors) embeddings.push_back(float_array(v));
  write_json(res, json{{"model", job.model_name},
                       {"embeddings", std::move(embeddings)},
                       {"total_duration", steady_now_ns() - start},
                       {"load_duration", r.load_ns},
                       {"prompt_eval_count", r.prompt_tokens}});
}

// The legacy endpoint: one `prompt`, one `embedding` (normalised, as
// Ollama's current runner returns it); "" loads the model only.
void handle_embeddings(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "EmbeddingRequest");
  FieldReader f(body, "EmbeddingRequest");
  const std::string prompt = f.string("prompt").value_or("");
  EmbedJob job = common_job(ctx, f);
  if (!prompt.empty()) job.inputs.push_back(EmbedInput{prompt, {}, false});
  EmbedResult r = run_embeddings(ctx, job);
  write_json(res, json{{"embedding", r.vectors.empty() ? json::array() : float_array(r.vectors[0])}});
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The vector's float32 values, little-endian, in standard base64 (what the
// OpenAI SDKs decode for encoding_format "base64").
std::string float32_base64(const std::vector<float>& v) {
  std::string bytes(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u = std::bit_cast<uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t a = static_cast<unsigned char>(bytes[i]);
    const uint32_t b = i + 1 < bytes.size() ? static_cast<unsigned char>(bytes[i + 1]) : 0;
    const uint32_t c = i + 2 < bytes.size() ? static_cast<unsigned char>(bytes[i + 2]) : 0;
    const uint32_t w = (a << 16) | (b << 8) | c;
    out += kBase64[(w >> 18) & 63];
    out += kBase64[(w >> 12) & 63];
    out += i + 1 < bytes.size() ? kBase64[(w >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kBase64[w & 63] : '=';
  }
  return out;
}

void handle_openai_embeddings(ServerContext& ctx, const std::string& request_body, httplib::Response& res) {
  json body = parse_body(request_body, "EmbedRequest");
  FieldReader f(body, "EmbedRequest");
  const std::string format = f.string("encoding_format").value_or("float");
  if (format != "float" && format != "base64")
    throw HttpError(400, "Invalid value for 'encoding_format' = " + format + ". Supported values: ['float', 'base64'].");
  std::vector<EmbedInput> inputs = openai_inputs(f.raw("input"));
  const int64_t dimensions = read_dimensions(f);
  EmbedJob job = common_job(ctx, f);
  job.inputs = std::move(inputs);
  job.dimensions = dimensions;
  EmbedResult r = run_embeddings(ctx, job);
  json data = json::array();
  for (size_t i = 0; i < r.vectors.size(); ++i)
    data.push_back(json{{"object", "embedding"},
                        {"embedding", format == "base64" ? json(float32_base64(r.vectors[i])) : float_array(r.vectors[i])},
                        {"index", i}});
  write_json(res, json{{"object", "list"},
                       {"data", std::move(data)},
                       {"model", job.model_name},
                       {"usage", {{"prompt_tokens", r.prompt_tokens}, {"total_tokens", r.prompt_tokens}}}});
}

}  // namespace

json model_capabilities(const gguf::File& file) {
  if (declares_pooling(file)) return json::array({"embedding"});
  return json::array({"completion", "embedding"});
}

void register_embed_routes(Router& router, ServerContext& ctx) {
  using Handler = void (*)(ServerContext&, const std::string&, httplib::Response&);
  auto route = [&ctx](Handler fn, ErrorWriter writer) {
    return [&ctx, fn, writer](const httplib::Request&, const std::string& body, httplib::Response& res) {
      guarded(res, writer, [&] { fn(ctx, body, res); });
    };
  };
  router.post("/api/embed", route(handle_embed, write_ollama_error));
  router.post("/api/embeddings", route(handle_embeddings, write_ollama_error));
  router.post("/v1/embeddings", route(handle_openai_embeddings, write_openai_error));
}

}  // namespace flatline::server
