// RWKV-7 forward pass, following llama.cpp's formulation (src/models/rwkv7-base.cpp there):
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

#include "models/batch.h"
#include "models/weights.h"
#include "tensor/kernels.h"
#include "tensor/vector_ops.h"
#include "tensor/wkv7.h"
#include "util/error.h"

namespace flatline {

namespace {

constexpr float kDecayScale = 0.606531f;  // e^-0.5, see the decay line above

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

// Per conversation, per layer, three recurrent slabs: the two token-shift
// vectors (last LN1 output, last LN2 output) and the per-head head_size x
// head_size WKV matrices, stored key-major: S[h][j][i] (j = key column, i =
// value row).
constexpr int64_t kSlabsPerLayer = 3;

// Activation buffers for one chunk, grown to the largest chunk seen.
struct Rwkv7Buffers {
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
  static uint64_t bytes_for(int64_t tokens, const Rwkv7Hparams& hp) {
    const int64_t max_rank = std::max({hp.rank_decay, hp.rank_iclr, hp.rank_value, hp.rank_gate});
    return static_cast<uint64_t>(tokens) * static_cast<uint64_t>(20 * hp.n_embd + max_rank + hp.n_ffn) * sizeof(float);
  }
};

class Rwkv7Workspace final : public Workspace {
 public:
  uint64_t bytes() const override {
    uint64_t n = 0;
    for (auto* buf : {&b.x, &b.a_in, &b.f_in, &b.r, &b.w, &b.k, &b.v, &b.a, &b.g, &b.kk, &b.v_first, &b.y, &b.lora,
                      &b.ffn, &b.out, &b.logits_in})
      n += buf->capacity();
    for (const auto& m : b.mixed) n += m.capacity();
    return n * sizeof(float);
  }
  Rwkv7Buffers b;
  std::vector<Segment> segments;
  std::vector<OutputRow> outputs;
};

// What one chunk's layer functions share.
struct Rwkv7Chunk {
  const ForwardArgs& args;
  std::span<const Segment> segments;
  int64_t T;  // rows
  Rwkv7Buffers& s;
  RecurrentPart& state(const Segment& seg) const { return args.sequences[seg.seq].state->recurrent(); }
};

class Rwkv7Model final : public Model {
 public:
  Rwkv7Model(std::shared_ptr<const gguf::File> file, const LoadOptions& options)
      : max_batch_(std::max<int64_t>(1, options.max_batch)) {
    file_ = std::move(file);
    pool_ = options.pool;
    read_hparams();
    read_weights();
    StateLayout layout;
    for (int64_t l = 0; l < hp_.n_layer; ++l)
      for (int64_t v : {hp_.n_embd, hp_.n_embd, hp_.n_head * hp_.head_size * hp_.head_size}) layout.recurrent_slabs.push_back(v);
    set_layout(std::move(layout));
  }

  std::unique_ptr<Workspace> new_workspace() const override { return std::make_unique<Rwkv7Workspace>(); }
  uint64_t workspace_bytes() const override { return Rwkv7Buffers::bytes_for(max_batch_, hp_); }

  void forward(const ForwardArgs& args, Workspace& ws_base) const override {
    validate(args);
    if (args.mask != AttentionMask::Causal) throw Error("rwkv7: a recurrent model has no bidirectional mode");
    auto* ws = dynamic_cast<Rwkv7Workspace*>(&ws_base);
    if (!ws) throw Error("rwkv7: the workspace was made by another model");
    for_each_chunk(args, max_batch_, ws->segments, [&](std::span<const Segment> segs, int64_t rows) {
      forward_chunk(args, *ws, segs, rows);
      for (const Segment& seg : segs) args.sequences[seg.seq].state->advance(seg.n);
    });
  }

 private:
  void read_hparams() {
    const gguf::File& f = *file_;
    const std::string a = "rwkv7.";
    hp_.n_embd = f.get_int(a + "embedding_length");
    hp_.n_layer = checked_block_count(f, "rwkv7");
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
    token_embd_ = wr.embedding("token_embd.weight", D, hp_.n_vocab);
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
    if (wr.has("output.weight")) {
      head_ = wr.matrix("output.weight", D, hp_.n_vocab);
    } else {
      head_ = token_embd_;
      wr.count_tied_head(token_embd_);
    }

    fill_model_info(info_, f, "rwkv7", wr);
    info_.n_vocab = hp_.n_vocab;
    info_.n_embd = D;
    info_.n_layer = hp_.n_layer;
    info_.n_ctx_train = 0;  // recurrent: no context limit
  }

  void forward_chunk(const ForwardArgs& args, Rwkv7Workspace& ws, std::span<const Segment> segs, int64_t T) const {
    const int64_t D = hp_.n_embd;
    ws.b.ensure(T, hp_);
    Rwkv7Chunk c{args, segs, T, ws.b};
    Rwkv7Buffers& s = ws.b;
    for (const Segment& seg : segs)
      for (int64_t i = 0; i < seg.n; ++i) {
        float* xt = s.x.data() + (seg.row0 + i) * D;
        dequantize_row(token_embd_.type, token_embd_.row(args.sequences[seg.seq].tokens[seg.token0 + i]), xt, D);
        layer_norm(xt, xt, D, ln0_w_.data(), ln0_b_.data(), hp_.ln_eps);
      }
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
      time_mix(c, il);
      channel_mix(c, il);
    }
    const int64_t width = args.hidden ? D : hp_.n_vocab;
    output_rows(args, segs, width, ws.outputs);
    if (ws.outputs.empty()) return;
    const int64_t rows = static_cast<int64_t>(ws.outputs.size());
    for (int64_t i = 0; i < rows; ++i)
      layer_norm(s.x.data() + ws.outputs[i].row * D, s.logits_in.data() + i * D, D, out_norm_w_.data(),
                 out_norm_b_.data(), hp_.ln_eps);
    if (args.hidden) {
      for (int64_t i = 0; i < rows; ++i) std::memcpy(ws.outputs[i].out, s.logits_in.data() + i * D, D * sizeof(float));
      return;
    }
    // Consecutive output rows (one sequence's All logits) go straight to their
    // destination; the others one by one.
    for (int64_t i = 0; i < rows;) {
      int64_t j = i + 1;
      while (j < rows && ws.outputs[j].out == ws.outputs[j - 1].out + hp_.n_vocab) ++j;
      matmul(head_, s.logits_in.data() + i * D, j - i, ws.outputs[i].out, *pool_);
      i = j;
    }
  }

  // fn(t0, t1) over the rows of a chunk: split across the pool for a prompt
  // (the element-wise work is ~10 % of prompt time and would keep the other
  // threads idle), inline for a decode step.
  template <typename Fn>
  void for_rows(int64_t T, Fn&& fn) const {
    pool_->parallel_work(T, hp_.n_embd, fn);
  }

  // The same over the T x D elements of a chunk: fn(i0, i1) with whole rows.
  template <typename Fn>
  void for_elements(int64_t T, int64_t D, Fn&& fn) const {
    for_rows(T, [&](int64_t t0, int64_t t1) { fn(t0 * D, t1 * D); });
  }

  // Token shift of one segment: mixed_i[t] = cur[t] + (prev[t] - cur[t]) *
  // lerp_i, where prev[t] = cur[t-1] and the segment's first row takes the
  // state's last vector; then the state keeps the segment's last row.
  void token_shift(const Rwkv7Chunk& c, const Segment& seg, const float* cur, float* shift, const float* lerp,
                   float* const* mixed, int n_mixes) const {
    const int64_t D = hp_.n_embd;
    for_rows(seg.n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = seg.row0 + i;
        const float* x = cur + t * D;
        const float* p = i == 0 ? shift : cur + (t - 1) * D;
        for (int m = 0; m < n_mixes; ++m) {
          const float* l = lerp + m * D;
          float* o = mixed[m] + t * D;
          for (int64_t d = 0; d < D; ++d) o[d] = x[d] + (p[d] - x[d]) * l[d];
        }
      }
    });
    std::memcpy(shift, cur + (seg.row0 + seg.n - 1) * D, D * sizeof(float));
  }

  // y = W2 act(W1 x) for T rows, through the low-rank scratch.
  template <typename Act>
  void lora(const Rwkv7Chunk& c, const Matrix& w1, const Matrix& w2, const float* x, float* y, Act act) const {
    float* mid = c.s.lora.data();
    matmul(w1, x, c.T, mid, *pool_);
    for_elements(c.T, w1.rows, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) mid[i] = act(mid[i]);
    });
    matmul(w2, mid, c.T, y, *pool_);
  }

  void time_mix(const Rwkv7Chunk& c, int64_t il) const {
    const Rwkv7Layer& L = layers_[static_cast<size_t>(il)];
    Rwkv7Buffers& s = c.s;
    const int64_t D = hp_.n_embd, T = c.T;
    const int64_t TD = T * D;

    for_rows(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        layer_norm(s.x.data() + t * D, s.a_in.data() + t * D, D, L.ln1_w.data(), L.ln1_b.data(), hp_.ln_eps);
    });
    float* mixed[6];
    for (int i = 0; i < 6; ++i) mixed[i] = s.mixed[i].data();
    for (const Segment& seg : c.segments)
      token_shift(c, seg, s.a_in.data(), c.state(seg).slab(il * kSlabsPerLayer), L.lerp.data(), mixed, 6);
    const float* xr = s.mixed[0].data();
    const float* xw = s.mixed[1].data();
    const float* xk = s.mixed[2].data();
    const float* xv = s.mixed[3].data();
    const float* xa = s.mixed[4].data();
    const float* xg = s.mixed[5].data();

    matmul(L.receptance, xr, T, s.r.data(), *pool_);
    matmul(L.key, xk, T, s.k.data(), *pool_);
    matmul(L.value, xv, T, s.v.data(), *pool_);

    lora(c, L.w1, L.w2, xw, s.w.data(), [](float z) { return std::tanh(z); });
    for_elements(T, D, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) s.w[i] = std::exp(-kDecayScale * sigmoid(L.w0[i % D] + s.w[i]));
    });

    lora(c, L.a1, L.a2, xa, s.a.data(), [](float z) { return z; });
    for_elements(T, D, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) s.a[i] = sigmoid(L.a0[i % D] + s.a[i]);
    });

    if (il == 0) {
      std::memcpy(s.v_first.data(), s.v.data(), TD * sizeof(float));
    } else {
      lora(c, L.v1, L.v2, xv, s.y.data(), [](float z) { return z; });
      for_elements(T, D, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          float mix = sigmoid(L.v0[i % D] + s.y[i]);
          s.v[i] += (s.v_first[i] - s.v[i]) * mix;
        }
      });
    }

    lora(c, L.g1, L.g2, xg, s.g.data(), [](float z) { return sigmoid(z); });

    for_rows(T, [&](int64_t t0, int64_t t1) { normalize_keys(s, L, t0, t1); });

    for (const Segment& seg : c.segments) wkv7(s, seg, c.state(seg).slab(il * kSlabsPerLayer + 2));

    for_rows(T, [&](int64_t t0, int64_t t1) { group_norm_bonus_gate(s, L, t0, t1); });
    matmul(L.output, s.y.data(), T, s.out.data(), *pool_);
    add_inplace(s.x.data(), s.out.data(), TD);
  }

  // kk = per-head L2-normalised k * k_k; then k += k * (a - 1) * k_a.
  void normalize_keys(Rwkv7Buffers& s, const Rwkv7Layer& L, int64_t t0, int64_t t1) const {
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
  void group_norm_bonus_gate(Rwkv7Buffers& s, const Rwkv7Layer& L, int64_t t0, int64_t t1) const {
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

  // The WKV-7 recurrence for one segment (tensor/wkv7.h), heads split across
  // threads. The state of each head is stored key-major (S[j][i]).
  void wkv7(Rwkv7Buffers& s, const Segment& seg, float* state) const {
    const int64_t N = hp_.head_size;
    pool_->parallel_for(hp_.n_head, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t off = seg.row0 * hp_.n_embd + h * N;
        Wkv7Inputs in{s.r.data() + off, s.w.data() + off, s.k.data() + off,  s.v.data() + off,
                      s.kk.data() + off, s.a.data() + off, s.y.data() + off, hp_.n_embd};
        wkv7_head(state + h * N * N, N, seg.n, in);
      }
    });
  }

  void channel_mix(const Rwkv7Chunk& c, int64_t il) const {
    const Rwkv7Layer& L = layers_[static_cast<size_t>(il)];
    Rwkv7Buffers& s = c.s;
    const int64_t D = hp_.n_embd, T = c.T;
    for_rows(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        layer_norm(s.x.data() + t * D, s.f_in.data() + t * D, D, L.ln2_w.data(), L.ln2_b.data(), hp_.ln_eps);
    });
    float* mixed[1] = {s.mixed[0].data()};
    for (const Segment& seg : c.segments)
      token_shift(c, seg, s.f_in.data(), c.state(seg).slab(il * kSlabsPerLayer + 1), L.cm_lerp_k.data(), mixed, 1);
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

  int64_t max_batch_;
  Rwkv7Hparams hp_;
  Matrix token_embd_, head_;
  std::vector<float> ln0_w_, ln0_b_, out_norm_w_, out_norm_b_;
  std::vector<Rwkv7Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> load_rwkv7(std::shared_ptr<const gguf::File> file, const LoadOptions& options) {
  return std::make_unique<Rwkv7Model>(std::move(file), options);
}

}  // namespace flatline
