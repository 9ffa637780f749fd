#include "models/synthetic.h"

#include <string>

#include <algorithm>
#include <optional>
#include <cmath>
#include <cstdio>
#include <vector>

#include "gguf/gguf_writer.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flatline {

namespace {

// Small, fast generator (splitmix64): benchmarks write gigabytes of weights.
struct Random {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Approximately normal(0, 1): sum of four uniforms, rescaled.
  float normal() {
    float acc = 0;
    for (int i = 0; i < 4; ++i) acc += static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
    return (acc - 2.0f) * 1.7320508f;
  }
};

DType fitting_type(DType wanted, int64_t cols) {
  for (DType t : {wanted, DType::Q8_0, DType::F16})
    if (cols % traits(t).block_size == 0 && can_quantize(t)) return t;
  return DType::F32;
}

class SyntheticWriter {
 public:
  SyntheticWriter(DType type, uint64_t seed) : type_(type), seed_(seed) {}

  void matrix(const std::string& name, int64_t cols, int64_t rows, float scale, std::optional<DType> forced = {}) {
    shaped(name, cols, rows, {cols, rows}, scale, forced);
  }
  // Expert weights: n matrices of rows x cols in one {cols, rows, n} tensor.
  void matrix3(const std::string& name, int64_t cols, int64_t rows, int64_t n, float scale) {
    shaped(name, cols, rows * n, {cols, rows, n}, scale, {});
  }

  void shaped(const std::string& name, int64_t cols, int64_t rows, std::vector<int64_t> dims, float scale,
              std::optional<DType> forced) {
    DType t = forced ? *forced : fitting_type(type_, cols);
    if (type_ == DType::F32 && forced) t = DType::F32;  // an all-F32 file stays all F32
    uint64_t seed = seed_ + 7919 * ++counter_;
    w.add_tensor_deferred(name, t, dims, [=](std::vector<uint8_t>& out) {
      Random rng{seed};
      std::vector<float> row(static_cast<size_t>(cols));
      const size_t stride = row_bytes(t, cols);
      out.resize(stride * static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        for (auto& v : row) v = rng.normal() * scale;
        quantize_row(t, row.data(), out.data() + r * stride, cols);
      }
    });
  }

  void vector(const std::string& name, std::vector<int64_t> dims, float base, float jitter) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    Random rng{seed_ + 104729 * ++counter_};
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = base + jitter * rng.normal();
    w.add_tensor(name, DType::F32, dims, v.data(), v.size() * sizeof(float));
  }

  // Normal(0, 1) scaled, for small per-layer vectors.
  std::vector<float> normals(int64_t n, float scale, float offset = 0.0f) {
    Random rng{seed_ + 15485863 * ++counter_};
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = offset + scale * rng.normal();
    return v;
  }
  float uniform() { return static_cast<float>(aux_.next() >> 40) * (1.0f / 16777216.0f); }
  void floats(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
    w.add_tensor(name, DType::F32, dims, v.data(), v.size() * sizeof(float));
  }

  gguf::Writer w;

 private:
  DType type_;
  uint64_t seed_;
  uint64_t counter_ = 0;
  Random aux_{0x5eed};
};

// llama.cpp's general.file_type (llama_ftype) for an all-`type` file.
uint32_t file_type_id(DType t) {
  switch (t) {
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

std::string shape_name(const SyntheticModel& m) {
  return "synthetic-" + m.arch + "-" + std::to_string(m.n_layer) + "x" + std::to_string(m.n_embd);
}

void write_vocab(gguf::Writer& w, const SyntheticModel& m) {
  w.add_string("tokenizer.ggml.model", "rwkv");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  if (m.printable_vocab) {
    for (int c = 32; c < 127; ++c) tokens.push_back(c == '\\' ? "\\\\" : std::string(1, static_cast<char>(c)));
    tokens.push_back("\\n");
    types.assign(tokens.size(), 1);
  } else {
    for (int64_t i = 0; i < m.n_vocab; ++i) {
      char buf[32];
      if (i < 256) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(i));
      else std::snprintf(buf, sizeof buf, "[PAD%lld]", static_cast<long long>(i));
      tokens.emplace_back(buf);
      types.push_back(i < 256 ? 1 : 5);  // NORMAL, UNUSED
    }
  }
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_int32_array("tokenizer.ggml.token_type", types);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  if (m.printable_vocab) w.add_bool("tokenizer.ggml.add_eos_token", false);
  if (!m.chat_template.empty()) w.add_string("tokenizer.chat_template", m.chat_template);
}

int64_t ff_of(const SyntheticModel& m) { return m.n_ff > 0 ? m.n_ff : 4 * m.n_embd; }

void write_rwkv7_keys(gguf::Writer& w, const SyntheticModel& m) {
  const int64_t D = m.n_embd, F = ff_of(m);
  if (D % m.head_size != 0) throw Error("synth: n_embd must be a multiple of head_size");
  const std::string a = "rwkv7.";
  w.add_uint32(a + "context_length", 1048576);
  w.add_uint32(a + "embedding_length", static_cast<uint32_t>(D));
  w.add_uint32(a + "block_count", static_cast<uint32_t>(m.n_layer));
  w.add_float32(a + "attention.layer_norm_epsilon", 1e-5f);
  w.add_uint32(a + "wkv.head_size", static_cast<uint32_t>(m.head_size));
  w.add_uint32(a + "attention.decay_lora_rank", static_cast<uint32_t>(m.rank_decay));
  w.add_uint32(a + "attention.iclr_lora_rank", static_cast<uint32_t>(m.rank_iclr));
  w.add_uint32(a + "attention.value_residual_mix_lora_rank", static_cast<uint32_t>(m.rank_value));
  w.add_uint32(a + "attention.gate_lora_rank", static_cast<uint32_t>(m.rank_gate));
  w.add_uint32(a + "feed_forward_length", static_cast<uint32_t>(F));
  w.add_uint32(a + "attention.head_count", 0);
}

void write_rwkv7(SyntheticWriter& sw, const SyntheticModel& m) {
  const int64_t D = m.n_embd, V = m.n_vocab, F = ff_of(m);
  const float s_in = 1.0f / std::sqrt(static_cast<float>(D));
  sw.matrix("token_embd.weight", D, V, 1.0f);
  sw.vector("token_embd_norm.weight", {D}, 1.0f, 0.0f);
  sw.vector("token_embd_norm.bias", {D}, 0.0f, 0.0f);
  for (int64_t il = 0; il < m.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    for (const char* n : {"attn_norm", "attn_norm_2", "time_mix_ln"}) {
      sw.vector(p + n + ".weight", {D}, 1.0f, 0.0f);
      sw.vector(p + n + ".bias", {D}, 0.0f, 0.0f);
    }
    sw.vector(p + "time_mix_lerp_fused.weight", {D, 1, 1, 6}, 0.5f, 0.1f);
    sw.vector(p + "time_mix_w0.weight", {D}, -1.0f, 0.5f);
    sw.vector(p + "time_mix_a0.weight", {D}, 0.0f, 0.5f);
    sw.vector(p + "time_mix_v0.weight", {D}, 0.0f, 0.5f);
    // The LoRA matrices stay F16 whatever the type, as in files that
    // llama-quantize produced (it leaves RWKV's small 2-D weights alone).
    auto lora = [&](const std::string& name, int64_t rank) {
      sw.matrix(p + name + "1.weight", D, rank, s_in, DType::F16);
      sw.matrix(p + name + "2.weight", rank, D, 0.1f / std::sqrt(static_cast<float>(rank)), DType::F16);
    };
    lora("time_mix_w", m.rank_decay);
    lora("time_mix_a", m.rank_iclr);
    lora("time_mix_v", il == 0 ? m.rank_iclr : m.rank_value);  // layer 0: unused, iclr-shaped
    lora("time_mix_g", m.rank_gate);
    sw.vector(p + "time_mix_k_k.weight", {D}, 0.85f, 0.05f);
    sw.vector(p + "time_mix_k_a.weight", {D}, 1.0f, 0.05f);
    sw.vector(p + "time_mix_r_k.weight", {D}, 0.0f, 0.1f);
    for (const char* n : {"time_mix_key", "time_mix_value", "time_mix_receptance", "time_mix_output"})
      sw.matrix(p + n + ".weight", D, D, s_in);
    sw.vector(p + "channel_mix_lerp_k.weight", {D, 1, 1}, 0.5f, 0.1f);
    sw.matrix(p + "channel_mix_key.weight", D, F, s_in);
    sw.matrix(p + "channel_mix_value.weight", F, D, 1.0f / std::sqrt(static_cast<float>(F)));
  }
  sw.vector("output_norm.weight", {D}, 1.0f, 0.0f);
  sw.vector("output_norm.bias", {D}, 0.0f, 0.0f);
  sw.matrix("output.weight", D, V, s_in);
}

float inv_sqrt(int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); }

void write_embeddings_and_head(SyntheticWriter& sw, const SyntheticModel& m) {
  sw.matrix("token_embd.weight", m.n_embd, m.n_vocab, m.arch == "gemma3" ? 0.2f : 1.0f);
  sw.vector("output_norm.weight", {m.n_embd}, 1.0f, 0.1f);
  if (!m.tied_output) sw.matrix("output.weight", m.n_embd, m.n_vocab, 3.0f * inv_sqrt(m.n_embd));
}

void write_attention_keys(gguf::Writer& w, const SyntheticModel& m) {
  const std::string k = m.arch + ".";
  const int64_t hd = m.head_dim > 0 ? m.head_dim : m.n_embd / m.n_head;
  w.add_uint32(k + "context_length", static_cast<uint32_t>(m.n_ctx_train));
  w.add_uint32(k + "embedding_length", static_cast<uint32_t>(m.n_embd));
  w.add_uint32(k + "block_count", static_cast<uint32_t>(m.n_layer));
  w.add_uint32(k + "feed_forward_length", static_cast<uint32_t>(ff_of(m)));
  w.add_uint32(k + "attention.head_count", static_cast<uint32_t>(m.n_head));
  w.add_uint32(k + "attention.head_count_kv", static_cast<uint32_t>(m.n_head_kv));
  w.add_uint32(k + "attention.key_length", static_cast<uint32_t>(hd));
  w.add_uint32(k + "attention.value_length", static_cast<uint32_t>(hd));
  w.add_uint32(k + "rope.dimension_count", static_cast<uint32_t>(hd));
  w.add_float32(k + "rope.freq_base", static_cast<float>(m.rope_base));
  w.add_float32(k + "attention.layer_norm_rms_epsilon", 1e-5f);
  if (m.rope_factor > 0) {
    w.add_string(k + "rope.scaling.type", "linear");
    w.add_float32(k + "rope.scaling.factor", static_cast<float>(m.rope_factor));
  }
  if (m.window > 0) {
    w.add_uint32(k + "attention.sliding_window", static_cast<uint32_t>(m.window));
    w.add_float32(k + "rope.freq_base_swa", static_cast<float>(m.rope_base_swa));
    if (!m.window_pattern.empty()) w.add_int32_array(k + "attention.sliding_window_pattern", m.window_pattern);
  }
  if (m.attention_scale > 0) w.add_float32(k + "attention.scale", m.attention_scale);
  if (m.softcap > 0) w.add_float32(k + "final_logit_softcapping", m.softcap);
}

void write_transformer(SyntheticWriter& sw, const SyntheticModel& m) {
  write_attention_keys(sw.w, m);
  if (m.arch == "ouro") {
    // The loop count and the exit gate as docs/GGUF-OURO.md lays them out.
    sw.w.add_uint32("ouro.num_loops", static_cast<uint32_t>(m.n_loops));
    sw.w.add_bool("ouro.skip_loop_final_norm", false);
    sw.w.add_float32("ouro.early_exit_threshold", m.exit_threshold);
    sw.w.add_float32_array("ouro.exit_gate.weight", sw.normals(m.n_embd, 1.5f * inv_sqrt(m.n_embd)));
    sw.w.add_float32("ouro.exit_gate.bias", -1.2f);
  }
  const int64_t E = m.n_embd, F = ff_of(m);
  const int64_t hd = m.head_dim > 0 ? m.head_dim : E / m.n_head;
  const int64_t q = m.n_head * hd, kv = m.n_head_kv * hd;
  write_embeddings_and_head(sw, m);
  if (m.rope_freqs) {
    std::vector<float> f;
    for (int64_t i = 0; i < hd / 2; ++i) f.push_back(1.0f + 1.5f * static_cast<float>(i));
    sw.floats("rope_freqs.weight", {hd / 2}, f);
  }
  for (int64_t l = 0; l < m.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    sw.vector(p + "attn_norm.weight", {E}, 1.0f, 0.1f);
    sw.matrix(p + "attn_q.weight", E, q, inv_sqrt(E));
    sw.matrix(p + "attn_k.weight", E, kv, inv_sqrt(E));
    sw.matrix(p + "attn_v.weight", E, kv, inv_sqrt(E));
    sw.matrix(p + "attn_output.weight", q, E, inv_sqrt(q));
    if (m.biases) {
      sw.vector(p + "attn_q.bias", {q}, 0.0f, 0.1f);
      sw.vector(p + "attn_k.bias", {kv}, 0.0f, 0.1f);
      sw.vector(p + "attn_v.bias", {kv}, 0.0f, 0.1f);
      if (m.arch != "dream") sw.vector(p + "attn_output.bias", {E}, 0.0f, 0.1f);  // Qwen2 has none
    }
    if (m.arch == "gemma3") {
      sw.vector(p + "attn_q_norm.weight", {hd}, 1.0f, 0.1f);
      sw.vector(p + "attn_k_norm.weight", {hd}, 1.0f, 0.1f);
    }
    if (m.arch == "gemma3" || m.arch == "ouro") {
      sw.vector(p + "post_attention_norm.weight", {E}, 1.0f, 0.1f);
      sw.vector(p + "post_ffw_norm.weight", {E}, 1.0f, 0.1f);
    }
    sw.vector(p + "ffn_norm.weight", {E}, 1.0f, 0.1f);
    sw.matrix(p + "ffn_gate.weight", E, F, inv_sqrt(E));
    sw.matrix(p + "ffn_up.weight", E, F, inv_sqrt(E));
    sw.matrix(p + "ffn_down.weight", F, E, inv_sqrt(F));
  }
}

// softplus^-1 of a time step drawn log-uniformly in [1e-3, 1e-1], as Mamba
// initialises dt_bias.
float dt_bias_value(SyntheticWriter& sw) {
  const float dt = std::exp(std::log(1e-3f) + sw.uniform() * (std::log(1e-1f) - std::log(1e-3f)));
  return dt + std::log(-std::expm1(-dt));
}

void write_mamba(SyntheticWriter& sw, const SyntheticModel& m, bool version2) {
  gguf::Writer& w = sw.w;
  const std::string k = m.arch + ".";
  const int64_t E = m.n_embd, Di = m.d_inner > 0 ? m.d_inner : 2 * E, N = m.d_state, K = m.d_conv;
  w.add_uint32(k + "context_length", 1048576);
  w.add_uint32(k + "embedding_length", static_cast<uint32_t>(E));
  w.add_uint32(k + "block_count", static_cast<uint32_t>(m.n_layer));
  w.add_uint32(k + "feed_forward_length", 0);
  w.add_uint32(k + "attention.head_count", 0);
  w.add_uint32(k + "ssm.conv_kernel", static_cast<uint32_t>(K));
  w.add_uint32(k + "ssm.inner_size", static_cast<uint32_t>(Di));
  w.add_uint32(k + "ssm.state_size", static_cast<uint32_t>(N));
  w.add_float32(k + "attention.layer_norm_rms_epsilon", 1e-5f);
  const int64_t H = Di / m.ssm_head_dim, G = m.n_group;
  const int64_t R = m.dt_rank > 0 ? m.dt_rank : (E + 15) / 16;
  if (version2) {
    if (Di % m.ssm_head_dim != 0 || H % G != 0) throw Error("synth: d_inner must split into heads and groups");
    w.add_uint32(k + "ssm.time_step_rank", static_cast<uint32_t>(H));
    w.add_uint32(k + "ssm.group_count", static_cast<uint32_t>(G));
  } else {
    w.add_uint32(k + "ssm.time_step_rank", static_cast<uint32_t>(R));
  }
  write_embeddings_and_head(sw, m);
  for (int64_t l = 0; l < m.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    sw.vector(p + "attn_norm.weight", {E}, 1.0f, 0.1f);
    const int64_t conv_ch = version2 ? Di + 2 * G * N : Di;
    sw.matrix(p + "ssm_in.weight", E, version2 ? 2 * Di + 2 * G * N + H : 2 * Di, inv_sqrt(E));
    sw.floats(p + "ssm_conv1d.weight", {K, conv_ch}, sw.normals(K * conv_ch, 0.2f));
    sw.floats(p + "ssm_conv1d.bias", {conv_ch}, sw.normals(conv_ch, 0.1f));
    if (version2) {
      std::vector<float> bias, a;
      for (int64_t h = 0; h < H; ++h) {
        bias.push_back(dt_bias_value(sw));
        a.push_back(-(1.0f + 15.0f * sw.uniform()));
      }
      sw.floats(p + "ssm_dt.bias", {H}, bias);
      sw.floats(p + "ssm_a", {1, H}, a);
      sw.floats(p + "ssm_d", {1, H}, sw.normals(H, 0.1f, 1.0f));
      sw.vector(p + "ssm_norm.weight", {Di / G, G}, 1.0f, 0.1f);
    } else {
      sw.matrix(p + "ssm_x.weight", Di, R + 2 * N, inv_sqrt(Di));
      sw.matrix(p + "ssm_dt.weight", R, Di, inv_sqrt(R));
      std::vector<float> bias, a;
      for (int64_t c = 0; c < Di; ++c) bias.push_back(dt_bias_value(sw));
      for (int64_t c = 0; c < Di; ++c)
        for (int64_t s = 0; s < N; ++s) a.push_back(-static_cast<float>(s + 1));
      sw.floats(p + "ssm_dt.bias", {Di}, bias);
      sw.floats(p + "ssm_a", {N, Di}, a);
      sw.floats(p + "ssm_d", {Di}, sw.normals(Di, 0.1f, 1.0f));
    }
    sw.matrix(p + "ssm_out.weight", Di, E, inv_sqrt(Di));
  }
}

char layer_kind(const SyntheticModel& m, int64_t l) {
  if (!m.layer_pattern.empty()) return m.layer_pattern[static_cast<size_t>(l) % m.layer_pattern.size()];
  return l % 4 == 2 ? 'A' : 'M';
}

void write_mamba_layer(SyntheticWriter& sw, const SyntheticModel& m, const std::string& p, bool version2) {
  const int64_t E = m.n_embd, Di = m.d_inner > 0 ? m.d_inner : 2 * E, N = m.d_state, K = m.d_conv;
  const int64_t H = Di / m.ssm_head_dim, G = m.n_group;
  const int64_t R = m.dt_rank > 0 ? m.dt_rank : (E + 15) / 16;
  const int64_t conv_ch = version2 ? Di + 2 * G * N : Di;
  sw.matrix(p + "ssm_in.weight", E, version2 ? 2 * Di + 2 * G * N + H : 2 * Di, inv_sqrt(E));
  sw.floats(p + "ssm_conv1d.weight", {K, conv_ch}, sw.normals(K * conv_ch, 0.2f));
  sw.floats(p + "ssm_conv1d.bias", {conv_ch}, sw.normals(conv_ch, 0.1f));
  if (version2) {
    std::vector<float> bias, a;
    for (int64_t h = 0; h < H; ++h) {
      bias.push_back(dt_bias_value(sw));
      a.push_back(-(1.0f + 15.0f * sw.uniform()));
    }
    sw.floats(p + "ssm_dt.bias", {H}, bias);
    sw.floats(p + "ssm_a", {1, H}, a);
    sw.floats(p + "ssm_d", {1, H}, sw.normals(H, 0.1f, 1.0f));
    sw.vector(p + "ssm_norm.weight", {Di / G, G}, 1.0f, 0.1f);
  } else {
    sw.matrix(p + "ssm_x.weight", Di, R + 2 * N, inv_sqrt(Di));
    sw.matrix(p + "ssm_dt.weight", R, Di, inv_sqrt(R));
    std::vector<float> bias, a;
    for (int64_t c = 0; c < Di; ++c) bias.push_back(dt_bias_value(sw));
    for (int64_t c = 0; c < Di; ++c)
      for (int64_t s = 0; s < N; ++s) a.push_back(-static_cast<float>(s + 1));
    sw.floats(p + "ssm_dt.bias", {Di}, bias);
    sw.floats(p + "ssm_a", {N, Di}, a);
    sw.floats(p + "ssm_d", {Di}, sw.normals(Di, 0.1f, 1.0f));
    if (m.arch == "jamba") {
      sw.vector(p + "ssm_dt_norm.weight", {R}, 1.0f, 0.1f);
      sw.vector(p + "ssm_b_norm.weight", {N}, 1.0f, 0.1f);
      sw.vector(p + "ssm_c_norm.weight", {N}, 1.0f, 0.1f);
    }
  }
  sw.matrix(p + "ssm_out.weight", Di, E, inv_sqrt(Di));
}

void write_attention_layer(SyntheticWriter& sw, const SyntheticModel& m, const std::string& p) {
  const int64_t E = m.n_embd, hd = m.head_dim > 0 ? m.head_dim : E / m.n_head;
  const int64_t q = m.n_head * hd, kv = m.n_head_kv * hd;
  sw.matrix(p + "attn_q.weight", E, q, inv_sqrt(E));
  sw.matrix(p + "attn_k.weight", E, kv, inv_sqrt(E));
  sw.matrix(p + "attn_v.weight", E, kv, inv_sqrt(E));
  sw.matrix(p + "attn_output.weight", q, E, inv_sqrt(q));
}

// Experts {cols, rows, n_expert}, one matrix per expert in a row.
void write_experts(SyntheticWriter& sw, const std::string& name, int64_t cols, int64_t rows, int64_t n) {
  sw.matrix3(name, cols, rows, n, inv_sqrt(cols));
}

void write_moe(SyntheticWriter& sw, const SyntheticModel& m, const std::string& p, bool gated) {
  const int64_t E = m.n_embd, F = ff_of(m), X = m.n_expert, L = m.moe_latent > 0 ? m.moe_latent : E;
  sw.matrix(p + "ffn_gate_inp.weight", E, X, inv_sqrt(E));
  if (m.arch == "nemotron_h_moe") sw.vector(p + "exp_probs_b.bias", {X}, 0.0f, 0.1f);
  if (m.moe_latent > 0) {
    sw.matrix(p + "ffn_latent_down.weight", E, L, inv_sqrt(E));
    sw.matrix(p + "ffn_latent_up.weight", L, E, inv_sqrt(L));
  }
  if (gated) write_experts(sw, p + "ffn_gate_exps.weight", L, F, X);
  write_experts(sw, p + "ffn_up_exps.weight", L, F, X);
  write_experts(sw, p + "ffn_down_exps.weight", F, L, X);
  if (m.n_ff_shared > 0) {
    const int64_t S = m.n_ff_shared;
    if (gated) sw.matrix(p + "ffn_gate_shexp.weight", E, S, inv_sqrt(E));
    sw.matrix(p + "ffn_up_shexp.weight", E, S, inv_sqrt(E));
    sw.matrix(p + "ffn_down_shexp.weight", S, E, inv_sqrt(S));
  }
}

void write_dense_ffn(SyntheticWriter& sw, const SyntheticModel& m, const std::string& p, bool gated) {
  const int64_t E = m.n_embd, F = ff_of(m);
  if (gated) sw.matrix(p + "ffn_gate.weight", E, F, inv_sqrt(E));
  sw.matrix(p + "ffn_up.weight", E, F, inv_sqrt(E));
  sw.matrix(p + "ffn_down.weight", F, E, inv_sqrt(F));
}

void write_hybrid(SyntheticWriter& sw, const SyntheticModel& m) {
  gguf::Writer& w = sw.w;
  const std::string k = m.arch + ".";
  const bool nemotron = m.arch == "nemotron_h" || m.arch == "nemotron_h_moe", jamba = m.arch == "jamba";
  const int64_t E = m.n_embd, Di = m.d_inner > 0 ? m.d_inner : 2 * E;
  const int64_t hd = m.head_dim > 0 ? m.head_dim : E / m.n_head;
  std::vector<int32_t> kv_heads, ff;
  for (int64_t l = 0; l < m.n_layer; ++l) {
    const char kind = layer_kind(m, l);
    kv_heads.push_back(kind == 'A' ? static_cast<int32_t>(m.n_head_kv) : 0);
    ff.push_back(nemotron ? (kind == 'F' ? static_cast<int32_t>(ff_of(m) * std::max<int64_t>(1, m.n_expert_used)) : 0)
                          : static_cast<int32_t>(ff_of(m)));
  }
  w.add_uint32(k + "context_length", static_cast<uint32_t>(m.n_ctx_train));
  w.add_uint32(k + "embedding_length", static_cast<uint32_t>(E));
  w.add_uint32(k + "block_count", static_cast<uint32_t>(m.n_layer));
  if (nemotron) w.add_int32_array(k + "feed_forward_length", ff);
  else w.add_uint32(k + "feed_forward_length", static_cast<uint32_t>(ff_of(m)));
  w.add_uint32(k + "attention.head_count", static_cast<uint32_t>(m.n_head));
  w.add_int32_array(k + "attention.head_count_kv", kv_heads);
  w.add_uint32(k + "attention.key_length", static_cast<uint32_t>(hd));
  w.add_uint32(k + "attention.value_length", static_cast<uint32_t>(hd));
  w.add_float32(k + "attention.layer_norm_rms_epsilon", 1e-5f);
  if (nemotron) w.add_float32(k + "attention.layer_norm_epsilon", 1e-5f);
  if (m.attention_scale > 0) w.add_float32(k + "attention.scale", m.attention_scale);
  if (m.embedding_scale > 0) w.add_float32(k + "embedding_scale", m.embedding_scale);
  if (m.residual_scale > 0) w.add_float32(k + "residual_scale", m.residual_scale);
  if (m.logit_scale > 0) w.add_float32(k + "logit_scale", m.logit_scale);
  if (!jamba) w.add_bool(k + "rope.scaling.finetuned", m.hybrid_rope);
  if (m.hybrid_rope) {
    w.add_uint32(k + "rope.dimension_count", static_cast<uint32_t>(hd));
    w.add_float32(k + "rope.freq_base", static_cast<float>(m.rope_base));
  }
  if (m.n_expert > 0) {
    w.add_uint32(k + "expert_count", static_cast<uint32_t>(m.n_expert));
    w.add_uint32(k + "expert_used_count", static_cast<uint32_t>(m.n_expert_used));
    if (m.n_ff_shared > 0) w.add_uint32(k + "expert_shared_feed_forward_length", static_cast<uint32_t>(m.n_ff_shared));
    if (nemotron) {
      w.add_uint32(k + "expert_feed_forward_length", static_cast<uint32_t>(ff_of(m)));
      w.add_bool(k + "expert_weights_norm", true);
      w.add_float32(k + "expert_weights_scale", 2.5f);
      if (m.moe_latent > 0) w.add_uint32(k + "moe_latent_size", static_cast<uint32_t>(m.moe_latent));
    }
  }
  w.add_uint32(k + "ssm.conv_kernel", static_cast<uint32_t>(m.d_conv));
  w.add_uint32(k + "ssm.inner_size", static_cast<uint32_t>(Di));
  w.add_uint32(k + "ssm.state_size", static_cast<uint32_t>(m.d_state));
  if (jamba) {
    w.add_uint32(k + "ssm.time_step_rank", static_cast<uint32_t>(m.dt_rank > 0 ? m.dt_rank : (E + 15) / 16));
  } else {
    w.add_uint32(k + "ssm.time_step_rank", static_cast<uint32_t>(Di / m.ssm_head_dim));
    w.add_uint32(k + "ssm.group_count", static_cast<uint32_t>(m.n_group));
  }
  write_embeddings_and_head(sw, m);
  for (int64_t l = 0; l < m.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const char kind = layer_kind(m, l);
    sw.vector(p + "attn_norm.weight", {E}, 1.0f, 0.1f);
    if (kind == 'M') write_mamba_layer(sw, m, p, !jamba);
    else if (kind == 'A') write_attention_layer(sw, m, p);
    if (nemotron) {
      if (kind == 'F') {
        if (m.n_expert > 0) write_moe(sw, m, p, false);
        else write_dense_ffn(sw, m, p, false);
      }
      continue;
    }
    sw.vector(p + "ffn_norm.weight", {E}, 1.0f, 0.1f);
    const bool moe_layer = m.n_expert > 0 &&
                           (!jamba || (m.moe_pattern.empty() ? l % 2 == 1 : m.moe_pattern[static_cast<size_t>(l) % m.moe_pattern.size()] == '1'));
    if (moe_layer) write_moe(sw, m, p, true);
    else write_dense_ffn(sw, m, p, true);
  }
}

}  // namespace

SyntheticModel synthetic_preset(const std::string& arch, const std::string& preset) {
  SyntheticModel m;
  m.arch = arch;
  auto unknown = [&]() {
    return Error("unknown " + arch + " preset '" + preset +
                 "' (rwkv7: 0.1b 0.4b 1.5b 2.9b 7.2b; llama: 1b 3b 8b; gemma3: 1b 4b; ouro: 1.4b 2.6b; mamba: 2.8b; mamba2: 1.3b 2.7b; granitehybrid: micro tiny; nemotron_h: 9b; jamba: 1.5b; llada: 8b; dream: 7b)");
  };
  if (arch == "rwkv7") {
    if (preset == "0.1b") m.n_layer = 12, m.n_embd = 768;
    else if (preset == "0.4b") m.n_layer = 24, m.n_embd = 1024;
    else if (preset == "1.5b") m.n_layer = 24, m.n_embd = 2048;
    else if (preset == "2.9b") m.n_layer = 32, m.n_embd = 2560;
    else if (preset == "7.2b") m.n_layer = 32, m.n_embd = 4096;
    else throw unknown();
    // LoRA ranks from the formulas llama.cpp's converter uses (checked
    // against the 2.9B file's metadata).
    auto round32 = [](double v) { return std::max<int64_t>(1, std::llround(v / 32)) * 32; };
    const double d = static_cast<double>(m.n_embd);
    m.rank_decay = round32(std::sqrt(d) * 1.8);
    m.rank_iclr = round32(std::sqrt(d) * 1.8);
    m.rank_value = round32(std::sqrt(d) * 1.3);
    m.rank_gate = round32(std::pow(d, 0.8) * 0.6);
    m.chat_template = "rwkv-world";
  } else if (arch == "llama") {
    m.n_vocab = 128256, m.tied_output = true, m.n_head_kv = 8, m.rope_base = 500000;
    if (preset == "1b") m.n_layer = 16, m.n_embd = 2048, m.n_head = 32, m.n_ff = 8192;
    else if (preset == "3b") m.n_layer = 28, m.n_embd = 3072, m.n_head = 24, m.n_ff = 8192;
    else if (preset == "8b") m.n_layer = 32, m.n_embd = 4096, m.n_head = 32, m.n_ff = 14336, m.tied_output = false;
    else throw unknown();
    m.n_ctx_train = 131072;
  } else if (arch == "gemma3") {
    m.n_vocab = 262144, m.tied_output = true, m.head_dim = 256, m.rope_base = 1e6, m.rope_factor = 8;
    if (preset == "1b") m.n_layer = 26, m.n_embd = 1152, m.n_head = 4, m.n_head_kv = 1, m.n_ff = 6912, m.window = 512;
    else if (preset == "4b") m.n_layer = 34, m.n_embd = 2560, m.n_head = 8, m.n_head_kv = 4, m.n_ff = 10240, m.window = 1024;
    else throw unknown();
    m.n_ctx_train = 131072;
  } else if (arch == "ouro") {
    // Ouro-1.4B / 2.6B (FACTS.md 3.1): full MHA, head dim 128, 4 loops.
    m.n_vocab = 49152, m.n_head = 16, m.n_head_kv = 16, m.head_dim = 128, m.n_ff = 5632, m.rope_base = 1e6;
    if (preset == "1.4b") m.n_layer = 24, m.n_embd = 2048;
    else if (preset == "2.6b") m.n_layer = 48, m.n_embd = 2048;
    else throw unknown();
    m.n_ctx_train = 65536;
  } else if (arch == "llada" || arch == "dream") {
    // LLaDA-8B (its config.json: 32 layers, 4096 wide, MHA 32 heads, FFN
    // 12288, vocab 126464) and Dream-7B (Qwen2.5-7B's shape).
    if (arch == "llada" && preset == "8b")
      m.n_layer = 32, m.n_embd = 4096, m.n_head = 32, m.n_head_kv = 32, m.n_ff = 12288, m.n_vocab = 126464, m.rope_base = 500000;
    else if (arch == "dream" && preset == "7b")
      m.n_layer = 28, m.n_embd = 3584, m.n_head = 28, m.n_head_kv = 4, m.n_ff = 18944, m.n_vocab = 152064, m.rope_base = 1e6;
    else throw unknown();
  } else if (arch == "mamba") {
    if (preset == "2.8b") m.n_layer = 64, m.n_embd = 2560, m.n_vocab = 50280;
    else throw unknown();
  } else if (arch == "mamba2") {
    m.d_state = 128, m.ssm_head_dim = 64, m.n_group = 1, m.n_vocab = 50288;
    if (preset == "1.3b") m.n_layer = 48, m.n_embd = 2048;
    else if (preset == "2.7b") m.n_layer = 64, m.n_embd = 2560;
    else throw unknown();
  } else if (arch == "granitehybrid") {
    // Granite 4.0-H: 1 attention layer in 10 (pattern of the released
    // configs), Mamba-2 head dim 64 and 128-wide state, GQA 32/8 heads.
    m.n_vocab = 100352, m.tied_output = true, m.d_state = 128, m.ssm_head_dim = 64, m.n_group = 1;
    m.n_head = 32, m.n_head_kv = 8, m.layer_pattern = "MMMMMAMMMM";
    m.embedding_scale = 12, m.residual_scale = 0.22f, m.logit_scale = 8, m.attention_scale = 0.0078125f;
    if (preset == "micro") m.n_layer = 40, m.n_embd = 2560, m.n_ff = 8192, m.n_head = 40;
    else if (preset == "tiny") m.n_layer = 40, m.n_embd = 1536, m.n_ff = 512, m.n_head = 12, m.n_head_kv = 4,
                               m.n_expert = 64, m.n_expert_used = 6, m.n_ff_shared = 1024;
    else throw unknown();
    m.n_ctx_train = 131072;
  } else if (arch == "nemotron_h") {
    m.n_vocab = 131072, m.d_state = 128, m.ssm_head_dim = 80, m.n_group = 8, m.n_head = 40, m.n_head_kv = 8;
    if (preset == "9b") m.n_layer = 56, m.n_embd = 4480, m.n_ff = 15680, m.d_inner = 8960, m.head_dim = 128,
                        m.layer_pattern = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-";
    else throw unknown();
    for (char& ch : m.layer_pattern) ch = ch == '-' ? 'F' : ch == '*' ? 'A' : ch;
  } else if (arch == "jamba") {
    m.n_vocab = 65536, m.n_head = 32, m.n_head_kv = 8, m.d_state = 16, m.n_expert = 16, m.n_expert_used = 2;
    if (preset == "1.5b") m.n_layer = 16, m.n_embd = 1024, m.n_ff = 4096, m.layer_pattern = "MMMMAMMM";
    else throw unknown();
  } else {
    throw Error("synth: unknown architecture '" + arch +
                "' (rwkv7, llama, gemma3, ouro, mamba, mamba2, granitehybrid, nemotron_h, jamba, llada, dream)");
  }
  return m;
}

void write_synthetic_model(const std::string& path, const SyntheticModel& m) {
  if (m.printable_vocab ? m.n_vocab < 96 : m.n_vocab < 256)
    throw Error("synth: the vocabulary needs at least " + std::string(m.printable_vocab ? "96" : "256") + " tokens");
  if (m.n_layer < 1 || m.n_embd < 1) throw Error("synth: layer count and width must be positive");
  SyntheticWriter sw(m.type, m.seed);
  sw.w.add_string("general.architecture", m.arch);
  sw.w.add_string("general.name", m.name.empty() ? shape_name(m) : m.name);
  // RWKV-7 files keep the key order of the files tests/data/rwkv7-synth's
  // llama.cpp logits were computed from (the test checks their bytes).
  if (m.arch == "rwkv7") {
    write_rwkv7_keys(sw.w, m);
    write_vocab(sw.w, m);
    write_rwkv7(sw, m);
  } else {
    sw.w.add_uint32("general.file_type", file_type_id(m.type));
    write_vocab(sw.w, m);
    if (m.arch == "llada" || m.arch == "dream") {
      // The last token is the mask; Dream's logits are shifted.
      sw.w.add_uint32("tokenizer.ggml.mask_token_id", static_cast<uint32_t>(m.n_vocab - 1));
      sw.w.add_bool("diffusion.shift_logits", m.arch == "dream");
      SyntheticModel t = m;
      t.biases = m.arch == "dream";
      write_transformer(sw, t);
    } else if (m.arch == "llama" || m.arch == "gemma3" || m.arch == "ouro") write_transformer(sw, m);
    else if (m.arch == "mamba") write_mamba(sw, m, false);
    else if (m.arch == "mamba2") write_mamba(sw, m, true);
    else if (m.arch == "granitehybrid" || m.arch == "nemotron_h" || m.arch == "nemotron_h_moe" || m.arch == "jamba")
      write_hybrid(sw, m);
    else throw Error("synth: unknown architecture '" + m.arch + "'");
  }
  sw.w.write(path);
}

}  // namespace flatline
