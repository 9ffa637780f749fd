#include "server/request_options.h"
#include "server/tool_request.h"

#include <cmath>
#include <algorithm>
#include <cctype>

#include "runtime/diffusion.h"
#include "util/limits.h"
#include "util/log.h"

namespace flatline::server {

namespace {

enum class OptionType { Int, Float, Bool, String, StringArray };

struct KnownOption {
  const char* name;
  OptionType type;
};

// Every field of Ollama's api.Options / Runner (plus a few older ones that
// docs and clients still send). Only some change what flatline does.
const KnownOption kKnownOptions[] = {
    {"num_keep", OptionType::Int},          {"seed", OptionType::Int},
    {"num_predict", OptionType::Int},       {"top_k", OptionType::Int},
    {"top_p", OptionType::Float},           {"min_p", OptionType::Float},
    {"typical_p", OptionType::Float},       {"repeat_last_n", OptionType::Int},
    {"temperature", OptionType::Float},     {"repeat_penalty", OptionType::Float},
    {"presence_penalty", OptionType::Float}, {"frequency_penalty", OptionType::Float},
    {"stop", OptionType::StringArray},      {"num_ctx", OptionType::Int},
    {"num_batch", OptionType::Int},         {"num_gpu", OptionType::Int},
    {"main_gpu", OptionType::Int},          {"use_mmap", OptionType::Bool},
    {"num_thread", OptionType::Int},        {"draft_num_predict", OptionType::Int},
    {"penalize_newline", OptionType::Bool}, {"numa", OptionType::Bool},
    {"low_vram", OptionType::Bool},         {"f16_kv", OptionType::Bool},
    {"vocab_only", OptionType::Bool},       {"use_mlock", OptionType::Bool},
    {"logits_all", OptionType::Bool},       {"mirostat", OptionType::Int},
    {"mirostat_tau", OptionType::Float},    {"mirostat_eta", OptionType::Float},
    {"tfs_z", OptionType::Float},
    // flatline's own, for diffusion models (docs/API.md): the canvas length
    // is num_predict.
    {"diffusion_steps", OptionType::Int},   {"diffusion_block_length", OptionType::Int},
    {"diffusion_eps", OptionType::Float},   {"diffusion_algorithm", OptionType::String},
    {"diffusion_cache", OptionType::Int},   {"diffusion_canvas", OptionType::Bool},
    // For looped models (Ouro): the request's own loop count / exit policy.
    {"loops", OptionType::Float},           {"exit_threshold", OptionType::Float},
    {"exit_mode", OptionType::String},
};

const KnownOption* find_option(const std::string& key) {
  for (const auto& o : kKnownOptions)
    if (key == o.name) return &o;
  return nullptr;
}

[[noreturn]] void option_error(const std::string& key, const char* what) {
  throw HttpError(400, "option \"" + key + "\" must be " + what);
}

// Ollama truncates floats given for integer options (JSON numbers are float64 in Go).
int64_t as_int(const std::string& key, const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) option_error(key, "of type integer");
    return static_cast<int64_t>(d);
  }
  option_error(key, "of type integer");
}

float as_float(const std::string& key, const json& v) {
  if (!v.is_number()) option_error(key, "of type float32");
  return static_cast<float>(v.get<double>());
}

std::string option_name(const std::string& key) { return "option \"" + key + "\""; }

// limits:: checks with the server's status.
template <typename T>
T in_range(const std::string& name, T v, T lo, T hi) {
  try {
    limits::check_range(name, v, lo, hi);
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  return v;
}

// The diffusion_* keys, shared by the Ollama options and OpenAI's top-level
// fields. `name` is how errors call the key.
void apply_diffusion_key(const std::string& key, const json& value, const std::string& name, TurnOptions& turn) {
  DiffusionOptions& d = turn.diffusion;
  if (key == "diffusion_algorithm") {
    if (!value.is_string()) throw HttpError(400, name + " must be of type string");
    try {
      d.algorithm = parse_diffusion_algorithm(value.get<std::string>());
    } catch (const Error& e) {
      throw HttpError(400, name + ": " + e.what());
    }
  } else if (key == "diffusion_canvas") {
    if (!value.is_boolean()) throw HttpError(400, name + " must be of type boolean");
    turn.diffusion.canvas_events = value.get<bool>();
  } else if (key == "diffusion_eps") {
    d.eps = in_range<double>(name, as_float(key, value), 1e-6, 0.5);
  } else {
    const int64_t v = as_int(key, value);
    if (key == "diffusion_steps") d.steps = in_range<int64_t>(name, v, 0, limits::kMaxDiffusionSteps);
    else if (key == "diffusion_block_length") d.block_length = in_range<int64_t>(name, v, -1, limits::kMaxContext);
    else if (key == "diffusion_cache") d.cache_refresh = in_range<int64_t>(name, v, 0, limits::kMaxDiffusionSteps);
  }
}

bool is_loop_key(const std::string& key) { return key == "loops" || key == "exit_threshold" || key == "exit_mode"; }

// The looped-model keys; checked against the model in start_turn (only the
// model knows its loop count).
void apply_loop_key(const std::string& key, const json& value, const std::string& name, ParsedOptions& out) {
  if (key == "exit_mode") {
    if (!value.is_string()) throw HttpError(400, name + " must be of type string");
    out.exit_mode = value.get<std::string>();
    return;
  }
  if (!value.is_number()) throw HttpError(400, name + " must be of type float32");
  (key == "loops" ? out.loops : out.exit_threshold) = value.get<double>();
}

}  // namespace

bool is_known_option(const std::string& key) { return find_option(key) != nullptr; }

bool is_list_option(const std::string& key) {
  const KnownOption* o = find_option(key);
  return o && o->type == OptionType::StringArray;
}

json parameter_value(const std::string& key, const std::string& text) {
  const KnownOption* o = find_option(key);
  if (!o) throw Error("unknown parameter \"" + key + "\"");
  const std::string what = "PARAMETER " + key + ": \"" + text + "\" is not ";
  switch (o->type) {
    case OptionType::StringArray:
    case OptionType::String: return text;
    case OptionType::Bool:
      if (text == "true" || text == "false") return text == "true";
      throw Error(what + "true or false");
    case OptionType::Int: {
      size_t used = 0;
      int64_t v = 0;
      try {
        v = std::stoll(text, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != text.size()) throw Error(what + "an integer");
      return v;
    }
    case OptionType::Float: {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != text.size() || !std::isfinite(v)) throw Error(what + "a number");
      return v;
    }
  }
  throw Error(what + "valid");
}

void apply_loop_fields(const json& body, ParsedOptions& out) {
  if (!body.is_object()) return;
  for (const auto& [key, value] : body.items())
    if (is_loop_key(key) && !value.is_null()) apply_loop_key(key, value, key, out);
}

void apply_diffusion_fields(const json& body, TurnOptions& turn) {
  if (!body.is_object()) return;
  for (const auto& [key, value] : body.items())
    if (key.rfind("diffusion_", 0) == 0 && find_option(key) && !value.is_null()) apply_diffusion_key(key, value, key, turn);
}

int64_t checked_num_predict(const std::string& name, int64_t v) {
  if (v == -2) return -1;  // Ollama's "fill the context": flatline's -1 stops there too
  try {
    limits::check_count_or_unlimited(name, v, limits::kMaxPredict);
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  return v;
}

std::vector<std::string> checked_stop_strings(const std::string& name, std::vector<std::string> stops) {
  if (stops.size() > limits::kMaxStopStrings)
    throw HttpError(400, name + ": at most " + std::to_string(limits::kMaxStopStrings) + " stop strings are accepted (got " +
                             std::to_string(stops.size()) + ")");
  for (size_t i = 0; i < stops.size(); ++i)
    if (stops[i].size() > limits::kMaxStopBytes)
      throw HttpError(400, name + "[" + std::to_string(i) + "] is " + std::to_string(stops[i].size()) +
                               " bytes long; a stop string may have at most " + std::to_string(limits::kMaxStopBytes));
  return stops;
}

void check_sampling(const SamplerParams& s, const char* style) {
  const bool openai = std::string(style) == "openai";
  auto name = [&](const char* key) { return openai ? std::string(key) : option_name(key); };
  in_range<double>(name("temperature"), s.temperature, 0.0, limits::kMaxTemperature);
  in_range<double>(name("top_p"), s.top_p, 0.0, 1.0);
  in_range<double>(name("min_p"), s.min_p, 0.0, 1.0);
  in_range<double>(name("repeat_penalty"), s.repeat_penalty, limits::kMinRepeatPenalty, limits::kMaxRepeatPenalty);
  in_range<double>(name("presence_penalty"), s.presence_penalty, -limits::kMaxAbsPenalty, limits::kMaxAbsPenalty);
  in_range<double>(name("frequency_penalty"), s.frequency_penalty, -limits::kMaxAbsPenalty, limits::kMaxAbsPenalty);
}

TurnOptions ollama_default_options() {
  TurnOptions t;
  t.sampling.temperature = 0.8f;
  t.sampling.top_k = 40;
  t.sampling.top_p = 0.9f;
  t.sampling.min_p = 0.0f;
  t.sampling.repeat_penalty = 1.0f;
  t.sampling.repeat_last_n = 64;
  t.sampling.presence_penalty = 0.0f;
  t.sampling.frequency_penalty = 0.0f;
  t.sampling.seed = -1;
  t.num_predict = -1;
  return t;
}

void apply_options(const json& options, ParsedOptions& out) {
  if (!options.is_object())
    throw HttpError(400, std::string("json: cannot unmarshal ") + go_json_kind(options) +
                             " into Go struct field .options of type map[string]interface {}");
  SamplerParams& s = out.turn.sampling;
  for (const auto& [key, value] : options.items()) {
    const KnownOption* known = find_option(key);
    if (!known) {
      LOG_DEBUG("ignoring unknown option " << key);
      continue;
    }
    if (value.is_null()) continue;
    if (key.rfind("diffusion_", 0) == 0) {
      apply_diffusion_key(key, value, option_name(key), out.turn);
      continue;
    }
    if (is_loop_key(key)) {
      apply_loop_key(key, value, option_name(key), out);
      continue;
    }
    switch (known->type) {
      case OptionType::Int: {
        int64_t v = as_int(key, value);
        const std::string name = option_name(key);
        if (key == "seed") s.seed = v;
        else if (key == "num_predict") out.turn.num_predict = checked_num_predict(name, v);
        else if (key == "top_k") s.top_k = static_cast<int32_t>(in_range<int64_t>(name, v, 0, limits::kMaxTopK));
        else if (key == "repeat_last_n")
          s.repeat_last_n = static_cast<int32_t>(in_range<int64_t>(name, v, -1, limits::kMaxRepeatLastN));
        else if (key == "num_ctx") out.num_ctx = in_range<int64_t>(name, v, 1, limits::kMaxContext);
        break;
      }
      case OptionType::Float: {
        float v = as_float(key, value);
        if (key == "temperature") s.temperature = v;
        else if (key == "top_p") s.top_p = v;
        else if (key == "min_p") s.min_p = v;
        else if (key == "repeat_penalty") s.repeat_penalty = v;
        else if (key == "presence_penalty") s.presence_penalty = v;
        else if (key == "frequency_penalty") s.frequency_penalty = v;
        break;
      }
      case OptionType::Bool:
        if (!value.is_boolean()) option_error(key, "of type boolean");
        break;
      case OptionType::String:
        if (!value.is_string()) option_error(key, "of type string");
        break;
      case OptionType::StringArray: {
        if (!value.is_array()) option_error(key, "of type array");
        std::vector<std::string> stops;
        for (const auto& item : value) {
          if (!item.is_string()) option_error(key, "of an array of strings");
          if (!item.get<std::string>().empty()) stops.push_back(item.get<std::string>());
        }
        out.turn.stop = checked_stop_strings(option_name(key), std::move(stops));
        break;
      }
    }
  }
  check_sampling(s, "ollama");
}

int64_t parse_go_duration_ns(const std::string& text) {
  auto invalid = [&] { return HttpError(400, "time: invalid duration \"" + text + "\""); };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) throw invalid();
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    std::string number;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) number += s[i++];
    if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1) throw invalid();
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && !std::isdigit(static_cast<unsigned char>(s[u])) && s[u] != '.') ++u;
    std::string unit(s.substr(0, u));
    s.remove_prefix(u);
    if (unit.empty()) throw HttpError(400, "time: missing unit in duration \"" + text + "\"");
    long double scale;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else throw HttpError(400, "time: unknown unit \"" + unit + "\" in duration \"" + text + "\"");
    total += std::stold(number) * scale;
  }
  if (total > 9.2e18L) throw invalid();
  const int64_t ns = static_cast<int64_t>(total);
  return negative ? -ns : ns;
}

std::optional<KeepAlive> parse_keep_alive(const json* value) {
  if (!value || value->is_null()) return std::nullopt;
  KeepAlive k;
  if (value->is_number()) {
    double seconds = value->get<double>();
    if (seconds < 0) k.ns = KeepAlive::kForever;
    else k.ns = seconds * 1e9 > 9.2e18 ? KeepAlive::kForever : static_cast<int64_t>(seconds * 1e9);
    return k;
  }
  if (value->is_string()) {
    int64_t ns = parse_go_duration_ns(value->get<std::string>());
    k.ns = ns < 0 ? KeepAlive::kForever : ns;
    return k;
  }
  const char* go_type = value->is_boolean() ? "bool" : value->is_array() ? "[]interface {}" : "map[string]interface {}";
  throw HttpError(400, std::string("Unsupported type: '") + go_type + "'");
}

std::vector<ChatMessage> parse_ollama_messages(const json* messages) {
  std::vector<ChatMessage> out;
  if (!messages) return out;
  for (const auto& m : *messages) {
    if (!m.is_object())
      throw HttpError(400, std::string("json: cannot unmarshal ") + go_json_kind(m) +
                               " into Go struct field ChatRequest.messages of type api.Message");
    FieldReader f(m, "ChatRequest.messages");
    ChatMessage msg;
    msg.role = f.string("role").value_or("");
    msg.content = f.string("content").value_or("");
    if (const json* images = f.array("images"); images && !images->empty())
      throw HttpError(400, "flatline does not support images (message " + std::to_string(out.size()) + " has " +
                               std::to_string(images->size()) + ")");
    read_ollama_message_tools(m, msg, "messages[" + std::to_string(out.size()) + "]");
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace flatline::server
