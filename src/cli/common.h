// Pieces shared by the `flatline` subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/chat_service.h"
#include "runtime/engine.h"
#include "runtime/memory_budget.h"
#include "runtime/sampler.h"

namespace flatline::cli {

// Options every command that loads a model takes.
struct ModelOptions {
  std::string model_path;
  int threads = 0;           // 0: physical cores
  int64_t batch = 256;       // tokens per prompt-processing chunk
  int64_t ctx = 4096;        // context for transformers (recurrent models ignore it)
  std::string max_memory;    // "" = from the system
  std::string kv_type = "f16";
  // Looped models (Ouro): passed to the model as LoadOptions::family.
  std::string loops, exit_threshold, exit_mode, kv_share;

  void add_to(CLI::App& app, bool model_required = true);
  // The family options that were given (keys as models/ouro.h names them).
  std::map<std::string, std::string> family_options() const;
  std::unique_ptr<LoadedModel> load(MemoryBudget& budget) const;
  MemoryBudget budget() const;
};

struct SamplingOptions {
  SamplerParams params;
  std::vector<std::string> stop;
  int64_t num_predict = -1;
  void add_to(CLI::App& app, int64_t default_predict);
};

// Range checks for numeric options (bounds from util/limits.h). A value
// outside gets CLI11's error, e.g. "--threads: must be between 0 and 256
// (got 100000)"; NaN and infinities are refused too.
CLI::Option* bounded(CLI::Option* option, int64_t lo, int64_t hi);
CLI::Option* bounded_real(CLI::Option* option, double lo, double hi);
// -1 (no limit) or 0..hi.
CLI::Option* count_or_unlimited(CLI::Option* option, int64_t hi);

// The bundled demo model: $FLATLINE_MODEL, else models/flatline-demo-kjv.gguf
// next to the binary's source tree or install prefix. "" if none exists.
std::string default_model_path();
// The models directory `serve` and `create` use without --models:
// $FLATLINE_MODELS, else the bundled demo model's folder (so a fresh
// checkout serves it with no setup), else ./models.
std::string default_models_dir();

// "f16" | "q8_0" | "f32" -> the KV cache type. Throws Error.
DType parse_kv_type(const std::string& text);
// "refuse" | "drop-oldest". Throws Error.
ContextPolicy parse_context_policy(const std::string& text);

// Parses "1,2,3" into ids. Throws Error.
std::vector<int32_t> parse_token_list(const std::string& text);

int run_command(CLI::App& app, int argc, char** argv);

// Subcommand registration; each returns the callback run after parsing.
void register_run(CLI::App& app);
void register_info(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_logits(CLI::App& app);
void register_bench(CLI::App& app);
void register_serve(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_quantize(CLI::App& app);
void register_synth(CLI::App& app);
void register_convert(CLI::App& app);
void register_create(CLI::App& app);

}  // namespace flatline::cli
