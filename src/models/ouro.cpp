// Ouro as docs/GGUF-OURO.md describes it: a Llama-like stack with sandwich
// RMSNorms (post_attention_norm, post_ffw_norm), run ouro.num_loops times
// over the same weights, output_norm after every loop (the next loop starts
// from the normed state), a KV slot per (loop, layer), and the exit gate
// sigmoid(ouro.exit_gate.weight . h_t + ouro.exit_gate.bias) on the normed
// state. The loop policy (models/decoder.h LoopExit) comes from the load
// options.
#include "models/ouro.h"

#include <charconv>
#include <cmath>

#include "models/decoder.h"
#include "models/weights.h"
#include "util/error.h"

namespace flatline {

namespace {

double parse_number(const std::string& key, const std::string& text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v))
    throw Error("ouro: option " + key + " must be a number, found '" + text + "'");
  return v;
}

// The load options (flatline run/serve --loops, --exit-threshold,
// --exit-mode, --kv-share): the same rules as a request's overrides.
void apply_options(DecoderConfig& c, const LoadOptions& options) {
  std::optional<double> loops, threshold;
  std::optional<std::string> mode;
  for (const auto& [key, value] : options.family) {
    if (key == "loops") {
      loops = parse_number(key, value);
    } else if (key == "exit_threshold") {
      threshold = parse_number(key, value);
    } else if (key == "exit_mode") {
      mode = value;
    } else if (key == "kv_share") {
      if (value != "full" && value != "last") throw Error("ouro: kv_share must be full or last, found '" + value + "'");
      c.kv_share_last = value == "last";
    } else {
      throw Error("ouro: unknown option '" + key + "' (loops, exit_threshold, exit_mode, kv_share)");
    }
  }
  // The checkpoint's threshold picks the mode too (Skip below 1).
  if (!threshold && !mode) mode = c.exit.threshold < 1.0f ? "skip" : "select";
  try {
    c.exit = override_loop_exit(c.exit, c.n_loops, loops, threshold, mode);
  } catch (const Error& e) {
    throw Error(std::string("ouro: ") + e.what());
  }
}

}  // namespace

std::unique_ptr<Model> load_ouro(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  DecoderConfig c = read_transformer_config(*file, "ouro");
  c.ropes[0].style = RopeStyle::Norm;  // the converter permuted q/k into adjacent pairs
  c.post_norms = true;
  c.n_loops = checked_size_key(*file, "ouro.num_loops", 1);
  if (c.n_loops < 1 || c.n_loops > 64)
    throw Error(file->path() + ": ouro.num_loops must be between 1 and 64, found " + std::to_string(c.n_loops));
  if (file->get_bool("ouro.skip_loop_final_norm", false))
    throw Error(file->path() + ": ouro.skip_loop_final_norm = true is not supported (Ouro norms after every loop)");
  if (const gguf::Value* w = file->find("ouro.exit_gate.weight")) {
    if (!w->is_array() || w->array_size() != static_cast<uint64_t>(c.n_embd))
      throw Error(file->path() + ": ouro.exit_gate.weight must be an array of " + std::to_string(c.n_embd) +
                  " floats, found " + w->to_string());
    c.exit_gate_weight = w->float_array();
    c.exit_gate_bias = static_cast<float>(file->get_float("ouro.exit_gate.bias", 0.0));
  }
  c.exit.threshold = static_cast<float>(file->get_float("ouro.early_exit_threshold", 1.0));
  if (!(c.exit.threshold >= 0.0f && c.exit.threshold <= 1.0f))
    throw Error(file->path() + ": ouro.early_exit_threshold must be between 0 and 1");
  if (file->has("ouro.early_exit_step")) c.exit.fixed_loops = file->get_int("ouro.early_exit_step") + 1;
  apply_options(c, options);
  if ((c.exit.threshold < 1.0f && c.exit.fixed_loops == 0) && c.exit_gate_weight.empty())
    throw Error(file->path() + ": an exit threshold below 1 needs the exit gate (ouro.exit_gate.weight), which this file lacks");
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
