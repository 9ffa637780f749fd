// Gemma 3 as llama.cpp reads it: input embeddings times sqrt(n_embd), norm
// weights used as stored (the converter already added Gemma's +1), per-head
// RMSNorm of q and k, RoPE of type NEOX, post-attention and post-FFN norms,
// GELU(tanh)-gated FFN, tied output. Layers alternate between a sliding
// window (RoPE base rope.freq_base_swa, default 10000, no scaling) and
// global attention (rope.freq_base with the file's linear scaling): with the
// default period 6, layer l uses the window iff l % 6 < 5.
#include "models/gemma3.h"

#include <cmath>
#include <string>

#include "models/decoder.h"
#include "models/weights.h"
#include "util/error.h"

namespace flatline {

namespace {

// Which layers use the sliding window: sliding_window_pattern is either a
// period p (layer l slides iff l % p < p - 1; 0 = every layer) or one bool
// per layer; llama.cpp's default period for gemma3 is 6.
std::vector<bool> sliding_layers(const gguf::File& file, int64_t n_layer) {
  const std::string key = "gemma3.attention.sliding_window_pattern";
  std::vector<bool> slides(static_cast<size_t>(n_layer));
  const gguf::Value* v = file.find(key);
  if (v && v->is_array()) {
    std::vector<int64_t> flags = per_layer_ints(file, key, n_layer);
    for (int64_t l = 0; l < n_layer; ++l) slides[l] = flags[l] != 0;
    return slides;
  }
  const int64_t period = v ? v->as_int() : 6;
  if (period < 0) throw Error(file.path() + ": " + key + " must not be negative, found " + std::to_string(period));
  for (int64_t l = 0; l < n_layer; ++l) slides[l] = period == 0 || l % period < period - 1;
  return slides;
}

}  // namespace

std::unique_ptr<Model> load_gemma3(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  DecoderConfig c = read_transformer_config(*file, "gemma3");
  const int64_t n_layer = static_cast<int64_t>(c.layers.size());
  c.ropes[0].style = RopeStyle::Neox;
  c.post_norms = true;
  c.embedding_scale = std::sqrt(static_cast<float>(c.n_embd));
  c.norm_eps = static_cast<float>(file->get_float("gemma3.attention.layer_norm_rms_epsilon", 1e-6));
  float scale = c.layers[0].attention.scale;
  if (scale == 0) {
    // llama.cpp: the 27B model (62 layers) scales by 1/sqrt(n_embd / n_head)
    // (query_pre_attn_scalar), every other size by 1/sqrt(head_dim).
    const double d = n_layer == 62 ? double(c.n_embd) / double(c.layers[0].attention.n_head)
                                   : double(c.layers[0].attention.head_dim_k);
    scale = static_cast<float>(1.0 / std::sqrt(d));
  }
  for (auto& l : c.layers) {
    l.attention.qk_norm = true;
    l.attention.scale = scale;
    l.activation = Activation::GeluTanh;
  }
  const int64_t window = checked_size_key(*file, "gemma3.attention.sliding_window", 0);
  if (window > 0) {
    const std::vector<bool> slides = sliding_layers(*file, n_layer);
    // Window layers: their own RoPE base (rope.freq_base_swa), no scaling.
    RopeSpec local = c.ropes[0];
    local.base = file->get_float("gemma3.rope.freq_base_swa", 10000.0);
    local.scale = 1.0;
    c.ropes.push_back(local);
    for (int64_t l = 0; l < n_layer; ++l) {
      if (!slides[l]) continue;
      c.layers[l].attention.window = window;
      c.layers[l].attention.rope = 1;
    }
  }
  return make_decoder(std::move(file), options, std::move(c));
}

}  // namespace flatline
