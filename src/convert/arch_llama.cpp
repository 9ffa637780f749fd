// LlamaForCausalLM -> "llama" and OuroForCausalLM -> "ouro", laid out as
// llama.cpp's converter writes them (conversion/llama.py LlamaModel, and the
// Ouro port of llama.cpp PR #29823, conversion/ouro.py): HF [out, in]
// matrices become ggml {in, out}; q/k rows are permuted for ggml's RoPE NORM
// (undo_permute); norms are F32. Ouro adds the sandwich norms, the loop
// count and, beyond llama.cpp, the exit gate as metadata (docs/GGUF-OURO.md).
#include <cmath>
#include <filesystem>
#include <numbers>

#include "convert/hf_model.h"
#include "convert/pre_tokenizer.h"
#include "tensor/kernels.h"
#include "tokenizer/hf_tokenizer.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

using nlohmann::json;
namespace st = safetensors;

struct LlamaHparams {
  int64_t hidden = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  std::optional<int64_t> n_head_kv_in_config;
  int64_t head_dim = 0;
  std::optional<int64_t> head_dim_in_config;
  int64_t ffn = 0;
  int64_t vocab = 0;
  std::optional<int64_t> context;
  std::optional<double> rope_theta;
  std::optional<double> rms_eps;
  bool tied = false;
  json rope;  // rope_parameters / rope_scaling object, or null
};

LlamaHparams read_hparams(const HfConfig& c) {
  LlamaHparams h;
  h.hidden = c.get_int("hidden_size");
  h.n_layer = c.get_int("num_hidden_layers");
  h.n_head = c.get_int("num_attention_heads");
  h.n_head_kv_in_config = c.find_int("num_key_value_heads");
  h.n_head_kv = h.n_head_kv_in_config.value_or(h.n_head);
  h.ffn = c.get_int("intermediate_size");
  h.vocab = c.get_int("vocab_size");
  h.head_dim_in_config = c.find_int("head_dim");
  if (h.hidden <= 0 || h.n_layer <= 0 || h.n_head <= 0 || h.n_head_kv <= 0 || h.ffn <= 0 || h.vocab <= 0)
    c.fail("hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size and "
           "vocab_size must be positive");
  if (!h.head_dim_in_config && h.hidden % h.n_head != 0)
    c.fail("hidden_size " + std::to_string(h.hidden) + " is not a multiple of num_attention_heads " +
           std::to_string(h.n_head) + " (and there is no head_dim)");
  h.head_dim = h.head_dim_in_config.value_or(h.hidden / h.n_head);
  if (h.head_dim <= 0 || h.head_dim % 2 != 0) c.fail("head_dim " + std::to_string(h.head_dim) + " must be even and > 0");
  if (h.n_head % h.n_head_kv != 0)
    c.fail("num_attention_heads " + std::to_string(h.n_head) + " is not a multiple of num_key_value_heads " +
           std::to_string(h.n_head_kv));
  h.context = c.find_first_int({"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length"});
  h.rms_eps = c.find_first_float({"rms_norm_eps", "norm_eps"});
  h.tied = c.get_bool("tie_word_embeddings", false);
  if (c.get_bool("attention_bias", false) || c.get_bool("mlp_bias", false))
    c.fail("attention_bias / mlp_bias checkpoints are not supported by flatline convert");
  const json& raw = c.raw();
  if (raw.contains("rope_parameters") && raw["rope_parameters"].is_object()) h.rope = raw["rope_parameters"];
  else if (raw.contains("rope_scaling") && raw["rope_scaling"].is_object()) h.rope = raw["rope_scaling"];
  h.rope_theta = c.find_float("rope_theta");
  if (h.rope.is_object() && h.rope.contains("rope_theta") && h.rope["rope_theta"].is_number())
    h.rope_theta = h.rope["rope_theta"].get<double>();
  return h;
}

std::string rope_type(const LlamaHparams& h) {
  if (!h.rope.is_object()) return "";
  for (const char* key : {"rope_type", "type"}) {
    if (h.rope.contains(key) && h.rope[key].is_string()) return h.rope[key].get<std::string>();
  }
  return "";
}

double rope_number(const LlamaHparams& h, const char* key, double fallback) {
  return h.rope.is_object() && h.rope.contains(key) && h.rope[key].is_number() ? h.rope[key].get<double>() : fallback;
}

// llama.cpp's LlamaModel.generate_extra_tensors for rope_type "llama3":
// per rotary frequency, 1 (high frequencies), `factor` (low) or a smooth
// blend. Computed in float32 as torch does there.
std::vector<float> llama3_rope_factors(const LlamaHparams& h) {
  const float base = static_cast<float>(h.rope_theta.value_or(10000.0));
  const float factor = static_cast<float>(rope_number(h, "factor", 8.0));
  const float low = static_cast<float>(rope_number(h, "low_freq_factor", 1.0));
  const float high = static_cast<float>(rope_number(h, "high_freq_factor", 4.0));
  const float old_ctx = static_cast<float>(rope_number(h, "original_max_position_embeddings", 8192));
  const float low_wavelen = old_ctx / low;
  const float high_wavelen = old_ctx / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < h.head_dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(h.head_dim));
    const float wavelen = 2.0f * static_cast<float>(std::numbers::pi) / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      factors.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return factors;
}

void check_rope(const LlamaHparams& h, const HfConfig& c) {
  const std::string type = rope_type(h);
  if (type.empty() || type == "default" || type == "linear" || type == "llama3" || type == "yarn") return;
  c.fail("rope scaling type '" + type + "' is not supported by flatline convert (supported: linear, llama3, yarn)");
}

// TextModel.set_gguf_parameters + LlamaModel.set_gguf_parameters.
void add_llama_keys(gguf::Writer& w, const std::string& a, const LlamaHparams& h) {
  w.add_uint32(a + ".block_count", static_cast<uint32_t>(h.n_layer));
  if (h.context) w.add_uint32(a + ".context_length", static_cast<uint32_t>(*h.context));
  w.add_uint32(a + ".embedding_length", static_cast<uint32_t>(h.hidden));
  w.add_uint32(a + ".feed_forward_length", static_cast<uint32_t>(h.ffn));
  w.add_uint32(a + ".attention.head_count", static_cast<uint32_t>(h.n_head));
  if (h.n_head_kv_in_config) w.add_uint32(a + ".attention.head_count_kv", static_cast<uint32_t>(h.n_head_kv));
  const std::string type = rope_type(h);
  if (type == "linear" && h.rope.contains("factor")) {
    w.add_string(a + ".rope.scaling.type", "linear");
    w.add_float32(a + ".rope.scaling.factor", static_cast<float>(rope_number(h, "factor", 1.0)));
  } else if (type == "yarn" && h.rope.contains("factor")) {
    w.add_string(a + ".rope.scaling.type", "yarn");
    w.add_float32(a + ".rope.scaling.factor", static_cast<float>(rope_number(h, "factor", 1.0)));
    w.add_uint32(a + ".rope.scaling.original_context_length",
                 static_cast<uint32_t>(rope_number(h, "original_max_position_embeddings", 0)));
    const struct {
      const char* hf;
      const char* gguf;
    } extras[] = {{"extrapolation_factor", ".rope.scaling.yarn_ext_factor"},
                  {"attention_factor", ".rope.scaling.yarn_attn_factor"},
                  {"beta_fast", ".rope.scaling.yarn_beta_fast"},
                  {"beta_slow", ".rope.scaling.yarn_beta_slow"}};
    for (const auto& e : extras) {
      if (h.rope.contains(e.hf) && h.rope[e.hf].is_number())
        w.add_float32(a + e.gguf, static_cast<float>(h.rope[e.hf].get<double>()));
    }
  }
  if (h.rope_theta) w.add_float32(a + ".rope.freq_base", static_cast<float>(*h.rope_theta));
  if (h.rms_eps) w.add_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(*h.rms_eps));
  if (h.head_dim_in_config) {
    w.add_uint32(a + ".attention.key_length", static_cast<uint32_t>(h.head_dim));
    w.add_uint32(a + ".attention.value_length", static_cast<uint32_t>(h.head_dim));
  }
  w.add_uint32(a + ".vocab_size", static_cast<uint32_t>(h.vocab));
  w.add_uint32(a + ".rope.dimension_count", static_cast<uint32_t>(h.head_dim));
}

// LlamaModel.set_vocab: tokenizer_config's add_prefix_space, then the
// vocabulary of tokenizer.json (byte-level BPE with llama.cpp's pre-tokenizer
// choice, or SentencePiece-style BPE); 49152-token vocabularies (SmolLM /
// Granite small, and Ouro) get add_bos_token = false.
std::function<void(gguf::Writer&)> llama_tokenizer(const HfModel& m, const LlamaHparams& h,
                                                   std::vector<std::string>& notes) {
  const std::string tokenizer_json = m.path("tokenizer.json");
  if (!std::filesystem::exists(tokenizer_json)) {
    throw Error(m.dir + ": no tokenizer.json (flatline convert reads the vocabulary from tokenizer.json; "
                        "tokenizer.model alone is not supported)");
  }
  HfTokenizerOptions options;
  options.vocab_size = h.vocab;
  options.model_config_path = m.config.path();
  const HfConfig tokenizer_config = HfConfig::load_optional(m.path("tokenizer_config.json"));
  if (tokenizer_config.has("add_prefix_space")) options.add_space_prefix = tokenizer_config.get_bool("add_prefix_space", false);
  if (h.vocab == 49152) options.add_bos = false;
  const HfConfig tokenizer = HfConfig::load(tokenizer_json);
  const json& model = tokenizer.raw().contains("model") ? tokenizer.raw()["model"] : json();
  const bool byte_fallback = model.is_object() && model.value("byte_fallback", false);
  if (!byte_fallback) {
    const PreTokenizerChoice pre = choose_pre_tokenizer(tokenizer_json, options);
    options.pre = pre.name;
    notes.push_back(pre.how);
  }
  return [tokenizer_json, options](gguf::Writer& w) { add_hf_tokenizer(w, tokenizer_json, options); };
}

struct LayerNames {
  std::string hf;    // "model.layers.3."
  std::string gguf;  // "blk.3."
};

// The llama tensors in llama.cpp's order; `post_norms` adds Ouro's.
void plan_llama_tensors(ArchPlan& plan, TensorSource& src, const LlamaHparams& h, bool ouro) {
  const int64_t H = h.hidden, V = h.vocab, hd = h.head_dim;
  const int64_t q_rows = h.n_head * hd, kv_rows = h.n_head_kv * hd;
  auto& out = plan.tensors;
  out.push_back(plan_copy("token_embd.weight", src.take("model.embed_tokens.weight", {V, H}, "vocab_size x hidden_size")));
  if (rope_type(h) == "llama3") {
    out.push_back(plan_values("rope_freqs.weight", {hd / 2}, llama3_rope_factors(h), "computed from rope_scaling (llama3)"));
  }
  out.push_back(plan_copy("output_norm.weight", src.take("model.norm.weight", {H}, "hidden_size")));
  if (const st::TensorInfo* head = src.take_optional("lm_head.weight", {V, H}, "vocab_size x hidden_size")) {
    out.push_back(plan_copy("output.weight", *head));
  } else if (!h.tied) {
    throw Error(src.checkpoint().description() +
                ": missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)");
  }
  const std::string ffn_why = "intermediate_size x hidden_size";
  for (int64_t i = 0; i < h.n_layer; ++i) {
    const LayerNames n{"model.layers." + std::to_string(i) + ".", "blk." + std::to_string(i) + "."};
    src.skip(n.hf + "self_attn.rotary_emb.inv_freq");
    out.push_back(plan_copy(n.gguf + "attn_norm.weight", src.take(n.hf + "input_layernorm.weight", {H})));
    const auto& q = src.take(n.hf + "self_attn.q_proj.weight", {q_rows, H}, "num_attention_heads x head_dim, hidden_size");
    const auto& k = src.take(n.hf + "self_attn.k_proj.weight", {kv_rows, H}, "num_key_value_heads x head_dim, hidden_size");
    const auto& v = src.take(n.hf + "self_attn.v_proj.weight", {kv_rows, H}, "num_key_value_heads x head_dim, hidden_size");
    const auto& o = src.take(n.hf + "self_attn.o_proj.weight", {H, q_rows}, "hidden_size, num_attention_heads x head_dim");
    const auto permute = [hd](int64_t r) { return rope_permuted_source_row(r, hd); };
    out.push_back(plan_row_map(n.gguf + "attn_q.weight", q, permute, "rows permuted for RoPE NORM"));
    out.push_back(plan_row_map(n.gguf + "attn_k.weight", k, permute, "rows permuted for RoPE NORM"));
    out.push_back(plan_copy(n.gguf + "attn_v.weight", v));
    out.push_back(plan_copy(n.gguf + "attn_output.weight", o));
    if (ouro) {
      out.push_back(plan_copy(n.gguf + "post_attention_norm.weight", src.take(n.hf + "input_layernorm_2.weight", {H})));
    }
    out.push_back(plan_copy(n.gguf + "ffn_norm.weight", src.take(n.hf + "post_attention_layernorm.weight", {H})));
    out.push_back(plan_copy(n.gguf + "ffn_gate.weight", src.take(n.hf + "mlp.gate_proj.weight", {h.ffn, H}, ffn_why)));
    out.push_back(plan_copy(n.gguf + "ffn_up.weight", src.take(n.hf + "mlp.up_proj.weight", {h.ffn, H}, ffn_why)));
    out.push_back(plan_copy(n.gguf + "ffn_down.weight",
                            src.take(n.hf + "mlp.down_proj.weight", {H, h.ffn}, "hidden_size x intermediate_size")));
    if (ouro) {
      out.push_back(
          plan_copy(n.gguf + "post_ffw_norm.weight", src.take(n.hf + "post_attention_layernorm_2.weight", {H})));
    }
  }
}

// The values of a small F32/F16/BF16 checkpoint tensor (the Ouro exit gate).
std::vector<float> read_floats(const st::TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  dequantize_row(source_dtype(t), t.data, v.data(), t.n_elements());
  return v;
}

}  // namespace

ArchPlan plan_llama(const HfModel& m, TensorSource& src) {
  const LlamaHparams h = read_hparams(m.config);
  check_rope(h, m.config);
  ArchPlan plan;
  plan.arch = "llama";
  plan.n_layer = h.n_layer;
  plan_llama_tensors(plan, src, h, false);
  plan.add_hparams = [h](gguf::Writer& w) { add_llama_keys(w, "llama", h); };
  plan.add_tokenizer = llama_tokenizer(m, h, plan.notes);
  return plan;
}

ArchPlan plan_ouro(const HfModel& m, TensorSource& src) {
  const HfConfig& c = m.config;
  const LlamaHparams h = read_hparams(c);
  check_rope(h, c);
  if (c.get_bool("use_sliding_window", false))
    c.fail("use_sliding_window is true; sliding-window Ouro checkpoints are not supported");
  if (c.has("layer_types")) {
    for (const json& t : c.raw()["layer_types"]) {
      if (t != "full_attention") c.fail("layer_types has '" + t.dump() + "'; only full_attention is supported");
    }
  }
  const int64_t loops = c.get_int("total_ut_steps", 4);
  if (loops < 1) c.fail("total_ut_steps must be >= 1, found " + std::to_string(loops));
  const double threshold = c.get_float("early_exit_threshold", 1.0);
  const std::optional<int64_t> exit_step = c.find_int("early_exit_step");

  ArchPlan plan;
  plan.arch = "ouro";
  plan.n_layer = h.n_layer;
  plan_llama_tensors(plan, src, h, true);
  const st::TensorInfo& gate_w = src.take("model.early_exit_gate.weight", {1, h.hidden}, "Linear(hidden_size, 1)");
  const st::TensorInfo& gate_b = src.take("model.early_exit_gate.bias", {1}, "Linear(hidden_size, 1)");
  const std::vector<float> gate_weight = read_floats(gate_w);
  const float gate_bias = read_floats(gate_b)[0];
  plan.notes.push_back("exit gate (" + gate_w.name + ", " + gate_b.name + ") stored as ouro.exit_gate.* metadata, "
                       "so llama.cpp's port (which counts tensors) still loads the file");
  plan.add_hparams = [h, loops, threshold, exit_step, gate_weight, gate_bias](gguf::Writer& w) {
    add_llama_keys(w, "ouro", h);
    w.add_uint32("ouro.num_loops", static_cast<uint32_t>(loops));
    w.add_bool("ouro.skip_loop_final_norm", false);
    w.add_float32("ouro.early_exit_threshold", static_cast<float>(threshold));
    if (exit_step) w.add_uint32("ouro.early_exit_step", static_cast<uint32_t>(*exit_step));
    w.add_float32_array("ouro.exit_gate.weight", gate_weight);
    w.add_float32("ouro.exit_gate.bias", gate_bias);
  };
  plan.add_tokenizer = llama_tokenizer(m, h, plan.notes);
  return plan;
}

}  // namespace flatline::convert
