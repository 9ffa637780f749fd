// RWKV7ForCausalLM from the fla-hub checkpoints (flash-linear-attention's
// fla/models/rwkv7) -> "rwkv7", as llama.cpp's Rwkv7Model converts them
// (conversion/rwkv.py): the LoRA matrices w/a/v/g are used as stored (fla's
// nn.Linear [out, in] is already ggml's {in, out} of the transposed BlinkDL
// layout, so llama.cpp's lora_needs_transpose is false for fla names), the
// six token-shift mixes are stacked r, w, k, v, a, g into lerp_fused, and
// layer 0 (which has no value-residual LoRA) gets llama.cpp's dummy
// time_mix_v0/v1/v2: copies of a0/a1/a2.
#include <filesystem>

#include "convert/hf_model.h"
#include "convert/rwkv_vocab.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

namespace st = safetensors;

struct Rwkv7Hparams {
  int64_t hidden = 0;
  int64_t n_layer = 0;
  int64_t head_size = 0;
  int64_t ffn = 0;
  int64_t vocab = 0;
  double eps = 1e-5;
  int64_t rank_decay = 0, rank_iclr = 0, rank_value = 0, rank_gate = 0;
};

// A LoRA rank: config.json's value, else the checkpoint's (llama.cpp would
// use a formula here, which need not match fla's defaults).
int64_t lora_rank(const HfConfig& c, const TensorSource& src, const std::vector<std::string>& keys,
                  const std::string& first_matrix) {
  if (auto v = c.find_first_int(keys)) return *v;
  const st::TensorInfo* t = src.checkpoint().find(first_matrix);
  if (!t || t->shape.size() != 2) c.fail("missing '" + keys.front() + "' and no " + first_matrix + " to read it from");
  return t->shape[0];
}

Rwkv7Hparams read_hparams(const HfConfig& c, const TensorSource& src) {
  Rwkv7Hparams h;
  h.hidden = c.get_int("hidden_size");
  h.n_layer = c.get_int("num_hidden_layers");
  h.vocab = c.get_int("vocab_size");
  h.head_size = c.find_first_int({"head_size", "head_dim"}).value_or(64);
  h.eps = c.find_first_float({"layer_norm_epsilon", "norm_eps"}).value_or(1e-5);
  h.ffn = c.find_int("intermediate_size").value_or(4 * h.hidden);
  if (h.hidden <= 0 || h.n_layer <= 0 || h.vocab <= 0 || h.head_size <= 0 || h.hidden % h.head_size != 0)
    c.fail("hidden_size must be a positive multiple of head_dim " + std::to_string(h.head_size));
  if (c.has("attn")) c.fail("'attn' is set: hybrid RWKV-7 + attention checkpoints are not supported");
  if (!c.get_bool("norm_first", true)) c.fail("norm_first is false: the rwkv7 layout needs the layer-0 pre-norm");
  if (!c.get_bool("norm_bias", true)) c.fail("norm_bias is false: the rwkv7 layout needs layer-norm biases");
  if (c.get_bool("tie_word_embeddings", false)) c.fail("tie_word_embeddings is true: the rwkv7 layout needs lm_head");
  if (auto act = c.find_string("hidden_act"); act && *act != "sqrelu")
    c.fail("hidden_act '" + *act + "': the rwkv7 layout has a squared-ReLU channel mix");
  if (c.has("value_dim")) {
    const auto& v = c.raw()["value_dim"];
    for (const auto& d : v.is_array() ? v : nlohmann::json::array({v})) {
      if (!d.is_null() && d != h.hidden) c.fail("value_dim " + d.dump() + " differs from hidden_size");
    }
  }
  h.rank_decay = lora_rank(c, src, {"lora_rank_decay", "decay_low_rank_dim"}, "model.layers.0.attn.w_lora.lora.0.weight");
  h.rank_iclr = lora_rank(c, src, {"lora_rank_iclr", "a_low_rank_dim"}, "model.layers.0.attn.a_lora.lora.0.weight");
  h.rank_value = lora_rank(c, src, {"lora_rank_value_residual_mix", "v_low_rank_dim"},
                           h.n_layer > 1 ? "model.layers.1.attn.v_lora.lora.0.weight" : "");
  h.rank_gate = lora_rank(c, src, {"lora_rank_gate", "gate_low_rank_dim"}, "model.layers.0.attn.g_lora.lora.0.weight");
  return h;
}

void add_rwkv7_keys(gguf::Writer& w, const Rwkv7Hparams& h) {
  w.add_uint32("rwkv7.context_length", 1048576);  // "RWKV isn't context limited"
  w.add_uint32("rwkv7.embedding_length", static_cast<uint32_t>(h.hidden));
  w.add_uint32("rwkv7.block_count", static_cast<uint32_t>(h.n_layer));
  w.add_float32("rwkv7.attention.layer_norm_epsilon", static_cast<float>(h.eps));
  w.add_uint32("rwkv7.wkv.head_size", static_cast<uint32_t>(h.head_size));
  w.add_uint32("rwkv7.attention.decay_lora_rank", static_cast<uint32_t>(h.rank_decay));
  w.add_uint32("rwkv7.attention.iclr_lora_rank", static_cast<uint32_t>(h.rank_iclr));
  w.add_uint32("rwkv7.attention.value_residual_mix_lora_rank", static_cast<uint32_t>(h.rank_value));
  w.add_uint32("rwkv7.attention.gate_lora_rank", static_cast<uint32_t>(h.rank_gate));
  w.add_uint32("rwkv7.feed_forward_length", static_cast<uint32_t>(h.ffn));
  w.add_uint32("rwkv7.attention.head_count", 0);  // "required by llama.cpp, unused"
}

// LoRA `name` (fla's LoRA module: lora.0 = down [rank, H], lora.2 = up
// [H, rank] with an optional bias) -> time_mix_<x>1, <x>2 and <x>0.
void plan_lora(std::vector<PlannedTensor>& out, TensorSource& src, const std::string& hf, const std::string& gguf,
               int64_t H, int64_t rank, bool bias, const std::string& gguf_as = "") {
  const std::string g = gguf_as.empty() ? gguf : gguf_as;
  const std::string why = "hidden_size and the LoRA rank " + std::to_string(rank);
  const st::TensorInfo& down = src.take(hf + ".lora.0.weight", {rank, H}, why);
  const st::TensorInfo& up = src.take(hf + ".lora.2.weight", {H, rank}, why);
  if (bias) out.push_back(plan_copy(g + "0.weight", src.take(hf + ".lora.2.bias", {H}, "hidden_size")));
  out.push_back(plan_copy(g + "1.weight", down));
  out.push_back(plan_copy(g + "2.weight", up));
}

void plan_rwkv7_tensors(ArchPlan& plan, TensorSource& src, const Rwkv7Hparams& h, const HfConfig& c) {
  const int64_t H = h.hidden, V = h.vocab, F = h.ffn;
  auto& out = plan.tensors;
  out.push_back(plan_copy("token_embd.weight", src.take("model.embeddings.weight", {V, H}, "vocab_size x hidden_size")));
  out.push_back(plan_copy("token_embd_norm.weight", src.take("model.layers.0.pre_norm.weight", {H})));
  out.push_back(plan_copy("token_embd_norm.bias", src.take("model.layers.0.pre_norm.bias", {H})));
  out.push_back(plan_copy("output_norm.weight", src.take("model.norm.weight", {H})));
  out.push_back(plan_copy("output_norm.bias", src.take("model.norm.bias", {H})));
  out.push_back(plan_copy("output.weight", src.take("lm_head.weight", {V, H}, "vocab_size x hidden_size")));
  const bool has_gate = c.get_bool("wkv_has_gate", true);
  if (!has_gate) c.fail("wkv_has_gate is false: the rwkv7 layout has the output gate");
  for (int64_t i = 0; i < h.n_layer; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string b = "blk." + std::to_string(i) + ".";
    const std::string a = p + "attn.";
    out.push_back(plan_copy(b + "attn_norm.weight", src.take(p + "attn_norm.weight", {H})));
    out.push_back(plan_copy(b + "attn_norm.bias", src.take(p + "attn_norm.bias", {H})));
    out.push_back(plan_copy(b + "attn_norm_2.weight", src.take(p + "ffn_norm.weight", {H})));
    out.push_back(plan_copy(b + "attn_norm_2.bias", src.take(p + "ffn_norm.bias", {H})));
    plan_lora(out, src, a + "w_lora", b + "time_mix_w", H, h.rank_decay, true);
    plan_lora(out, src, a + "a_lora", b + "time_mix_a", H, h.rank_iclr, true);
    if (i == 0) {
      // Layer 0 has no value-residual mix; llama.cpp's loader still wants
      // v0/v1/v2 and its converter writes a0/a1/a2 under those names.
      for (const char* part : {"v_lora.lora.0.weight", "v_lora.lora.2.weight", "v_lora.lora.2.bias"}) src.skip(a + part);
      plan_lora(out, src, a + "a_lora", "", H, h.rank_iclr, true, b + "time_mix_v");
      for (size_t k = out.size() - 3; k < out.size(); ++k) out[k].origin += " (llama.cpp's layer-0 dummy)";
    } else {
      plan_lora(out, src, a + "v_lora", b + "time_mix_v", H, h.rank_value, true);
    }
    plan_lora(out, src, a + "g_lora", b + "time_mix_g", H, h.rank_gate, false);
    // fla v2 stores x_r ... x_g as [1, 1, H]; older checkpoints one x_x [6, H].
    if (src.has(a + "x_x")) {
      out.push_back(plan_reshape(b + "time_mix_lerp_fused.weight", src.take(a + "x_x", {6, H}), {H, 1, 1, 6}));
    } else {
      std::vector<const st::TensorInfo*> mixes;
      for (const char* x : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) mixes.push_back(&src.take(a + x, {1, 1, H}));
      out.push_back(plan_stack(b + "time_mix_lerp_fused.weight", {H, 1, 1, 6}, mixes));
    }
    out.push_back(plan_copy(b + "time_mix_k_k.weight", src.take(a + "k_k", {H})));
    out.push_back(plan_copy(b + "time_mix_k_a.weight", src.take(a + "k_a", {H})));
    out.push_back(plan_reshape(b + "time_mix_r_k.weight", src.take(a + "r_k", {H / h.head_size, h.head_size}), {H}));
    out.push_back(plan_copy(b + "time_mix_key.weight", src.take(a + "k_proj.weight", {H, H})));
    out.push_back(plan_copy(b + "time_mix_value.weight", src.take(a + "v_proj.weight", {H, H})));
    out.push_back(plan_copy(b + "time_mix_receptance.weight", src.take(a + "r_proj.weight", {H, H})));
    out.push_back(plan_copy(b + "time_mix_ln.weight", src.take(a + "g_norm.weight", {H})));
    out.push_back(plan_copy(b + "time_mix_ln.bias", src.take(a + "g_norm.bias", {H})));
    out.push_back(plan_copy(b + "time_mix_output.weight", src.take(a + "o_proj.weight", {H, H})));
    out.push_back(plan_copy(b + "channel_mix_lerp_k.weight", src.take(p + "ffn.x_k", {H})));
    out.push_back(plan_copy(b + "channel_mix_key.weight", src.take(p + "ffn.key.weight", {F, H}, "intermediate_size x hidden_size")));
    out.push_back(plan_copy(b + "channel_mix_value.weight", src.take(p + "ffn.value.weight", {H, F}, "hidden_size x intermediate_size")));
  }
}

}  // namespace

ArchPlan plan_rwkv7(const HfModel& m, TensorSource& src) {
  const Rwkv7Hparams h = read_hparams(m.config, src);
  ArchPlan plan;
  plan.arch = "rwkv7";
  plan.n_layer = h.n_layer;
  plan_rwkv7_tensors(plan, src, h, m.config);
  plan.add_hparams = [h](gguf::Writer& w) { add_rwkv7_keys(w, h); };
  const std::string vocab = m.path("rwkv_vocab_v20230424.txt");
  if (!std::filesystem::exists(vocab)) {
    throw Error(m.dir + ": no rwkv_vocab_v20230424.txt (the RWKV World vocabulary fla-hub checkpoints ship)");
  }
  const std::string tokenizer_config = m.path("tokenizer_config.json");
  const int64_t vocab_size = h.vocab;
  plan.add_tokenizer = [vocab, vocab_size, tokenizer_config](gguf::Writer& w) {
    add_rwkv_world_tokenizer(w, vocab, vocab_size, tokenizer_config);
  };
  return plan;
}

}  // namespace flatline::convert
