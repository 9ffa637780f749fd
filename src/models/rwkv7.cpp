// RWKV-7 forward pass, following llama.cpp's formulation (FACTS.md §2.4):
//
//   x = LN0(emb[token]); per layer:
//     a_in = LN1(x); x{r,w,k,v,a,g} = a_in + (prev - a_in) * lerp[i]
//     r = Wr xr, k = Wk xk, v = Wv xv
//     w = exp(-e^-0.5 * sigmoid(w0 + W2 tanh(W1 xw)))          decay
//     v += (v_first - v) * sigmoid(v0 + V2 V1 xv)   (not layer 0)  value residual
//     a = sigmoid(a0 + A2 A1 xa);  g = G2 sigmoid(G1 xg)
//     kk = normalize_per_head(k * k_k);  k += k * (a - 1) * k_a
//     S = S diag(w) + v k^T + (S (-kk)) (kk * a)^T;  y = S r      per head
//     y = GroupNorm(y) + (sum_head(r * k * r_k)) * v;  x += Wo (y * g)
//     f_in = LN2(x); xk = f_in + (prev_f - f_in) * lerp_k
//     x += Wv_cm relu(Wk_cm xk)^2
//   logits = W_out LN_out(x)
//
// Two paths share this code: a chunk of T tokens runs every projection as a
// matmul over the chunk (prompt processing); T = 1 is the decode step. Only
// the WKV recurrence itself is sequential over the chunk.
#include "models/rwkv7.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "models/weights.h"
#include "tensor/kernels.h"
#include "tensor/vector_ops.h"
#include "tensor/wkv7.h"
#include "util/error.h"

namespace flatline {

namespace {

constexpr float kDecayScale = 0.606531f;  // e^-0.5, see the decay line above
constexpr int64_t kMinParallelTokens = 4;   // below: element-wise work stays on the calling thread

struct Rwkv7Hparams {
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_ffn = 0;
  int64_t head_size = 64, n_head = 0;
  int64_t rank_decay = 0, rank_iclr = 0, rank_value = 0, rank_gate = 0;
  float ln_eps = 1e-5f;
  float group_norm_eps = 64e-5f;
};

struct Rwkv7Layer {
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;
  std::vector<float> lerp;  // [6][D] in order r, w, k, v, a, g
  std::vector<float> w0, a0, v0, k_k, k_a, r_k;
  Matrix w1, w2, a1, a2, v1, v2, g1, g2;
  Matrix receptance, key, value, output;
  std::vector<float> gn_w, gn_b;  // time_mix_ln (group norm)
  std::vector<float> cm_lerp_k;
  Matrix cm_key, cm_value;
};

// Per conversation: for each layer, the two token-shift vectors (last LN1
// output, last LN2 output) and the per-head head_size x head_size WKV
// matrices, stored key-major: S[h][j][i] (j = key column, i = value row).
class Rwkv7State final : public ModelState {
 public:
  Rwkv7State(int64_t n_layer, int64_t n_embd, int64_t n_head, int64_t head_size)
      : n_layer_(n_layer),
        n_embd_(n_embd),
        wkv_per_layer_(n_head * head_size * head_size),
        data_(static_cast<size_t>(n_layer * (2 * n_embd + wkv_per_layer_)), 0.0f) {}

  std::unique_ptr<ModelState> clone() const override { return std::make_unique<Rwkv7State>(*this); }
  void reset() override {
    std::fill(data_.begin(), data_.end(), 0.0f);
    n_past_ = 0;
  }
  size_t memory_bytes() const override { return data_.size() * sizeof(float) + sizeof(*this); }

  void save(std::vector<uint8_t>& out) const override {
    size_t at = out.size();
    out.resize(at + sizeof(int64_t) + data_.size() * sizeof(float));
    std::memcpy(out.data() + at, &n_past_, sizeof(int64_t));
    std::memcpy(out.data() + at + sizeof(int64_t), data_.data(), data_.size() * sizeof(float));
  }
  void load(std::span<const uint8_t> in) override {
    size_t expected = sizeof(int64_t) + data_.size() * sizeof(float);
    if (in.size() != expected)
      throw Error("RWKV-7 state: expected " + std::to_string(expected) + " bytes, found " + std::to_string(in.size()));
    int64_t n_past;
    std::memcpy(&n_past, in.data(), sizeof n_past);
    if (n_past < 0) throw Error("RWKV-7 state: negative token count");
    std::memcpy(data_.data(), in.data() + sizeof(int64_t), data_.size() * sizeof(float));
    n_past_ = n_past;
  }

  float* att_shift(int64_t layer) { return layer_base(layer); }
  float* ffn_shift(int64_t layer) { return layer_base(layer) + n_embd_; }
  float* wkv(int64_t layer) { return layer_base(layer) + 2 * n_embd_; }
  void advance(int64_t n) { n_past_ += n; }

 private:
  float* layer_base(int64_t layer) { return data_.data() + layer * (2 * n_embd_ + wkv_per_layer_); }
  int64_t n_layer_, n_embd_, wkv_per_layer_;
  std::vector<float> data_;
};

// Activation buffers for one chunk of up to max_batch tokens, allocated once.
struct Rwkv7Scratch {
  int64_t capacity = 0;
  std::vector<float> x, a_in, f_in, mixed[6], r, w, k, v, a, g, kk, v_first, y, lora, ffn, out, logits_in;

  void ensure(int64_t tokens, const Rwkv7Hparams& hp) {
    if (tokens <= capacity) return;
    capacity = tokens;
    const size_t td = static_cast<size_t>(tokens * hp.n_embd);
    for (auto* buf : {&x, &a_in, &f_in, &r, &w, &k, &v, &a, &g, &kk, &v_first, &y, &out, &logits_in}) buf->assign(td, 0);
    for (auto& m : mixed) m.assign(td, 0);
    int64_t max_rank = std::max({hp.rank_decay, hp.rank_iclr, hp.rank_value, hp.rank_gate});
    lora.assign(static_cast<size_t>(tokens * max_rank), 0);
    ffn.assign(static_cast<size_t>(tokens * hp.n_ffn), 0);
  }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (auto* buf : {&x, &a_in, &f_in, &r, &w, &k, &v, &a, &g, &kk, &v_first, &y, &lora, &ffn, &out, &logits_in})
      n += buf->size();
    for (const auto& m : mixed) n += m.size();
    return n * sizeof(float);
  }
};

class Rwkv7Model final : public Model {
 public:
  Rwkv7Model(std::shared_ptr<const gguf::File> file, const LoadOptions& options)
      : pool_(options.pool), max_batch_(std::max<int64_t>(1, options.max_batch)) {
    file_ = std::move(file);
    read_hparams();
    read_weights();
    scratch_.ensure(max_batch_, hp_);
  }

  std::unique_ptr<ModelState> new_state(int64_t /*n_ctx*/) const override {
    return std::make_unique<Rwkv7State>(hp_.n_layer, hp_.n_embd, hp_.n_head, hp_.head_size);
  }
  uint64_t state_bytes(int64_t /*n_ctx*/) const override {
    return static_cast<uint64_t>(hp_.n_layer * (2 * hp_.n_embd + hp_.n_head * hp_.head_size * hp_.head_size)) *
               sizeof(float) + sizeof(Rwkv7State);
  }
  uint64_t scratch_bytes() const override {
    // Buffers for max_batch tokens plus the logits of one chunk.
    return scratch_.bytes();
  }

  void forward(ModelState& state_base, std::span<const int32_t> tokens, LogitsMode mode, float* logits) override {
    auto* state = dynamic_cast<Rwkv7State*>(&state_base);
    if (!state) throw Error("rwkv7: state belongs to another architecture");
    for (int32_t id : tokens)
      if (id < 0 || id >= hp_.n_vocab)
        throw Error("token id " + std::to_string(id) + " is out of range for a vocabulary of " +
                    std::to_string(hp_.n_vocab));
    const int64_t n = static_cast<int64_t>(tokens.size());
    for (int64_t start = 0; start < n; start += max_batch_) {
      const int64_t len = std::min(max_batch_, n - start);
      const bool last_chunk = start + len == n;
      LogitsMode chunk_mode = mode == LogitsMode::All ? LogitsMode::All
                              : (mode == LogitsMode::Last && last_chunk) ? LogitsMode::Last
                                                                          : LogitsMode::None;
      float* chunk_logits = mode == LogitsMode::All ? logits + start * hp_.n_vocab : logits;
      forward_chunk(*state, tokens.subspan(start, len), chunk_mode, chunk_logits);
    }
  }

 private:
  void read_hparams() {
    const gguf::File& f = *file_;
    const std::string a = "rwkv7.";
    hp_.n_embd = f.get_int(a + "embedding_length");
    hp_.n_layer = f.get_int(a + "block_count");
    hp_.n_ffn = f.get_int(a + "feed_forward_length");
    hp_.head_size = f.get_int(a + "wkv.head_size");
    hp_.rank_decay = f.get_int(a + "attention.decay_lora_rank");
    hp_.rank_iclr = f.get_int(a + "attention.iclr_lora_rank");
    hp_.rank_value = f.get_int(a + "attention.value_residual_mix_lora_rank");
    hp_.rank_gate = f.get_int(a + "attention.gate_lora_rank");
    hp_.ln_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_epsilon", 1e-5));
    int64_t shift_count = f.get_int(a + "token_shift_count", 2);
    if (shift_count != 2)
      throw Error(f.path() + ": rwkv7.token_shift_count is " + std::to_string(shift_count) +
                  ", expected 2 (ARWKV-style hybrids are not supported)");
    if (hp_.n_embd <= 0 || hp_.n_layer <= 0 || hp_.n_ffn <= 0 || hp_.head_size <= 0 || hp_.n_embd % hp_.head_size != 0)
      throw Error(f.path() + ": inconsistent RWKV-7 sizes: embedding_length " + std::to_string(hp_.n_embd) +
                  ", head_size " + std::to_string(hp_.head_size));
    hp_.n_head = hp_.n_embd / hp_.head_size;
    if (hp_.head_size > kWkv7MaxHeadSize)
      throw Error(f.path() + ": rwkv7.wkv.head_size " + std::to_string(hp_.head_size) + " is larger than the " +
                  std::to_string(kWkv7MaxHeadSize) + " flatline supports");
    // GroupNorm epsilon is a training constant (1e-5 * head_size_divisor^2
    // with divisor 8); llama.cpp and rwkv.cpp hard-code 64e-5 as well.
    hp_.group_norm_eps = 64e-5f;
    const auto& emb = f.tensor("token_embd.weight");
    hp_.n_vocab = emb.rows();
  }

  void read_weights() {
    const gguf::File& f = *file_;
    WeightReader wr(f);
    const int64_t D = hp_.n_embd;
    token_embd_ = wr.matrix("token_embd.weight", D, hp_.n_vocab);
    ln0_w_ = wr.vector("token_embd_norm.weight", D);
    ln0_b_ = wr.vector("token_embd_norm.bias", D);
    layers_.resize(static_cast<size_t>(hp_.n_layer));
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
      Rwkv7Layer& L = layers_[static_cast<size_t>(il)];
      const std::string p = "blk." + std::to_string(il) + ".";
      L.ln1_w = wr.vector(p + "attn_norm.weight", D);
      L.ln1_b = wr.vector(p + "attn_norm.bias", D);
      L.ln2_w = wr.vector(p + "attn_norm_2.weight", D);
      L.ln2_b = wr.vector(p + "attn_norm_2.bias", D);
      L.lerp = wr.vector(p + "time_mix_lerp_fused.weight", 6 * D);
      L.w0 = wr.vector(p + "time_mix_w0.weight", D);
      L.a0 = wr.vector(p + "time_mix_a0.weight", D);
      L.v0 = wr.vector(p + "time_mix_v0.weight", D);
      L.w1 = wr.matrix(p + "time_mix_w1.weight", D, hp_.rank_decay);
      L.w2 = wr.matrix(p + "time_mix_w2.weight", hp_.rank_decay, D);
      L.a1 = wr.matrix(p + "time_mix_a1.weight", D, hp_.rank_iclr);
      L.a2 = wr.matrix(p + "time_mix_a2.weight", hp_.rank_iclr, D);
      // Layer 0 has no value residual; llama.cpp's converter still writes
      // v1/v2 there, shaped like the iclr LoRA, and nothing reads them.
      if (il > 0) {
        L.v1 = wr.matrix(p + "time_mix_v1.weight", D, hp_.rank_value);
        L.v2 = wr.matrix(p + "time_mix_v2.weight", hp_.rank_value, D);
      }
      L.g1 = wr.matrix(p + "time_mix_g1.weight", D, hp_.rank_gate);
      L.g2 = wr.matrix(p + "time_mix_g2.weight", hp_.rank_gate, D);
      L.k_k = wr.vector(p + "time_mix_k_k.weight", D);
      L.k_a = wr.vector(p + "time_mix_k_a.weight", D);
      L.r_k = wr.vector(p + "time_mix_r_k.weight", D);
      L.receptance = wr.matrix(p + "time_mix_receptance.weight", D, D);
      L.key = wr.matrix(p + "time_mix_key.weight", D, D);
      L.value = wr.matrix(p + "time_mix_value.weight", D, D);
      L.output = wr.matrix(p + "time_mix_output.weight", D, D);
      L.gn_w = wr.vector(p + "time_mix_ln.weight", D);
      L.gn_b = wr.vector(p + "time_mix_ln.bias", D);
      L.cm_lerp_k = wr.vector(p + "channel_mix_lerp_k.weight", D);
      L.cm_key = wr.matrix(p + "channel_mix_key.weight", D, hp_.n_ffn);
      L.cm_value = wr.matrix(p + "channel_mix_value.weight", hp_.n_ffn, D);
    }
    out_norm_w_ = wr.vector("output_norm.weight", D);
    out_norm_b_ = wr.vector("output_norm.bias", D);
    head_ = wr.has("output.weight") ? wr.matrix("output.weight", D, hp_.n_vocab) : token_embd_;

    info_.architecture = "rwkv7";
    info_.name = f.get_string("general.name", std::filesystem::path(f.path()).stem().string());
    info_.n_vocab = hp_.n_vocab;
    info_.n_embd = D;
    info_.n_layer = hp_.n_layer;
    info_.n_ctx_train = 0;  // recurrent: no context limit
    info_.n_params = total_weight_elements(f);
    info_.weight_bytes = total_weight_bytes(f);
    // A decode step reads every weight once except the embedding table, of
    // which it reads one row.
    info_.bytes_per_token = info_.weight_bytes - token_embd_.bytes() + token_embd_.row_stride;
    if (head_.data == token_embd_.data) info_.bytes_per_token += token_embd_.bytes() - token_embd_.row_stride;
    info_.recurrent = true;
    info_.file_type = dominant_weight_type(f);
  }

  void forward_chunk(Rwkv7State& st, std::span<const int32_t> tokens, LogitsMode mode, float* logits) {
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t D = hp_.n_embd;
    Rwkv7Scratch& s = scratch_;
    s.ensure(T, hp_);
    for (int64_t t = 0; t < T; ++t) {
      float* xt = s.x.data() + t * D;
      dequantize_row(token_embd_.type, token_embd_.row(tokens[t]), xt, D);
      layer_norm(xt, xt, D, ln0_w_.data(), ln0_b_.data(), hp_.ln_eps);
    }
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
      time_mix(st, il, T);
      channel_mix(st, il, T);
    }
    st.advance(T);
    if (mode == LogitsMode::None) return;
    const int64_t first = mode == LogitsMode::All ? 0 : T - 1;
    const int64_t rows = T - first;
    for (int64_t t = first; t < T; ++t)
      layer_norm(s.x.data() + t * D, s.logits_in.data() + (t - first) * D, D, out_norm_w_.data(), out_norm_b_.data(),
                 hp_.ln_eps);
    matmul(head_, s.logits_in.data(), rows, logits, *pool_);
  }

  // fn(t0, t1) over the tokens of a chunk: split across the pool for a
  // prompt (the element-wise work is ~10 % of prompt time and would keep the
  // other threads idle), inline for a decode step, where it is too small to
  // be worth a dispatch.
  template <typename Fn>
  void for_tokens(int64_t T, Fn&& fn) {
    if (T < kMinParallelTokens) {
      fn(int64_t{0}, T);
    } else {
      pool_->parallel_for(T, fn);
    }
  }

  // The same over the T x D elements of a chunk: fn(i0, i1) with whole tokens.
  template <typename Fn>
  void for_elements(int64_t T, int64_t D, Fn&& fn) {
    for_tokens(T, [&](int64_t t0, int64_t t1) { fn(t0 * D, t1 * D); });
  }

  // Token shift: mixed_i[t] = cur[t] + (prev[t] - cur[t]) * lerp_i, where
  // prev[t] = cur[t-1] and prev[0] is the state's last vector.
  // Tokens [t0, t1) only; callers split the chunk with for_tokens.
  void token_shift_mix(const float* cur, const float* state_prev, const float* lerp, float* mixed, int64_t t0,
                       int64_t t1) {
    const int64_t D = hp_.n_embd;
    for (int64_t t = t0; t < t1; ++t) {
      const float* c = cur + t * D;
      const float* p = t == 0 ? state_prev : cur + (t - 1) * D;
      float* m = mixed + t * D;
      for (int64_t i = 0; i < D; ++i) m[i] = c[i] + (p[i] - c[i]) * lerp[i];
    }
  }

  // y = W2 act(W1 x) for T tokens, through the low-rank scratch.
  template <typename Act>
  void lora(const Matrix& w1, const Matrix& w2, const float* x, float* y, int64_t T, Act act) {
    float* mid = scratch_.lora.data();
    matmul(w1, x, T, mid, *pool_);
    for_elements(T, w1.rows, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) mid[i] = act(mid[i]);
    });
    matmul(w2, mid, T, y, *pool_);
  }

  void time_mix(Rwkv7State& st, int64_t il, int64_t T) {
    const Rwkv7Layer& L = layers_[static_cast<size_t>(il)];
    Rwkv7Scratch& s = scratch_;
    const int64_t D = hp_.n_embd;
    const int64_t TD = T * D;

    for_tokens(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        layer_norm(s.x.data() + t * D, s.a_in.data() + t * D, D, L.ln1_w.data(), L.ln1_b.data(), hp_.ln_eps);
    });
    float* shift = st.att_shift(il);
    for_tokens(T, [&](int64_t t0, int64_t t1) {
      for (int i = 0; i < 6; ++i)
        token_shift_mix(s.a_in.data(), shift, L.lerp.data() + i * D, s.mixed[i].data(), t0, t1);
    });
    std::memcpy(shift, s.a_in.data() + (T - 1) * D, D * sizeof(float));
    const float* xr = s.mixed[0].data();
    const float* xw = s.mixed[1].data();
    const float* xk = s.mixed[2].data();
    const float* xv = s.mixed[3].data();
    const float* xa = s.mixed[4].data();
    const float* xg = s.mixed[5].data();

    matmul(L.receptance, xr, T, s.r.data(), *pool_);
    matmul(L.key, xk, T, s.k.data(), *pool_);
    matmul(L.value, xv, T, s.v.data(), *pool_);

    lora(L.w1, L.w2, xw, s.w.data(), T, [](float z) { return std::tanh(z); });
    for_elements(T, D, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) s.w[i] = std::exp(-kDecayScale * sigmoid(L.w0[i % D] + s.w[i]));
    });

    lora(L.a1, L.a2, xa, s.a.data(), T, [](float z) { return z; });
    for_elements(T, D, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) s.a[i] = sigmoid(L.a0[i % D] + s.a[i]);
    });

    if (il == 0) {
      std::memcpy(s.v_first.data(), s.v.data(), TD * sizeof(float));
    } else {
      lora(L.v1, L.v2, xv, s.y.data(), T, [](float z) { return z; });
      for_elements(T, D, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          float mix = sigmoid(L.v0[i % D] + s.y[i]);
          s.v[i] += (s.v_first[i] - s.v[i]) * mix;
        }
      });
    }

    lora(L.g1, L.g2, xg, s.g.data(), T, [](float z) { return sigmoid(z); });

    for_tokens(T, [&](int64_t t0, int64_t t1) { normalize_keys(L, t0, t1); });

    wkv7(st.wkv(il), T);

    for_tokens(T, [&](int64_t t0, int64_t t1) { group_norm_bonus_gate(L, t0, t1); });
    matmul(L.output, s.y.data(), T, s.out.data(), *pool_);
    add_inplace(s.x.data(), s.out.data(), TD);
  }

  // kk = per-head L2-normalised k * k_k; then k += k * (a - 1) * k_a.
  void normalize_keys(const Rwkv7Layer& L, int64_t t0, int64_t t1) {
    Rwkv7Scratch& s = scratch_;
    const int64_t D = hp_.n_embd;
    const int64_t N = hp_.head_size;
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t h = 0; h < hp_.n_head; ++h) {
        const int64_t base = t * D + h * N;
        double norm = 0;
        for (int64_t j = 0; j < N; ++j) {
          float v = s.k[base + j] * L.k_k[h * N + j];
          s.kk[base + j] = v;
          norm += static_cast<double>(v) * v;
        }
        float inv = 1.0f / std::max(static_cast<float>(std::sqrt(norm)), 1e-12f);
        for (int64_t j = 0; j < N; ++j) s.kk[base + j] *= inv;
      }
    }
    for (int64_t i = t0 * D; i < t1 * D; ++i) s.k[i] += s.k[i] * (s.a[i] - 1.0f) * L.k_a[i % D];
  }

  // y = (GroupNorm(y) + (r . k . r_k) v) * g per head.
  void group_norm_bonus_gate(const Rwkv7Layer& L, int64_t t0, int64_t t1) {
    Rwkv7Scratch& s = scratch_;
    const int64_t D = hp_.n_embd;
    const int64_t N = hp_.head_size;
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t h = 0; h < hp_.n_head; ++h) {
        const int64_t base = t * D + h * N;
        float* y = s.y.data() + base;
        layer_norm(y, y, N, L.gn_w.data() + h * N, L.gn_b.data() + h * N, hp_.group_norm_eps);
        float bonus = 0;
        for (int64_t j = 0; j < N; ++j) bonus += s.r[base + j] * s.k[base + j] * L.r_k[h * N + j];
        for (int64_t j = 0; j < N; ++j) y[j] = (y[j] + bonus * s.v[base + j]) * s.g[base + j];
      }
    }
  }

  // The WKV-7 recurrence for T tokens (tensor/wkv7.h), heads split across
  // threads. The state of each head is stored key-major (S[j][i]).
  void wkv7(float* state, int64_t T) {
    Rwkv7Scratch& s = scratch_;
    const int64_t N = hp_.head_size;
    pool_->parallel_for(hp_.n_head, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t off = h * N;
        Wkv7Inputs in{s.r.data() + off, s.w.data() + off, s.k.data() + off,  s.v.data() + off,
                      s.kk.data() + off, s.a.data() + off, s.y.data() + off, hp_.n_embd};
        wkv7_head(state + h * N * N, N, T, in);
      }
    });
  }

  void channel_mix(Rwkv7State& st, int64_t il, int64_t T) {
    const Rwkv7Layer& L = layers_[static_cast<size_t>(il)];
    Rwkv7Scratch& s = scratch_;
    const int64_t D = hp_.n_embd;
    for_tokens(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        layer_norm(s.x.data() + t * D, s.f_in.data() + t * D, D, L.ln2_w.data(), L.ln2_b.data(), hp_.ln_eps);
    });
    float* shift = st.ffn_shift(il);
    for_tokens(T, [&](int64_t t0, int64_t t1) {
      token_shift_mix(s.f_in.data(), shift, L.cm_lerp_k.data(), s.mixed[0].data(), t0, t1);
    });
    std::memcpy(shift, s.f_in.data() + (T - 1) * D, D * sizeof(float));
    matmul(L.cm_key, s.mixed[0].data(), T, s.ffn.data(), *pool_);
    for_elements(T, hp_.n_ffn, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float z = std::max(s.ffn[i], 0.0f);
        s.ffn[i] = z * z;
      }
    });
    matmul(L.cm_value, s.ffn.data(), T, s.out.data(), *pool_);
    add_inplace(s.x.data(), s.out.data(), T * D);
  }

  std::shared_ptr<ThreadPool> pool_;
  int64_t max_batch_;
  Rwkv7Hparams hp_;
  Matrix token_embd_, head_;
  std::vector<float> ln0_w_, ln0_b_, out_norm_w_, out_norm_b_;
  std::vector<Rwkv7Layer> layers_;
  Rwkv7Scratch scratch_;
};

}  // namespace

std::unique_ptr<Model> make_rwkv7(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return std::make_unique<Rwkv7Model>(std::move(file), options);
}

}  // namespace flatline
