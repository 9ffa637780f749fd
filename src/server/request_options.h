// The parts of Ollama requests that are not plain fields: the `options` map
// (typed like Ollama's api.Options, unknown keys ignored), `keep_alive`
// (seconds or a Go duration) and chat messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/chat_service.h"
#include "runtime/chat_template.h"
#include "runtime/model_manager.h"
#include "server/json_io.h"

namespace flatline::server {

// Ollama's DefaultOptions() for sampling: temperature 0.8, top_k 40,
// top_p 0.9, min_p 0, repeat_penalty 1.0, repeat_last_n 64, seed -1.
TurnOptions ollama_default_options();

struct ParsedOptions {
  TurnOptions turn;
  int64_t num_ctx = 0;  // 0: not given
  // Looped models (Ouro): the request's overrides of the loop policy
  // (options loops / exit_threshold / exit_mode), checked against the model
  // when it is known.
  std::optional<double> loops, exit_threshold;
  std::optional<std::string> exit_mode;
  bool overrides_loops() const { return loops || exit_threshold || exit_mode; }
};

// Applies an `options` object. Type errors give HttpError(400) with Ollama's
// wording (`option "temperature" must be of type float32`). Options flatline
// has no use for (num_thread, num_gpu, numa, typical_p, ...) are accepted
// and ignored; unknown keys are ignored with a debug log, as Ollama does.
void apply_options(const json& options, ParsedOptions& out);

// A Modelfile PARAMETER's text as the JSON value its option takes (number,
// boolean, string; for stop the string itself, which the caller collects
// into an array). Throws Error naming the parameter for an unknown one or a
// value of the wrong type ("PARAMETER top_k: \"x\" is not an integer").
json parameter_value(const std::string& key, const std::string& text);
// Whether `key` is an option of Ollama's (or flatline's own); list options
// (stop) take an array.
bool is_known_option(const std::string& key);
bool is_list_option(const std::string& key);

// OpenAI requests: loops / exit_threshold / exit_mode as top-level fields.
void apply_loop_fields(const json& body, ParsedOptions& out);

// OpenAI requests: the diffusion_* keys of the Ollama options, given as
// top-level fields (the openai SDKs' extra_body puts them there).
void apply_diffusion_fields(const json& body, TurnOptions& turn);

// Bounds (util/limits.h) with the server's status, HttpError(400) naming
// `name`: num_predict (-1 or 0..2^24; Ollama's -2 means -1), the stop
// strings (count and length), and the sampling parameters of an already
// filled SamplerParams (`style` "ollama" names them option "x", "openai" x).
int64_t checked_num_predict(const std::string& name, int64_t value);
std::vector<std::string> checked_stop_strings(const std::string& name, std::vector<std::string> stops);
void check_sampling(const SamplerParams& sampling, const char* style);

// keep_alive: a number of seconds, a Go duration string ("5m", "1h", "-1"),
// negative = forever. nullopt when absent or null. HttpError(400) otherwise.
std::optional<KeepAlive> parse_keep_alive(const json* value);

// Go's time.ParseDuration ("300ms", "1.5h", "2h45m", "-1s", "0"). Throws
// HttpError(400) with Go's wording.
int64_t parse_go_duration_ns(const std::string& text);

// messages[] of /api/chat. Images are refused (400); tool fields are ignored.
std::vector<ChatMessage> parse_ollama_messages(const json* messages);

}  // namespace flatline::server
