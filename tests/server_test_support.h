// Helpers for the state-cache and server tests: a tiny random-weight RWKV-7
// GGUF written here (so the tests run without ../shared), a models directory,
// an in-process server on a free port, and small HTTP helpers.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "runtime/engine.h"
#include "server/server.h"
#include "test_support.h"

namespace flatline::test {

using json = nlohmann::json;

// Vocabulary of the random model: printable ASCII and "\n", one byte per
// token, so every generated text is valid UTF-8 and survives a JSON round
// trip unchanged, and token counts equal byte counts.
inline std::vector<std::string> random_model_vocab() {
  std::vector<std::string> v;
  for (int c = 32; c < 127; ++c) v.push_back(c == '\\' ? "\\\\" : std::string(1, static_cast<char>(c)));
  v.push_back("\\n");
  return v;
}

// A random-weight RWKV-7 in llama.cpp's GGUF layout: 64-wide, 2 layers, one
// 64-dim head. Different seeds give different fingerprints.
// `extra_strings`: more string metadata (e.g. a tokenizer.chat_template).
inline void write_random_rwkv7(const std::string& path, uint32_t seed, int n_layer = 2,
                               const std::vector<std::pair<std::string, std::string>>& extra_strings = {}) {
  const int64_t D = 64, F = 128, R = 8;
  const auto vocab = random_model_vocab();
  const int64_t V = static_cast<int64_t>(vocab.size());
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  gguf::Writer w;
  w.add_string("general.architecture", "rwkv7");
  w.add_string("general.name", "random-rwkv7-" + std::to_string(seed));
  w.add_uint32("rwkv7.context_length", 1048576);
  w.add_uint32("rwkv7.embedding_length", D);
  w.add_uint32("rwkv7.block_count", static_cast<uint32_t>(n_layer));
  w.add_float32("rwkv7.attention.layer_norm_epsilon", 1e-5f);
  w.add_uint32("rwkv7.wkv.head_size", 64);
  w.add_uint32("rwkv7.attention.decay_lora_rank", R);
  w.add_uint32("rwkv7.attention.iclr_lora_rank", R);
  w.add_uint32("rwkv7.attention.value_residual_mix_lora_rank", R);
  w.add_uint32("rwkv7.attention.gate_lora_rank", R);
  w.add_uint32("rwkv7.feed_forward_length", F);
  w.add_uint32("general.file_type", 0);
  w.add_string("tokenizer.ggml.model", "rwkv");
  w.add_string_array("tokenizer.ggml.tokens", vocab);
  w.add_int32_array("tokenizer.ggml.token_type", std::vector<int32_t>(vocab.size(), 1));
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  for (const auto& [key, value] : extra_strings) w.add_string(key, value);
  auto tensor = [&](const std::string& name, std::vector<int64_t> dims, float scale, float offset = 0.0f) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> data(static_cast<size_t>(n));
    for (auto& x : data) x = offset + scale * uni(rng);
    w.add_tensor(name, DType::F32, dims, data.data(), data.size() * sizeof(float));
  };
  tensor("token_embd.weight", {D, V}, 1.0f);
  tensor("token_embd_norm.weight", {D}, 0.1f, 1.0f);
  tensor("token_embd_norm.bias", {D}, 0.1f);
  for (int l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", {D}, 0.1f, 1.0f);
    tensor(p + "attn_norm.bias", {D}, 0.1f);
    tensor(p + "attn_norm_2.weight", {D}, 0.1f, 1.0f);
    tensor(p + "attn_norm_2.bias", {D}, 0.1f);
    tensor(p + "time_mix_w0.weight", {D}, 0.5f, -0.5f);
    tensor(p + "time_mix_w1.weight", {D, R}, 0.1f);
    tensor(p + "time_mix_w2.weight", {R, D}, 0.1f);
    tensor(p + "time_mix_a0.weight", {D}, 0.5f);
    tensor(p + "time_mix_a1.weight", {D, R}, 0.1f);
    tensor(p + "time_mix_a2.weight", {R, D}, 0.1f);
    tensor(p + "time_mix_v0.weight", {D}, 0.5f);
    tensor(p + "time_mix_v1.weight", {D, R}, 0.1f);
    tensor(p + "time_mix_v2.weight", {R, D}, 0.1f);
    tensor(p + "time_mix_g1.weight", {D, R}, 0.1f);
    tensor(p + "time_mix_g2.weight", {R, D}, 0.1f);
    tensor(p + "time_mix_lerp_fused.weight", {D, 1, 1, 6}, 0.5f, 0.5f);
    tensor(p + "time_mix_k_k.weight", {D}, 0.5f, 0.5f);
    tensor(p + "time_mix_k_a.weight", {D}, 0.5f, 0.5f);
    tensor(p + "time_mix_r_k.weight", {D}, 0.5f);
    tensor(p + "time_mix_key.weight", {D, D}, 0.2f);
    tensor(p + "time_mix_value.weight", {D, D}, 0.2f);
    tensor(p + "time_mix_receptance.weight", {D, D}, 0.2f);
    tensor(p + "time_mix_ln.weight", {D}, 0.1f, 1.0f);
    tensor(p + "time_mix_ln.bias", {D}, 0.1f);
    tensor(p + "time_mix_output.weight", {D, D}, 0.2f);
    tensor(p + "channel_mix_lerp_k.weight", {D, 1, 1}, 0.5f, 0.5f);
    tensor(p + "channel_mix_key.weight", {D, F}, 0.2f);
    tensor(p + "channel_mix_value.weight", {F, D}, 0.2f);
  }
  tensor("output_norm.weight", {D}, 0.1f, 1.0f);
  tensor("output_norm.bias", {D}, 0.1f);
  tensor("output.weight", {D, V}, 1.0f);
  w.write(path);
}

// A fresh directory under the test temp dir, removed at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& name) : path_(temp_path(name)) { std::filesystem::create_directories(path_); }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// models/ with "random.gguf" (seed 1), "random2.gguf" (seed 2) and, when
// ../shared is present, "tiny.gguf" (the trained RWKV-7 fixture).
inline bool make_models_dir(const std::string& dir) {
  write_random_rwkv7(dir + "/random.gguf", 1);
  write_random_rwkv7(dir + "/random2.gguf", 2);
  std::string tiny = shared_model("tiny-rwkv7-834K-f32.gguf");
  if (tiny.empty()) return false;
  std::filesystem::copy_file(tiny, dir + "/tiny.gguf");
  return true;
}

inline server::ServerOptions test_server_options(const std::string& models_dir) {
  server::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.models.models_dir = models_dir;
  o.models.threads = 1;
  o.models.max_memory = 512ull << 20;
  o.cache.memory_limit = 64ull << 20;
  o.http_threads = 8;
  return o;
}

// An in-process server on a free port.
class TestServer {
 public:
  explicit TestServer(server::ServerOptions options) : server_(std::make_unique<server::Server>(std::move(options))) {
    server_->start();
  }
  ~TestServer() { stop(); }
  void stop() {
    if (server_) server_->stop();
    server_.reset();
  }
  server::Server& get() { return *server_; }
  int port() const { return server_->port(); }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
    c->set_read_timeout(120, 0);
    c->set_write_timeout(120, 0);
    return c;
  }

 private:
  std::unique_ptr<server::Server> server_;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
  json js() const { return json::parse(body); }
};

inline HttpReply post(const TestServer& s, const std::string& path, const std::string& body) {
  auto c = s.client();
  auto r = c->Post(path.c_str(), body, "application/json");
  HttpReply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  return out;
}

inline HttpReply post(const TestServer& s, const std::string& path, const json& body) { return post(s, path, body.dump()); }

inline HttpReply get(const TestServer& s, const std::string& path) {
  auto c = s.client();
  auto r = c->Get(path.c_str());
  HttpReply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  return out;
}

// POSTs and hands the response body to `on_data` as it arrives; returning
// false from it closes the connection (a client that goes away).
inline int post_streaming(const TestServer& s, const std::string& path, const json& body,
                          const std::function<bool(const std::string&)>& on_data) {
  auto c = s.client();
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) { return on_data(std::string(data, n)); };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  c->send(req, res, err);
  return res.status;
}

// Splits NDJSON into parsed lines.
inline std::vector<json> ndjson_lines(const std::string& body) {
  std::vector<json> out;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    if (end > start) out.push_back(json::parse(body.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

// "data: ...\n\n" events of an SSE body, payloads only.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = body.find("data: ", start);
    if (at == std::string::npos) break;
    size_t end = body.find("\n\n", at);
    if (end == std::string::npos) break;
    out.push_back(body.substr(at + 6, end - at - 6));
    start = end + 2;
  }
  return out;
}

// One "event: T\ndata: {...}" block of a typed SSE stream (Responses, Anthropic Messages).
struct Event {
  std::string type;
  json data;
};

inline std::vector<Event> sse_typed_events(const std::string& body) {
  std::vector<Event> out;
  size_t start = 0;
  while (true) {
    const size_t at = body.find("event: ", start);
    if (at == std::string::npos) break;
    const size_t eol = body.find('\n', at);
    const size_t data = body.find("data: ", eol);
    const size_t end = body.find("\n\n", data);
    if (eol == std::string::npos || data != eol + 1 || end == std::string::npos) break;
    out.push_back({body.substr(at + 7, eol - at - 7), json::parse(body.substr(data + 6, end - data - 6))});
    start = end + 2;
  }
  return out;
}

// A model on one thread with small chunks, as the state-cache tests load it.
inline std::unique_ptr<LoadedModel> load(const std::string& path) {
  LoadOptions o;
  o.pool = std::make_shared<ThreadPool>(1);
  o.max_batch = 64;
  return LoadedModel::load(path, o);
}

// Greedy turn options generating n tokens.
inline TurnOptions greedy(int64_t n) {
  TurnOptions t;
  t.sampling.temperature = 0;
  t.num_predict = n;
  return t;
}

}  // namespace flatline::test
