#include "models/synthetic.h"

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
    DType t = forced ? *forced : fitting_type(type_, cols);
    if (type_ == DType::F32 && forced) t = DType::F32;  // an all-F32 file stays all F32
    uint64_t seed = seed_ + 7919 * ++counter_;
    w.add_tensor_deferred(name, t, {cols, rows}, [=](std::vector<uint8_t>& out) {
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

  gguf::Writer w;

 private:
  DType type_;
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace

Rwkv7Shape rwkv7_preset(const std::string& name) {
  Rwkv7Shape s;
  // Layer counts and widths from FACTS.md §5.3; LoRA ranks from the formulas
  // llama.cpp's converter uses (checked against the 2.9B file's metadata).
  auto ranks = [](Rwkv7Shape& sh) {
    auto round32 = [](double v) { return std::max<int64_t>(1, std::llround(v / 32)) * 32; };
    double d = static_cast<double>(sh.n_embd);
    sh.rank_decay = round32(std::sqrt(d) * 1.8);
    sh.rank_iclr = round32(std::sqrt(d) * 1.8);
    sh.rank_value = round32(std::sqrt(d) * 1.3);
    sh.rank_gate = round32(std::pow(d, 0.8) * 0.6);
  };
  if (name == "0.1b") s.n_layer = 12, s.n_embd = 768;
  else if (name == "0.4b") s.n_layer = 24, s.n_embd = 1024;
  else if (name == "1.5b") s.n_layer = 24, s.n_embd = 2048;
  else if (name == "2.9b") s.n_layer = 32, s.n_embd = 2560;
  else if (name == "7.2b") s.n_layer = 32, s.n_embd = 4096;
  else throw Error("unknown RWKV-7 preset '" + name + "' (use 0.1b, 0.4b, 1.5b, 2.9b or 7.2b)");
  ranks(s);
  return s;
}

void write_synthetic_rwkv7(const std::string& path, const Rwkv7Shape& shape, DType type, uint64_t seed) {
  const int64_t D = shape.n_embd, V = shape.n_vocab, F = shape.n_ffn > 0 ? shape.n_ffn : 4 * D;
  if (D % shape.head_size != 0) throw Error("n_embd must be a multiple of head_size");
  if (V < 256) throw Error("synthetic RWKV-7 needs a vocabulary of at least 256 (bytes)");
  SyntheticWriter sw(type, seed);
  gguf::Writer& w = sw.w;
  w.add_string("general.architecture", "rwkv7");
  w.add_string("general.name", "synthetic-rwkv7-" + std::to_string(shape.n_layer) + "x" + std::to_string(D));
  w.add_uint32("rwkv7.context_length", 1048576);
  w.add_uint32("rwkv7.embedding_length", static_cast<uint32_t>(D));
  w.add_uint32("rwkv7.block_count", static_cast<uint32_t>(shape.n_layer));
  w.add_float32("rwkv7.attention.layer_norm_epsilon", 1e-5f);
  w.add_uint32("rwkv7.wkv.head_size", static_cast<uint32_t>(shape.head_size));
  w.add_uint32("rwkv7.attention.decay_lora_rank", static_cast<uint32_t>(shape.rank_decay));
  w.add_uint32("rwkv7.attention.iclr_lora_rank", static_cast<uint32_t>(shape.rank_iclr));
  w.add_uint32("rwkv7.attention.value_residual_mix_lora_rank", static_cast<uint32_t>(shape.rank_value));
  w.add_uint32("rwkv7.attention.gate_lora_rank", static_cast<uint32_t>(shape.rank_gate));
  w.add_uint32("rwkv7.feed_forward_length", static_cast<uint32_t>(F));
  w.add_uint32("rwkv7.attention.head_count", 0);
  w.add_string("tokenizer.ggml.model", "rwkv");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < V; ++i) {
    char buf[32];
    if (i < 256) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(i));
    else std::snprintf(buf, sizeof buf, "[PAD%lld]", static_cast<long long>(i));
    tokens.emplace_back(buf);
    types.push_back(i < 256 ? 1 : 5);  // NORMAL, UNUSED
  }
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_int32_array("tokenizer.ggml.token_type", types);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string("tokenizer.chat_template", "rwkv-world");

  const float s_in = 1.0f / std::sqrt(static_cast<float>(D));
  sw.matrix("token_embd.weight", D, V, 1.0f);
  sw.vector("token_embd_norm.weight", {D}, 1.0f, 0.0f);
  sw.vector("token_embd_norm.bias", {D}, 0.0f, 0.0f);
  for (int64_t il = 0; il < shape.n_layer; ++il) {
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
    lora("time_mix_w", shape.rank_decay);
    lora("time_mix_a", shape.rank_iclr);
    lora("time_mix_v", il == 0 ? shape.rank_iclr : shape.rank_value);  // layer 0: unused, iclr-shaped
    lora("time_mix_g", shape.rank_gate);
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
  w.write(path);
}

}  // namespace flatline
