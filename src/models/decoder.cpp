#include "models/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "models/blocks/common.h"
#include "models/weights.h"
#include "tensor/vector_ops.h"
#include "util/error.h"

namespace flatline {

namespace {

// Output rows (logits or hidden states) are computed this many at a time, so
// the buffer for them stays small even for large vocabularies.
constexpr int64_t kOutputRowsPerPass = 16;
constexpr int64_t kMaxConvKernel = 8;
constexpr int64_t kMaxHeadDim = 256;

struct LayerWeights {
  std::vector<float> mixer_norm, ffn_norm, post_mixer_norm, post_ffn_norm;
  AttentionLayer attention;
  int64_t kv_layer = -1;  // attention: its KV slot in loop 0
  Mamba1Weights mamba1;
  Mamba2Weights mamba2;
  int64_t slab = -1;  // first recurrent slab of a Mamba layer
  FfnWeights ffn;
  MoeWeights moe;
};

class DecoderWorkspace final : public Workspace {
 public:
  DecoderWorkspace(int threads, int64_t max_group, int64_t max_kv_heads, int64_t max_dk, int64_t max_dv)
      : attention(threads, max_group * max_kv_heads, max_kv_heads, max_dk, max_dv) {}
  uint64_t bytes() const override { return scratch.bytes() + attention.bytes(); }

  Scratch scratch;
  AttentionScratch attention;
  std::vector<Segment> segments;
  std::vector<OutputRow> outputs;
  std::vector<Segment> runs;   // looped models: the segments still computed
  std::vector<int64_t> rows;   // looped models: chunk row of each computed row
  std::vector<Segment> kept;
};

std::string layer_name(int64_t l) { return "layer " + std::to_string(l); }

class DecoderModel final : public Model {
 public:
  DecoderModel(std::shared_ptr<const gguf::File> file, const LoadOptions& options, DecoderConfig config)
      : cfg_(std::move(config)), max_batch_(options.max_batch) {
    file_ = std::move(file);
    pool_ = options.pool;
    if (!pool_) throw Error(cfg_.arch + ": LoadOptions.pool is required");
    if (max_batch_ < 1) throw Error("max_batch must be at least 1, found " + std::to_string(max_batch_));
    check_config(options.kv_type);
    for (const auto& spec : cfg_.ropes) ropes_.emplace_back(spec);
    WeightReader reader(*file_);
    load_weights(reader);
    set_layout(make_layout(options));
    fill_model_info(info_, *file_, cfg_.arch, reader);
    info_.n_vocab = cfg_.n_vocab;
    info_.n_embd = cfg_.n_embd;
    info_.n_layer = static_cast<int64_t>(cfg_.layers.size());
    info_.n_ctx_train = cfg_.n_ctx_train;
    info_.n_loops = cfg_.n_loops;
    info_.has_exit_gate = !cfg_.exit_gate_weight.empty();
    info_.loop_exit = cfg_.exit;
    traits_.causal = cfg_.causal;
    traits_.generation = cfg_.causal ? GenerationKind::Autoregressive : GenerationKind::MaskedDiffusion;
    traits_.prefix_reusable = cfg_.causal;
    traits_.trained_context = cfg_.n_ctx_train;
  }

  std::unique_ptr<Workspace> new_workspace() const override {
    return std::make_unique<DecoderWorkspace>(pool_->size(), max_group_, max_kv_heads_, max_dk_, max_dv_);
  }

  uint64_t workspace_bytes() const override {
    const uint64_t rows = static_cast<uint64_t>(max_batch_);
    const uint64_t out = static_cast<uint64_t>(kOutputRowsPerPass) * static_cast<uint64_t>(cfg_.n_vocab + cfg_.n_embd);
    const AttentionScratch probe(pool_->size(), max_group_ * max_kv_heads_, max_kv_heads_, max_dk_, max_dv_);
    return (rows * floats_per_row() + out) * sizeof(float) + (max_kv_heads_ > 0 ? probe.bytes() : 0);
  }

  uint64_t canvas_bytes(int64_t rows) const override {
    if (cfg_.causal || rows <= 0) return 0;
    const uint64_t extra_rows = rows > max_batch_ ? static_cast<uint64_t>(rows - max_batch_) : 0;
    const uint64_t logits = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cfg_.n_vocab);
    return (extra_rows * floats_per_row() + logits) * sizeof(float);
  }

  // Scratch floats one row of a chunk takes in the widest layer.
  uint64_t floats_per_row() const {
    int64_t per_row = 3 * cfg_.n_embd;
    for (const auto& s : cfg_.layers) {
      int64_t mixer = 0, ffn = 0;
      if (s.mixer == Mixer::Attention) mixer = attention_floats_per_row(s.attention);
      if (s.mixer == Mixer::Mamba1) mixer = 6 * s.mamba1.d_inner + 2 * s.mamba1.dt_rank + 2 * s.mamba1.d_state;
      if (s.mixer == Mixer::Mamba2) mixer = s.mamba2.in_rows() + s.mamba2.conv_channels() + s.mamba2.d_inner;
      if (s.ffn == FfnKind::Dense) ffn = 2 * s.n_ff;
      if (s.ffn == FfnKind::Moe) ffn = 2 * std::max(s.n_ff, s.n_ff_shared) + s.moe.n_expert + 2 * cfg_.n_embd * s.moe.n_used;
      per_row = std::max(per_row, 3 * cfg_.n_embd + mixer + ffn);
    }
    for (const auto& r : ropes_) per_row += r.spec().n_rot;
    return static_cast<uint64_t>(per_row);
  }

  void forward(const ForwardArgs& args, Workspace& ws_base) const override {
    validate(args);
    auto* ws = dynamic_cast<DecoderWorkspace*>(&ws_base);
    if (!ws) throw Error(cfg_.arch + ": the workspace was made by another model");
    if (args.mask != AttentionMask::Causal || !cfg_.causal) {
      forward_bidirectional(args, *ws);
      return;
    }
    for_each_chunk(args, max_batch_, ws->segments, [&](std::span<const Segment> segs, int64_t rows) {
      run_chunk(args, *ws, segs, rows);
      for (const Segment& s : segs) {
        ModelState& st = *args.sequences[s.seq].state;
        st.advance(s.n);
        for (int64_t l = 0; l < st.kv().n_layers(); ++l) st.kv().release_unseen(l, st.n_past());
      }
    });
  }

 private:
  void check_config(DType kv_type) const;
  void load_weights(WeightReader& r);
  void load_attention(WeightReader& r, int64_t l, LayerWeights& w, int64_t kv_layer);
  void load_mamba1(WeightReader& r, int64_t l, LayerWeights& w);
  void load_mamba2(WeightReader& r, int64_t l, LayerWeights& w);
  void load_ffn(WeightReader& r, int64_t l, LayerWeights& w);
  StateLayout make_layout(const LoadOptions& options) const;

  void run_chunk(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs, int64_t n) const;
  void forward_bidirectional(const ForwardArgs& args, DecoderWorkspace& ws) const;
  AttentionMask effective_mask(const ForwardArgs& args) const;
  void compute_ropes(Scratch& sc, std::span<const Segment> segs, int64_t n) const;
  void run_stack(const ChunkContext& ctx, float* x, int64_t kv_offset) const;
  void run_loops(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs, int64_t n, float* x) const;
  int64_t drop_exited(const ForwardArgs& args, DecoderWorkspace& ws, float* x, int64_t m, int64_t t,
                      const int32_t* exit_loop) const;
  void fill_later_loops(ModelState& state, int64_t pos, int64_t t, int64_t T) const;
  void fill_unrun_loops(const ForwardArgs& args, std::span<const Segment> segs, const int32_t* exit_loop,
                        int64_t loops) const;
  void embed(const ForwardArgs& args, std::span<const Segment> segs, float* x) const;
  void run_mixer(const ChunkContext& ctx, const LayerSpec& spec, const LayerWeights& w, AttentionMask mask,
                 int64_t kv_offset, const float* xn, float* out) const;
  void run_ffn(const ChunkContext& ctx, const LayerSpec& spec, const LayerWeights& w, const float* xn, float* out) const;
  // x holds the chunk's rows; normed_rows: already normed (looped models).
  void write_outputs(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs, const float* x,
                     bool normed_rows) const;

  DecoderConfig cfg_;
  int64_t max_batch_;
  std::vector<Rope> ropes_;
  std::vector<LayerWeights> layers_;
  Matrix tok_embd_, output_;
  std::vector<float> output_norm_, output_bias_;
  int64_t max_group_ = 1, max_kv_heads_ = 0, max_dk_ = 0, max_dv_ = 0;
  int64_t n_slabs_ = 0;
  int64_t n_attention_ = 0;  // attention layers (KV slots per loop)
};

void DecoderModel::check_config(DType kv_type) const {
  const std::string& path = file_->path();
  if (cfg_.n_embd <= 0 || cfg_.n_vocab <= 0 || cfg_.layers.empty())
    throw Error(path + ": embedding length, vocabulary and layer count must be positive");
  for (size_t r = 0; r < cfg_.ropes.size(); ++r) {
    const RopeSpec& rs = cfg_.ropes[r];
    if (rs.n_rot <= 0 || rs.n_rot % 2 != 0 || rs.n_rot > kMaxHeadDim)
      throw Error(path + ": rope dimension " + std::to_string(rs.n_rot) + " must be even, positive and at most " +
                  std::to_string(kMaxHeadDim));
    if (!rs.freq_factors.empty() && static_cast<int64_t>(rs.freq_factors.size()) != rs.n_rot / 2)
      throw Error(path + ": rope_freqs has " + std::to_string(rs.freq_factors.size()) + " values, expected " +
                  std::to_string(rs.n_rot / 2));
  }
  const int64_t kv_block = flatline::traits(kv_type).block_size;
  for (size_t l = 0; l < cfg_.layers.size(); ++l) {
    const LayerSpec& s = cfg_.layers[l];
    const std::string where = path + ": " + layer_name(static_cast<int64_t>(l)) + ": ";
    if (s.mixer == Mixer::Attention) {
      const AttentionConfig& a = s.attention;
      if (a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0 || a.n_head_kv > 256)
        throw Error(where + std::to_string(a.n_head) + " heads cannot share " + std::to_string(a.n_head_kv) +
                    " KV heads (at most 256)");
      if (a.head_dim_k <= 0 || a.head_dim_v <= 0 || a.head_dim_k > kMaxHeadDim || a.head_dim_v > kMaxHeadDim)
        throw Error(where + "head dims " + std::to_string(a.head_dim_k) + "/" + std::to_string(a.head_dim_v) +
                    " must be between 1 and " + std::to_string(kMaxHeadDim));
      if (a.head_dim_k % kv_block != 0 || a.head_dim_v % kv_block != 0)
        throw Error(std::string("KV cache type ") + flatline::traits(kv_type).name + " needs head dims that are multiples of " +
                    std::to_string(kv_block) + ", this model has " + std::to_string(a.head_dim_k) + " and " +
                    std::to_string(a.head_dim_v));
      if (a.window < 0 || a.window > (int64_t{1} << 40)) throw Error(where + "sliding window " + std::to_string(a.window) + " out of range");
      if (a.rope >= static_cast<int>(cfg_.ropes.size())) throw Error(where + "unknown rope");
      if (a.rope >= 0 && cfg_.ropes[a.rope].n_rot > a.head_dim_k)
        throw Error(where + "rope dimension " + std::to_string(cfg_.ropes[a.rope].n_rot) + " exceeds the head dim " +
                    std::to_string(a.head_dim_k));
    }
    if (s.mixer == Mixer::Mamba1) {
      const Mamba1Config& m = s.mamba1;
      if (m.d_inner <= 0 || m.d_state <= 0 || m.dt_rank <= 0 || m.d_conv < 1 || m.d_conv > kMaxConvKernel)
        throw Error(where + "Mamba sizes must be positive and the conv kernel at most " + std::to_string(kMaxConvKernel));
    }
    if (s.mixer == Mixer::Mamba2) {
      const Mamba2Config& m = s.mamba2;
      if (m.d_inner <= 0 || m.d_state <= 0 || m.n_head <= 0 || m.n_group <= 0 || m.d_conv < 1 ||
          m.d_conv > kMaxConvKernel || m.d_inner % m.n_head != 0 || m.n_head % m.n_group != 0 ||
          m.d_inner % m.n_group != 0 || m.head_dim() > kMaxHeadDim)
        throw Error(where + "inconsistent Mamba-2 sizes: d_inner " + std::to_string(m.d_inner) + ", heads " +
                    std::to_string(m.n_head) + ", groups " + std::to_string(m.n_group) + ", state " +
                    std::to_string(m.d_state) + ", conv " + std::to_string(m.d_conv));
    }
    if (s.ffn == FfnKind::Dense && s.n_ff <= 0) throw Error(where + "feed-forward length must be positive");
    if (s.ffn == FfnKind::Moe && (s.moe.n_expert <= 0 || s.moe.n_used <= 0 || s.moe.n_used > s.moe.n_expert || s.n_ff <= 0))
      throw Error(where + "mixture of experts needs 1 <= experts used (" + std::to_string(s.moe.n_used) +
                  ") <= experts (" + std::to_string(s.moe.n_expert) + ") and a positive expert width");
  }
}

void DecoderModel::load_weights(WeightReader& r) {
  const int64_t E = cfg_.n_embd, V = cfg_.n_vocab;
  tok_embd_ = r.embedding("token_embd.weight", E, V);
  output_norm_ = r.vector("output_norm.weight", E);
  output_bias_ = r.optional_vector("output.bias", V);
  if (r.has("output.weight")) {
    output_ = r.matrix("output.weight", E, V);
  } else {
    output_ = tok_embd_;
    r.count_tied_head(tok_embd_);
  }
  layers_.resize(cfg_.layers.size());
  int64_t kv_layer = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t l = static_cast<int64_t>(i);
    const LayerSpec& spec = cfg_.layers[i];
    LayerWeights& w = layers_[i];
    const std::string p = "blk." + std::to_string(l) + ".";
    if (spec.mixer != Mixer::None) w.mixer_norm = r.vector(p + "attn_norm.weight", E);
    switch (spec.mixer) {
      case Mixer::Attention:
        load_attention(r, l, w, kv_layer++);
        ++n_attention_;
        break;
      case Mixer::Mamba1: load_mamba1(r, l, w); break;
      case Mixer::Mamba2: load_mamba2(r, l, w); break;
      case Mixer::None: break;
    }
    if (spec.ffn != FfnKind::None) {
      // A layer that is only an FFN (Nemotron-H's MLP layers) keeps its one
      // norm under the mixer's name.
      w.ffn_norm = r.vector(p + (spec.mixer == Mixer::None ? "attn_norm.weight" : "ffn_norm.weight"), E);
      load_ffn(r, l, w);
    }
    if (cfg_.post_norms) {
      if (spec.mixer != Mixer::None) w.post_mixer_norm = r.vector(p + "post_attention_norm.weight", E);
      if (spec.ffn != FfnKind::None) w.post_ffn_norm = r.vector(p + "post_ffw_norm.weight", E);
    }
  }
}

void DecoderModel::load_attention(WeightReader& r, int64_t l, LayerWeights& w, int64_t kv_layer) {
  const AttentionConfig& c = cfg_.layers[l].attention;
  const std::string p = "blk." + std::to_string(l) + ".";
  const int64_t E = cfg_.n_embd;
  const int64_t q_dim = c.n_head * c.head_dim_k, k_dim = c.n_head_kv * c.head_dim_k;
  const int64_t v_dim = c.n_head_kv * c.head_dim_v, o_dim = c.n_head * c.head_dim_v;
  AttentionWeights& a = w.attention.weights;
  a.q = r.matrix(p + "attn_q.weight", E, q_dim);
  a.k = r.matrix(p + "attn_k.weight", E, k_dim);
  a.v = r.matrix(p + "attn_v.weight", E, v_dim);
  a.o = r.matrix(p + "attn_output.weight", o_dim, E);
  a.bq = r.optional_vector(p + "attn_q.bias", q_dim);
  a.bk = r.optional_vector(p + "attn_k.bias", k_dim);
  a.bv = r.optional_vector(p + "attn_v.bias", v_dim);
  a.bo = r.optional_vector(p + "attn_output.bias", E);
  if (c.qk_norm) {
    a.q_norm = r.vector(p + "attn_q_norm.weight", c.head_dim_k);
    a.k_norm = r.vector(p + "attn_k_norm.weight", c.head_dim_k);
  }
  w.attention.config = c;
  w.attention.rope = c.rope >= 0 ? &ropes_[c.rope] : nullptr;
  w.kv_layer = kv_layer;
  max_group_ = std::max(max_group_, c.n_head / c.n_head_kv);
  max_kv_heads_ = std::max(max_kv_heads_, c.n_head_kv);
  max_dk_ = std::max(max_dk_, c.head_dim_k);
  max_dv_ = std::max(max_dv_, c.head_dim_v);
}

// The file's conv weight {d_conv, channels} as taps [d_conv][channels].
std::vector<float> conv_taps(WeightReader& r, const std::string& name, int64_t d_conv, int64_t channels) {
  const std::vector<float> w = r.vector(name, d_conv * channels);
  std::vector<float> taps(w.size());
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < d_conv; ++k) taps[k * channels + c] = w[c * d_conv + k];
  return taps;
}

void DecoderModel::load_mamba1(WeightReader& r, int64_t l, LayerWeights& w) {
  const Mamba1Config& c = cfg_.layers[l].mamba1;
  const std::string p = "blk." + std::to_string(l) + ".";
  const int64_t E = cfg_.n_embd, Di = c.d_inner, N = c.d_state, R = c.dt_rank;
  Mamba1Weights& m = w.mamba1;
  m.in = r.matrix(p + "ssm_in.weight", E, 2 * Di);
  m.conv_taps = conv_taps(r, p + "ssm_conv1d.weight", c.d_conv, Di);
  m.conv_bias = r.optional_vector(p + "ssm_conv1d.bias", Di);
  if (m.conv_bias.empty()) m.conv_bias.assign(static_cast<size_t>(Di), 0.0f);
  m.x_proj = r.matrix(p + "ssm_x.weight", Di, R + 2 * N);
  m.dt_proj = r.matrix(p + "ssm_dt.weight", R, Di);
  m.dt_bias = r.vector(p + "ssm_dt.bias", Di);
  const std::vector<float> a = r.vector(p + "ssm_a", N * Di);  // {d_state, d_inner}: a[c * N + s]
  m.A.resize(a.size());
  for (int64_t ch = 0; ch < Di; ++ch)
    for (int64_t s = 0; s < N; ++s) m.A[s * Di + ch] = a[ch * N + s];
  m.D = r.vector(p + "ssm_d", Di);
  m.out = r.matrix(p + "ssm_out.weight", Di, E);
  if (c.dt_bc_norm) {
    m.dt_norm = r.vector(p + "ssm_dt_norm.weight", R);
    m.b_norm = r.vector(p + "ssm_b_norm.weight", N);
    m.c_norm = r.vector(p + "ssm_c_norm.weight", N);
  }
  w.slab = n_slabs_;
  n_slabs_ += 2;
}

void DecoderModel::load_mamba2(WeightReader& r, int64_t l, LayerWeights& w) {
  const Mamba2Config& c = cfg_.layers[l].mamba2;
  const std::string p = "blk." + std::to_string(l) + ".";
  const int64_t E = cfg_.n_embd, H = c.n_head;
  Mamba2Weights& m = w.mamba2;
  m.in = r.matrix(p + "ssm_in.weight", E, c.in_rows());
  m.conv_taps = conv_taps(r, p + "ssm_conv1d.weight", c.d_conv, c.conv_channels());
  m.conv_bias = r.optional_vector(p + "ssm_conv1d.bias", c.conv_channels());
  if (m.conv_bias.empty()) m.conv_bias.assign(static_cast<size_t>(c.conv_channels()), 0.0f);
  m.dt_bias = r.vector(p + "ssm_dt.bias", H);
  m.A = r.vector(p + "ssm_a", H);
  m.D = r.vector(p + "ssm_d", H);
  m.norm = r.vector(p + "ssm_norm.weight", c.d_inner);
  m.out = r.matrix(p + "ssm_out.weight", c.d_inner, E);
  w.slab = n_slabs_;
  n_slabs_ += 2;
}

void DecoderModel::load_ffn(WeightReader& r, int64_t l, LayerWeights& w) {
  const LayerSpec& s = cfg_.layers[l];
  const std::string p = "blk." + std::to_string(l) + ".";
  const int64_t E = cfg_.n_embd, F = s.n_ff;
  if (s.ffn == FfnKind::Dense) {
    FfnWeights& f = w.ffn;
    if (s.gated) f.gate = r.matrix(p + "ffn_gate.weight", E, F);
    f.up = r.matrix(p + "ffn_up.weight", E, F);
    f.down = r.matrix(p + "ffn_down.weight", F, E);
    f.b_gate = s.gated ? r.optional_vector(p + "ffn_gate.bias", F) : std::vector<float>{};
    f.b_up = r.optional_vector(p + "ffn_up.bias", F);
    f.b_down = r.optional_vector(p + "ffn_down.bias", E);
    return;
  }
  MoeWeights& m = w.moe;
  const int64_t X = s.moe.n_expert, K = s.moe.n_used;
  m.router = r.matrix(p + "ffn_gate_inp.weight", E, X);
  m.selection_bias = r.optional_vector(p + "exp_probs_b.bias", X);
  const int64_t Lw = s.moe_latent > 0 ? s.moe_latent : E;
  if (s.moe_latent > 0) {
    m.latent_down = r.matrix(p + "ffn_latent_down.weight", E, Lw);
    m.latent_up = r.matrix(p + "ffn_latent_up.weight", Lw, E);
  }
  if (s.gated) m.gate = r.experts(p + "ffn_gate_exps.weight", Lw, F, X, K);
  m.up = r.experts(p + "ffn_up_exps.weight", Lw, F, X, K);
  m.down = r.experts(p + "ffn_down_exps.weight", F, Lw, X, K);
  if (s.n_ff_shared > 0) {
    const int64_t S = s.n_ff_shared;
    if (s.gated) m.shared.gate = r.matrix(p + "ffn_gate_shexp.weight", E, S);
    m.shared.up = r.matrix(p + "ffn_up_shexp.weight", E, S);
    m.shared.down = r.matrix(p + "ffn_down_shexp.weight", S, E);
  }
}

StateLayout DecoderModel::make_layout(const LoadOptions& options) const {
  StateLayout layout;
  layout.kv_type = options.kv_type;
  for (size_t l = 0; l < cfg_.layers.size(); ++l) {
    const LayerSpec& s = cfg_.layers[l];
    if (s.mixer == Mixer::Attention) {
      KvLayerShape k;
      k.n_head_kv = s.attention.n_head_kv;
      k.head_dim_k = s.attention.head_dim_k;
      k.head_dim_v = s.attention.head_dim_v;
      k.window = s.attention.window;
      k.keep_all = options.kv_swa_full;
      layout.kv_layers.push_back(k);
    } else if (s.mixer == Mixer::Mamba1) {
      for (int64_t v : mamba1_slabs(s.mamba1)) layout.recurrent_slabs.push_back(v);
    } else if (s.mixer == Mixer::Mamba2) {
      for (int64_t v : mamba2_slabs(s.mamba2)) layout.recurrent_slabs.push_back(v);
    }
  }
  // Looped models: a KV slot per (loop, attention layer), loop-major.
  if (cfg_.n_loops > 1 && !cfg_.kv_share_last) {
    const std::vector<KvLayerShape> one = layout.kv_layers;
    for (int64_t t = 1; t < cfg_.n_loops; ++t) layout.kv_layers.insert(layout.kv_layers.end(), one.begin(), one.end());
  }
  return layout;
}

void DecoderModel::embed(const ForwardArgs& args, std::span<const Segment> segs, float* x) const {
  const int64_t E = cfg_.n_embd;
  for (const Segment& s : segs) {
    const SequenceInput& in = args.sequences[s.seq];
    for (int64_t i = 0; i < s.n; ++i) {
      float* row = x + (s.row0 + i) * E;
      dequantize_row(tok_embd_.type, tok_embd_.row(in.tokens[s.token0 + i]), row, E);
      if (cfg_.embedding_scale != 1.0f) scale_inplace(row, cfg_.embedding_scale, E);
    }
  }
}

void DecoderModel::run_mixer(const ChunkContext& ctx, const LayerSpec& spec, const LayerWeights& w,
                             AttentionMask mask, int64_t kv_offset, const float* xn, float* out) const {
  switch (spec.mixer) {
    case Mixer::Attention: {
      const int rope = spec.attention.rope;
      const float* cos = rope >= 0 ? ctx.scratch.floats(kSlotRope + 2 * rope, 0) : nullptr;
      const float* sin = rope >= 0 ? ctx.scratch.floats(kSlotRope + 2 * rope + 1, 0) : nullptr;
      attention_forward(ctx, w.attention, w.kv_layer + kv_offset, mask, cfg_.norm_eps, cos, sin, xn, out);
      break;
    }
    case Mixer::Mamba1: mamba1_forward(ctx, spec.mamba1, w.mamba1, w.slab, cfg_.norm_eps, xn, out); break;
    case Mixer::Mamba2: mamba2_forward(ctx, spec.mamba2, w.mamba2, w.slab, cfg_.norm_eps, xn, out); break;
    case Mixer::None: break;
  }
}

void DecoderModel::run_ffn(const ChunkContext& ctx, const LayerSpec& spec, const LayerWeights& w, const float* xn,
                           float* out) const {
  if (spec.ffn == FfnKind::Dense) ffn_forward(ctx, w.ffn, spec.activation, xn, out);
  else if (spec.ffn == FfnKind::Moe) moe_forward(ctx, spec.moe, w.moe, spec.activation, xn, out);
}

// A non-causal model (diffusion) never attends causally: its Causal calls
// are Full ones.
AttentionMask DecoderModel::effective_mask(const ForwardArgs& args) const {
  return !cfg_.causal && args.mask == AttentionMask::Causal ? AttentionMask::Full : args.mask;
}

// Full and Cached masks: a sequence's rows must all be in one chunk (each
// sees all of them). Full leaves the states alone, or with store_kv makes
// them hold exactly the call's K/V; Cached rewrites K/V inside the state.
void DecoderModel::forward_bidirectional(const ForwardArgs& args, DecoderWorkspace& ws) const {
  const AttentionMask mask = effective_mask(args);
  int64_t longest = 1;
  for (const auto& in : args.sequences) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(in.tokens.size()));
    if (mask == AttentionMask::Full && args.store_kv) in.state->reset();
  }
  for_each_chunk(args, longest, ws.segments, [&](std::span<const Segment> segs, int64_t rows) {
    run_chunk(args, ws, segs, rows);
    if (mask == AttentionMask::Full && args.store_kv)
      for (const Segment& s : segs) args.sequences[s.seq].state->advance(s.n);
  });
}

void DecoderModel::compute_ropes(Scratch& sc, std::span<const Segment> segs, int64_t n) const {
  for (size_t r = 0; r < ropes_.size(); ++r) {
    const size_t floats = static_cast<size_t>(n * ropes_[r].half());
    ropes_[r].tables(segs, sc.floats(kSlotRope + 2 * r, floats), sc.floats(kSlotRope + 2 * r + 1, floats));
  }
}

// One pass of every layer over the ctx.n_rows rows of x (attention layers
// use the KV slots kv_offset + their own).
void DecoderModel::run_stack(const ChunkContext& ctx, float* x, int64_t kv_offset) const {
  const int64_t E = cfg_.n_embd, n = ctx.n_rows;
  float* xn = ctx.scratch.floats(kSlotXn, static_cast<size_t>(n * E));
  float* out = ctx.scratch.floats(kSlotOut, static_cast<size_t>(n * E));
  const float rs = cfg_.residual_scale;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& spec = cfg_.layers[l];
    const LayerWeights& w = layers_[l];
    if (spec.mixer != Mixer::None) {
      rms_norm_rows(x, w.mixer_norm.data(), xn, n, E, cfg_.norm_eps, *pool_);
      run_mixer(ctx, spec, w, effective_mask(ctx.args), kv_offset, xn, out);
      if (!w.post_mixer_norm.empty()) rms_norm_rows(out, w.post_mixer_norm.data(), out, n, E, cfg_.norm_eps, *pool_);
      add_scaled(x, out, n * E, rs);
    }
    if (spec.ffn != FfnKind::None) {
      rms_norm_rows(x, w.ffn_norm.data(), xn, n, E, cfg_.norm_eps, *pool_);
      run_ffn(ctx, spec, w, xn, out);
      if (!w.post_ffn_norm.empty()) rms_norm_rows(out, w.post_ffn_norm.data(), out, n, E, cfg_.norm_eps, *pool_);
      add_scaled(x, out, n * E, rs);
    }
  }
}

void DecoderModel::run_chunk(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs,
                             int64_t n) const {
  float* x = ws.scratch.floats(kSlotX, static_cast<size_t>(n * cfg_.n_embd));
  embed(args, segs, x);
  if (cfg_.n_loops > 1) {
    run_loops(args, ws, segs, n, x);
    return;
  }
  compute_ropes(ws.scratch, segs, n);
  run_stack(ChunkContext{args, segs, n, *pool_, ws.scratch, ws.attention}, x, 0);
  write_outputs(args, ws, segs, x, /*normed=*/false);
}

// The loops of a looped model over one chunk. Rows that stop (Skip mode) are
// dropped from the working set, which is kept compact: `runs` are the
// segments of the rows still computed, `rows` maps them to chunk rows.
void DecoderModel::run_loops(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs, int64_t n,
                             float* x) const {
  const int64_t E = cfg_.n_embd, T = cfg_.n_loops;
  const LoopExit& ex = args.loop_exit ? *args.loop_exit : cfg_.exit;
  const int64_t loops = ex.fixed_loops > 0 ? std::min(ex.fixed_loops, T) : T;
  const bool gate = ex.fixed_loops == 0 && !cfg_.exit_gate_weight.empty() && ex.threshold < 1.0f;
  float* final_h = ws.scratch.floats(kSlotLoopFinal, static_cast<size_t>(n * E));
  float* remaining = ws.scratch.floats(kSlotLoopRemaining, static_cast<size_t>(n));
  float* cdf = ws.scratch.floats(kSlotLoopCdf, static_cast<size_t>(n));
  int32_t* exit_loop = ws.scratch.ints(kIntLoopExit, static_cast<size_t>(n));
  std::fill(remaining, remaining + n, 1.0f);
  std::fill(cdf, cdf + n, 0.0f);
  std::fill(exit_loop, exit_loop + n, -1);
  std::vector<Segment>& runs = ws.runs;
  std::vector<int64_t>& rows = ws.rows;
  runs.assign(segs.begin(), segs.end());
  rows.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  int64_t m = n;  // rows still computed, compact at the front of x
  for (int64_t t = 0; t < loops && m > 0; ++t) {
    compute_ropes(ws.scratch, runs, m);
    run_stack(ChunkContext{args, std::span<const Segment>(runs), m, *pool_, ws.scratch, ws.attention}, x,
              cfg_.kv_share_last ? 0 : t * n_attention_);
    rms_norm_rows(x, output_norm_.data(), x, m, E, cfg_.norm_eps, *pool_);  // h_t; the next loop starts from it
    bool any_exit = false;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = rows[i];
      if (exit_loop[r] >= 0) continue;  // Select mode: already chose an earlier loop
      bool exits = t == loops - 1;
      if (gate && !exits) {
        const float lambda = sigmoid(dot_f32(cfg_.exit_gate_weight.data(), x + i * E, E) + cfg_.exit_gate_bias);
        cdf[r] += lambda * remaining[r];
        remaining[r] *= 1.0f - lambda;
        exits = cdf[r] >= ex.threshold;
      }
      if (!exits) continue;
      exit_loop[r] = static_cast<int32_t>(t);
      std::memcpy(final_h + r * E, x + i * E, E * sizeof(float));
      any_exit = true;
    }
    if (ex.mode == LoopExit::Mode::Skip && any_exit && t + 1 < loops) m = drop_exited(args, ws, x, m, t, exit_loop);
  }
  fill_unrun_loops(args, segs, exit_loop, loops);
  for (const Segment& s : segs)
    if (ForwardStats* st = args.sequences[s.seq].stats)
      for (int64_t i = 0; i < s.n; ++i) st->loops_used.push_back(exit_loop[s.row0 + i] + 1);
  write_outputs(args, ws, segs, final_h, /*normed=*/true);
}

// Skip mode: removes the rows that exited at loop t from the working set and
// fills their KV slots of loops t+1.. with loop t's K/V (what later tokens
// will attend to there). Returns the new row count.
int64_t DecoderModel::drop_exited(const ForwardArgs& args, DecoderWorkspace& ws, float* x, int64_t m, int64_t t,
                                  const int32_t* exit_loop) const {
  const int64_t E = cfg_.n_embd;
  std::vector<Segment>& runs = ws.runs;
  std::vector<int64_t>& rows = ws.rows;
  std::vector<Segment>& kept = ws.kept;  // one entry per run of consecutive kept rows
  kept.clear();
  int64_t out = 0;
  for (const Segment& run : runs) {
    Segment cur{};
    bool open = false;
    for (int64_t i = 0; i < run.n; ++i) {
      const int64_t ci = run.row0 + i, r = rows[ci];
      if (exit_loop[r] == t) {
        fill_later_loops(*args.sequences[run.seq].state, run.pos0 + i, t, cfg_.n_loops);
        open = false;
        continue;
      }
      if (!open) {
        cur = run;
        cur.row0 = out;
        cur.n = 0;
        cur.token0 = run.token0 + i;
        cur.pos0 = run.pos0 + i;
        kept.push_back(cur);
        open = true;
      }
      ++kept.back().n;
      if (out != ci) std::memcpy(x + out * E, x + ci * E, E * sizeof(float));
      rows[out++] = r;
    }
  }
  runs.swap(kept);
  return out;
}

// The KV slots of loops t+1 .. T-1 of one position get loop t's K/V.
void DecoderModel::fill_later_loops(ModelState& state, int64_t pos, int64_t t, int64_t T) const {
  if (cfg_.kv_share_last) return;
  KvPart& kv = state.kv();
  for (int64_t later = t + 1; later < T; ++later)
    for (int64_t a = 0; a < n_attention_; ++a) kv.copy_positions(t * n_attention_ + a, later * n_attention_ + a, pos, pos + 1);
}

// Loops no token of the chunk ran (fixed_loops < n_loops) still get K/V, so
// the state never holds positions without them whatever a later request asks.
void DecoderModel::fill_unrun_loops(const ForwardArgs& args, std::span<const Segment> segs, const int32_t* exit_loop,
                                    int64_t loops) const {
  if (loops >= cfg_.n_loops || cfg_.kv_share_last) return;
  for (const Segment& s : segs)
    for (int64_t i = 0; i < s.n; ++i)
      if (exit_loop[s.row0 + i] == loops - 1)
        fill_later_loops(*args.sequences[s.seq].state, s.pos0 + i, loops - 1, cfg_.n_loops);
}

void DecoderModel::write_outputs(const ForwardArgs& args, DecoderWorkspace& ws, std::span<const Segment> segs,
                                 const float* x, bool normed_rows) const {
  const int64_t E = cfg_.n_embd, V = cfg_.n_vocab;
  const int64_t width = args.hidden ? E : V;
  output_rows(args, segs, width, ws.outputs);
  const int64_t total = static_cast<int64_t>(ws.outputs.size());
  for (int64_t first = 0; first < total; first += kOutputRowsPerPass) {
    const int64_t m = std::min(kOutputRowsPerPass, total - first);
    float* normed = ws.scratch.floats(kSlotFinal, static_cast<size_t>(m * E));
    for (int64_t i = 0; i < m; ++i) {
      const float* row = x + ws.outputs[first + i].row * E;
      if (normed_rows) std::memcpy(normed + i * E, row, E * sizeof(float));
      else rms_norm(row, normed + i * E, E, output_norm_.data(), cfg_.norm_eps);
    }
    if (args.hidden) {
      for (int64_t i = 0; i < m; ++i) std::memcpy(ws.outputs[first + i].out, normed + i * E, E * sizeof(float));
      continue;
    }
    float* logits = ws.scratch.floats(kSlotLogits, static_cast<size_t>(m * V));
    project(output_, output_bias_, normed, m, logits, *pool_);
    for (int64_t i = 0; i < m; ++i) {
      float* row = logits + i * V;
      if (cfg_.logit_divisor != 1.0f) scale_inplace(row, 1.0f / cfg_.logit_divisor, V);
      if (cfg_.final_softcap > 0) {
        const float c = cfg_.final_softcap;
        for (int64_t j = 0; j < V; ++j) row[j] = c * std::tanh(row[j] / c);
      }
      std::memcpy(ws.outputs[first + i].out, row, V * sizeof(float));
    }
  }
}

}  // namespace

std::unique_ptr<Model> make_decoder(std::shared_ptr<const gguf::File> file, const LoadOptions& options,
                                    DecoderConfig config) {
  return std::make_unique<DecoderModel>(std::move(file), options, std::move(config));
}

DecoderConfig read_transformer_config(const gguf::File& file, const std::string& arch) {
  const std::string k = arch + ".";
  DecoderConfig c;
  c.arch = arch;
  const int64_t n_layer = checked_block_count(file, arch);
  c.n_embd = checked_size_key(file, k + "embedding_length");
  const std::vector<int64_t> n_ff = per_layer_ints(file, k + "feed_forward_length", n_layer);
  const std::vector<int64_t> n_head = per_layer_ints(file, k + "attention.head_count", n_layer);
  const std::vector<int64_t> n_head_kv = file.has(k + "attention.head_count_kv")
                                             ? per_layer_ints(file, k + "attention.head_count_kv", n_layer)
                                             : n_head;
  if (n_head[0] <= 0) throw Error(file.path() + ": " + k + "attention.head_count must be positive");
  const int64_t head_dim_k = checked_size_key(file, k + "attention.key_length", c.n_embd / n_head[0]);
  const int64_t head_dim_v = checked_size_key(file, k + "attention.value_length", head_dim_k);
  const int64_t n_rot = checked_size_key(file, k + "rope.dimension_count", head_dim_k);
  c.n_ctx_train = checked_size_key(file, k + "context_length", 0);
  c.norm_eps = static_cast<float>(file.get_float(k + "attention.layer_norm_rms_epsilon", 1e-5));
  const float attention_scale = static_cast<float>(file.get_float(k + "attention.scale", 0.0));
  c.final_softcap = static_cast<float>(file.get_float(k + "final_logit_softcapping", 0.0));
  const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd || embd->dims.size() != 2)
    throw Error(file.path() + ": missing tensor token_embd.weight (expected shape {" + std::to_string(c.n_embd) +
                ", n_vocab})");
  c.n_vocab = embd->dims[1];

  // Linear RoPE scaling (rope.scaling.factor, or the older rope.scale_linear);
  // Llama-3 scaling comes as the rope_freqs tensor instead.
  const std::string scaling = file.get_string(k + "rope.scaling.type", "none");
  if (scaling != "none" && scaling != "linear")
    throw Error(file.path() + ": RoPE scaling type '" + scaling + "' is not supported (only linear)");
  double factor = file.get_float(k + "rope.scaling.factor", 0.0);
  if (factor == 0.0) factor = file.get_float(k + "rope.scale_linear", 0.0);
  RopeSpec rope;
  rope.n_rot = n_rot;
  rope.base = file.get_float(k + "rope.freq_base", 10000.0);
  rope.scale = factor > 0 ? 1.0 / factor : 1.0;
  if (const gguf::TensorInfo* f = file.find_tensor("rope_freqs.weight")) {
    if (f->n_elements() != n_rot / 2 || f->type != DType::F32)
      throw Error(file.path() + ": tensor rope_freqs.weight: expected " + std::to_string(n_rot / 2) +
                  " F32 values, found " + f->shape_string() + " " + flatline::traits(f->type).name);
    rope.freq_factors.resize(static_cast<size_t>(n_rot / 2));
    std::memcpy(rope.freq_factors.data(), f->data, rope.freq_factors.size() * sizeof(float));
  }
  c.ropes.push_back(rope);
  for (int64_t l = 0; l < n_layer; ++l) {
    LayerSpec s;
    s.mixer = Mixer::Attention;
    s.attention.n_head = n_head[l];
    s.attention.n_head_kv = n_head_kv[l];
    s.attention.head_dim_k = head_dim_k;
    s.attention.head_dim_v = head_dim_v;
    s.attention.rope = 0;
    s.attention.scale = attention_scale;
    s.ffn = FfnKind::Dense;
    s.n_ff = n_ff[l];
    c.layers.push_back(s);
  }
  return c;
}

Mamba1Config read_mamba1_config(const gguf::File& file, const std::string& arch) {
  const std::string k = arch + ".ssm.";
  Mamba1Config m;
  m.d_conv = checked_size_key(file, k + "conv_kernel");
  m.d_inner = checked_size_key(file, k + "inner_size");
  m.d_state = checked_size_key(file, k + "state_size");
  m.dt_rank = checked_size_key(file, k + "time_step_rank");
  m.dt_bc_norm = file.get_bool(k + "dt_b_c_rms", false);
  return m;
}

Mamba2Config read_mamba2_config(const gguf::File& file, const std::string& arch) {
  const std::string k = arch + ".ssm.";
  Mamba2Config m;
  m.d_conv = checked_size_key(file, k + "conv_kernel");
  m.d_inner = checked_size_key(file, k + "inner_size");
  m.d_state = checked_size_key(file, k + "state_size");
  m.n_head = checked_size_key(file, k + "time_step_rank");
  m.n_group = checked_size_key(file, k + "group_count", 1);
  return m;
}

MoeConfig read_moe_config(const gguf::File& file, const std::string& arch, MoeGating default_gating,
                          bool default_normalize) {
  const std::string k = arch + ".";
  MoeConfig m;
  m.n_expert = checked_size_key(file, k + "expert_count", 0);
  m.n_used = checked_size_key(file, k + "expert_used_count", 0);
  m.normalize = file.get_bool(k + "expert_weights_norm", default_normalize);
  const double scale = file.get_float(k + "expert_weights_scale", 0.0);
  m.scale = scale == 0.0 ? 1.0f : static_cast<float>(scale);
  // llama.cpp's numbering: 1 softmax, 2 sigmoid.
  const int64_t gating = file.get_int(k + "expert_gating_func", 0);
  if (gating == 0) m.gating = default_gating;
  else if (gating == 1) m.gating = MoeGating::Softmax;
  else if (gating == 2) m.gating = MoeGating::Sigmoid;
  else throw Error(file.path() + ": " + k + "expert_gating_func " + std::to_string(gating) +
                   " is not supported (1 softmax, 2 sigmoid)");
  return m;
}

}  // namespace flatline
