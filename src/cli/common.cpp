#include "cli/common.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "models/model.h"
#include "util/error.h"
#include "util/limits.h"

namespace flatline::cli {

namespace {

// Runs a limits:: check on the option's text; "" when it passes.
template <typename T, typename Check>
CLI::Option* with_check(CLI::Option* option, const std::string& description, Check check) {
  option->check(CLI::Validator(
      [check](std::string& text) -> std::string {
        T value{};
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a number";
        try {
          check(value);
        } catch (const Error& e) {
          std::string message = e.what();
          const std::string prefix = "value ";
          return message.substr(message.rfind(prefix, 0) == 0 ? prefix.size() : 0);
        }
        return "";
      },
      description));
  return option;
}

}  // namespace

CLI::Option* bounded(CLI::Option* option, int64_t lo, int64_t hi) {
  return with_check<int64_t>(option, std::to_string(lo) + ".." + std::to_string(hi),
                             [lo, hi](int64_t v) { limits::check_range("value", v, lo, hi); });
}

CLI::Option* bounded_real(CLI::Option* option, double lo, double hi) {
  char desc[64];
  std::snprintf(desc, sizeof desc, "%g..%g", lo, hi);
  return with_check<double>(option, desc, [lo, hi](double v) { limits::check_range("value", v, lo, hi); });
}

CLI::Option* count_or_unlimited(CLI::Option* option, int64_t hi) {
  return with_check<int64_t>(option, "-1 or 0.." + std::to_string(hi),
                             [hi](int64_t v) { limits::check_count_or_unlimited("value", v, hi); });
}

void ModelOptions::add_to(CLI::App& app, bool model_required) {
  auto* opt = app.add_option("model", model_path, "GGUF model file");
  if (model_required) opt->required();
  bounded(app.add_option("-t,--threads", threads, "Threads (default: the physical performance cores this process may use, see info)"), 0, limits::kMaxThreads);
  bounded(app.add_option("-b,--batch", batch, "Tokens per prompt-processing chunk")->capture_default_str(), 1,
          limits::kMaxBatch);
  bounded(app.add_option("-c,--ctx", ctx, "Context size in tokens for transformer models")->capture_default_str(), 1,
          limits::kMaxContext);
  app.add_option("--max-memory", max_memory, "Memory budget, e.g. 6G (default: available memory minus 10%)");
  app.add_option("--kv-type", kv_type, "KV cache type for transformers: f16 or q8_0")->capture_default_str();
  app.add_option("--loops", loops, "Looped models (Ouro): run exactly N loops per token");
  app.add_option("--exit-threshold", exit_threshold,
                 "Looped models: exit a token at the first loop whose exit probability reaches q (1 = all loops; "
                 "default: the checkpoint's)");
  app.add_option("--exit-mode", exit_mode,
                 "Looped models: skip (loops after the exit are not computed; default when q < 1) or select "
                 "(all computed, the exit picks the output)");
  app.add_option("--kv-share", kv_share, "Looped models: full (KV per loop, default) or last (one KV per layer)");
}

std::map<std::string, std::string> ModelOptions::family_options() const {
  std::map<std::string, std::string> f;
  if (!loops.empty()) f["loops"] = loops;
  if (!exit_threshold.empty()) f["exit_threshold"] = exit_threshold;
  if (!exit_mode.empty()) f["exit_mode"] = exit_mode;
  if (!kv_share.empty()) f["kv_share"] = kv_share;
  return f;
}

MemoryBudget ModelOptions::budget() const {
  return MemoryBudget(max_memory.empty() ? 0 : parse_byte_size(max_memory, "--max-memory"));
}

std::unique_ptr<LoadedModel> ModelOptions::load(MemoryBudget& budget) const {
  LoadOptions opts;
  try {
    opts.pool = std::make_shared<ThreadPool>(threads);
  } catch (const std::system_error& e) {
    throw Error("cannot start " + std::to_string(threads) + " threads (" + e.what() + "); lower -t/--threads");
  }
  opts.max_batch = batch;
  opts.kv_type = parse_kv_type(kv_type);
  opts.family = family_options();
  return LoadedModel::load(model_path, opts, &budget, ctx);
}

void SamplingOptions::add_to(CLI::App& app, int64_t default_predict) {
  num_predict = default_predict;
  count_or_unlimited(
      app.add_option("-n,--num-predict", num_predict, "Tokens to generate (-1: until end of text)")->capture_default_str(),
      limits::kMaxPredict);
  bounded_real(app.add_option("--temp,--temperature", params.temperature, "Temperature (0: greedy)")->capture_default_str(),
          0.0, limits::kMaxTemperature);
  bounded(app.add_option("--top-k", params.top_k, "Top-k (0: off)")->capture_default_str(), 0, limits::kMaxTopK);
  bounded_real(app.add_option("--top-p", params.top_p, "Top-p (1: off)")->capture_default_str(), 0.0, 1.0);
  bounded_real(app.add_option("--min-p", params.min_p, "Min-p (0: off)")->capture_default_str(), 0.0, 1.0);
  bounded_real(app.add_option("--repeat-penalty", params.repeat_penalty, "Repeat penalty (1: off)")->capture_default_str(),
          limits::kMinRepeatPenalty, limits::kMaxRepeatPenalty);
  bounded(app.add_option("--repeat-last-n", params.repeat_last_n, "Penalty window in tokens (-1: all)")
              ->capture_default_str(),
          -1, limits::kMaxRepeatLastN);
  bounded_real(app.add_option("--presence-penalty", params.presence_penalty, "Presence penalty")->capture_default_str(),
          -limits::kMaxAbsPenalty, limits::kMaxAbsPenalty);
  bounded_real(app.add_option("--frequency-penalty", params.frequency_penalty, "Frequency penalty")->capture_default_str(),
          -limits::kMaxAbsPenalty, limits::kMaxAbsPenalty);
  app.add_option("--seed", params.seed, "Random seed (-1: random)")->capture_default_str();
  app.add_option("--stop", stop, "Stop string (repeatable, at most 64 of at most 1024 bytes)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return text.size() > limits::kMaxStopBytes
                       ? "a stop string may have at most " + std::to_string(limits::kMaxStopBytes) + " bytes (got " +
                             std::to_string(text.size()) + ")"
                       : "";
          },
          "at most 1024 bytes"));
}

std::string default_models_dir() {
  if (const char* env = std::getenv("FLATLINE_MODELS"); env && *env) return env;
  std::string bundled = default_model_path();
  if (!bundled.empty()) return std::filesystem::path(bundled).parent_path().string();
  return "models";
}

std::string default_model_path() {
  if (const char* env = std::getenv("FLATLINE_MODEL"); env && *env) return env;
  const std::string name = "models/flatline-demo-kjv.gguf";
  std::vector<std::filesystem::path> candidates;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / name);        // build/ next to models/
    candidates.push_back(exe.parent_path() / ".." / ".." / name);
    candidates.push_back(exe.parent_path() / ".." / "share" / "flatline" / name);
  }
  candidates.push_back(std::filesystem::path(FLATLINE_SOURCE_DIR) / name);
  for (const auto& c : candidates)
    if (std::filesystem::exists(c, ec)) return std::filesystem::weakly_canonical(c, ec).string();
  return "";
}

DType parse_kv_type(const std::string& text) {
  auto t = dtype_from_name(text);
  if (!t || (*t != DType::F16 && *t != DType::Q8_0 && *t != DType::F32))
    throw Error("--kv-type: '" + text + "' is not one of f16, q8_0, f32");
  return *t;
}

ContextPolicy parse_context_policy(const std::string& text) {
  if (text == "refuse") return ContextPolicy::Refuse;
  if (text == "drop-oldest") return ContextPolicy::DropOldest;
  throw Error("--context-overflow: '" + text + "' is not one of refuse, drop-oldest");
}

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      throw Error("--tokens: '" + item + "' is not a token id (expected e.g. 1,2,3)");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw Error("--tokens: no token ids given");
  return ids;
}

}  // namespace flatline::cli
