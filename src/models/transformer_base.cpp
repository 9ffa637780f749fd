#include "models/transformer_base.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "models/kv_cache.h"
#include "tensor/attention.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flatline {

namespace {

// ---------------------------------------------------------------- weights

struct LayerWeights {
  Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
  std::vector<float> attn_norm, ffn_norm, q_norm, k_norm, post_attn_norm, post_ffn_norm;
  std::vector<float> bq, bk, bv, bo, b_gate, b_up, b_down;  // empty when the file has no bias
};

std::string shape_of(const std::vector<int64_t>& dims) {
  std::string s = "{";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "}";
}

class TensorReader {
 public:
  explicit TensorReader(const gguf::File& f) : file_(f) {}

  const gguf::TensorInfo* find(const std::string& name) const { return file_.find_tensor(name); }

  const gguf::TensorInfo& require(const std::string& name, const std::vector<int64_t>& dims) const {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) throw Error(file_.path() + ": missing tensor " + name + " (expected shape " + shape_of(dims) + ")");
    check(*t, dims);
    return *t;
  }

  Matrix matrix(const std::string& name, int64_t cols, int64_t rows) const {
    return to_matrix(require(name, {cols, rows}));
  }

  Matrix to_matrix(const gguf::TensorInfo& t) const {
    if (!traits(t.type).computable)
      throw Error(file_.path() + ": tensor " + t.name + " has type " + traits(t.type).name +
                  ", which flatline cannot compute");
    Matrix m;
    m.type = t.type;
    m.cols = t.cols();
    m.rows = t.rows();
    m.data = t.data;
    m.row_stride = row_bytes(t.type, m.cols);
    return m;
  }

  std::vector<float> vector(const std::string& name, int64_t n) const { return to_floats(require(name, {n})); }

  std::vector<float> optional_vector(const std::string& name, int64_t n) const {
    const gguf::TensorInfo* t = find(name);
    if (!t) return {};
    check(*t, {n});
    return to_floats(*t);
  }

 private:
  void check(const gguf::TensorInfo& t, const std::vector<int64_t>& dims) const {
    // A trailing 1 is the same shape in ggml ({n} == {n, 1}).
    std::vector<int64_t> found = t.dims;
    while (found.size() > dims.size() && found.back() == 1) found.pop_back();
    if (found != dims)
      throw Error(file_.path() + ": tensor " + t.name + ": expected shape " + shape_of(dims) + ", found " +
                  shape_of(t.dims));
  }

  std::vector<float> to_floats(const gguf::TensorInfo& t) const {
    if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16)
      throw Error(file_.path() + ": tensor " + t.name + ": expected type F32, F16 or BF16, found " +
                  traits(t.type).name);
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    dequantize_row(t.type, t.data, out.data(), t.n_elements());
    return out;
  }

  const gguf::File& file_;
};

// ---------------------------------------------------------------- math helpers

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

// 0.5 x (1 + tanh(y)) with y = sqrt(2/pi) (x + 0.044715 x^3), written as
// x / (1 + exp(-2y)): the same function with one expf instead of tanhf.
float gelu_tanh(float x) {
  constexpr float kTwoSqrt2OverPi = 2.0f * 0.79788456080286535588f;
  return x / (1.0f + std::exp(-kTwoSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

// Element-wise work smaller than this runs on the calling thread: waking the
// pool costs more than it saves (decode steps are full of such small loops).
constexpr int64_t kMinParallelElements = 32768;

template <typename F>
void maybe_parallel(ThreadPool& pool, int64_t n_items, int64_t elements_per_item, F&& fn) {
  if (n_items * elements_per_item < kMinParallelElements) fn(int64_t{0}, n_items);
  else pool.parallel_chunks(n_items, (n_items + 4 * pool.size() - 1) / (4 * pool.size()), fn);
}

// Adds the wall time of its scope to a counter (for forward_times()).
class ScopedTimer {
 public:
  explicit ScopedTimer(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

// ---------------------------------------------------------------- state

class TransformerState : public ModelState {
 public:
  TransformerState(DType kv_type, std::vector<KvLayerShape> layers, int64_t n_ctx)
      : kv_(kv_type, std::move(layers)), kept_from_(kv_.layers().size(), 0) {
    n_ctx_ = n_ctx;
  }

  std::unique_ptr<ModelState> clone() const override {
    auto copy = std::make_unique<TransformerState>(kv_.type(), kv_.layers(), n_ctx_);
    for (size_t l = 0; l < kv_.layers().size(); ++l) {
      const int64_t lo = kept_lo(l);
      copy->kv_.copy_positions(kv_, static_cast<int64_t>(l), lo, n_past_);
      copy->kept_from_[l] = lo;
    }
    copy->n_past_ = n_past_;
    return copy;
  }

  void reset() override {
    n_past_ = 0;
    std::fill(kept_from_.begin(), kept_from_.end(), 0);
  }

  size_t memory_bytes() const override { return static_cast<size_t>(bytes_for(kv_.type(), kv_.layers())); }
  static uint64_t bytes_for(DType type, const std::vector<KvLayerShape>& layers) {
    return KvCache::bytes_for(type, layers) + sizeof(TransformerState) + layers.size() * sizeof(int64_t);
  }

  // Payload: u32 format, u32 KV type, i64 n_past, u32 n_layer, then per layer
  // i64 first saved position and the K/V rows of [first, n_past). Sliding-
  // window layers save only the window - 1 positions the next token sees.
  void save(std::vector<uint8_t>& out) const override {
    out.clear();
    put<uint32_t>(out, kFormat);
    put<uint32_t>(out, static_cast<uint32_t>(kv_.type()));
    put<int64_t>(out, n_past_);
    put<uint32_t>(out, static_cast<uint32_t>(kv_.layers().size()));
    for (size_t l = 0; l < kv_.layers().size(); ++l) {
      const int64_t lo = save_lo(l, n_past_);
      put<int64_t>(out, lo);
      kv_.append_positions(out, static_cast<int64_t>(l), lo, n_past_);
    }
  }

  void load(std::span<const uint8_t> in) override {
    // Validate everything before touching the state, so a bad payload leaves it unchanged.
    size_t at = 0;
    const uint32_t format = get<uint32_t>(in, at);
    if (format != kFormat)
      throw Error("transformer state: expected format " + std::to_string(kFormat) + ", found " + std::to_string(format));
    const uint32_t type = get<uint32_t>(in, at);
    if (type != static_cast<uint32_t>(kv_.type()))
      throw Error(std::string("transformer state: KV type of this context is ") + traits(kv_.type()).name +
                  ", the saved state's type id is " + std::to_string(type));
    const int64_t n_past = get<int64_t>(in, at);
    if (n_past < 0 || n_past > n_ctx_)
      throw Error("transformer state: saved state holds " + std::to_string(n_past) +
                  " tokens, this context fits " + std::to_string(n_ctx_));
    const uint32_t n_layer = get<uint32_t>(in, at);
    if (n_layer != kv_.layers().size())
      throw Error("transformer state: expected " + std::to_string(kv_.layers().size()) + " layers, found " +
                  std::to_string(n_layer));
    std::vector<int64_t> first(n_layer);
    std::vector<size_t> offset(n_layer);
    for (uint32_t l = 0; l < n_layer; ++l) {
      first[l] = get<int64_t>(in, at);
      const int64_t expected = save_lo(l, n_past);
      if (first[l] != expected)
        throw Error("transformer state: layer " + std::to_string(l) + " should start at position " +
                    std::to_string(expected) + ", found " + std::to_string(first[l]));
      offset[l] = at;
      const uint64_t bytes = kv_.payload_bytes(l, n_past - first[l]);
      if (in.size() - at < bytes)
        throw Error("transformer state: payload too short: layer " + std::to_string(l) + " needs " +
                    std::to_string(bytes) + " bytes, " + std::to_string(in.size() - at) + " remain");
      at += bytes;
    }
    if (at != in.size())
      throw Error("transformer state: expected " + std::to_string(at) + " bytes, found " + std::to_string(in.size()));
    for (uint32_t l = 0; l < n_layer; ++l) {
      kv_.read_positions(in.subspan(offset[l]), l, first[l], n_past);
      kept_from_[l] = first[l];
    }
    n_past_ = n_past;
  }

  bool truncate(int64_t n_tokens) override {
    if (n_tokens < 0 || n_tokens > n_past_) return false;
    // A ring layer must still hold what the next token at n_tokens will see.
    for (size_t l = 0; l < kv_.layers().size(); ++l)
      if (kept_lo(l) > visible_lo(l, n_tokens)) return false;
    for (size_t l = 0; l < kv_.layers().size(); ++l) kept_from_[l] = kept_lo(l);
    n_past_ = n_tokens;
    return true;
  }

  KvCache& kv() { return kv_; }
  void advance(int64_t n) { n_past_ += n; }
  void set_n_past_for_benchmark(int64_t n) {
    n_past_ = n;
    std::fill(kept_from_.begin(), kept_from_.end(), 0);
  }

 private:
  static constexpr uint32_t kFormat = 1;

  // Lowest position layer l still holds.
  int64_t kept_lo(size_t l) const {
    return std::max(kept_from_[l], n_past_ - kv_.layers()[l].capacity);
  }
  // Lowest position a query at position pos may see in layer l.
  int64_t visible_lo(size_t l, int64_t pos) const {
    const int64_t w = kv_.layers()[l].window;
    return w > 0 ? std::max<int64_t>(0, pos - w + 1) : 0;
  }
  int64_t save_lo(size_t l, int64_t n_past) const { return visible_lo(l, n_past); }

  template <typename T>
  static void put(std::vector<uint8_t>& out, T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  template <typename T>
  static T get(std::span<const uint8_t> in, size_t& at) {
    if (in.size() - at < sizeof(T))
      throw Error("transformer state: payload ends after " + std::to_string(in.size()) + " bytes, inside its header");
    T v;
    std::memcpy(&v, in.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }

  KvCache kv_;
  std::vector<int64_t> kept_from_;  // per layer: positions below were dropped (load, truncate)
};

// ---------------------------------------------------------------- model

class TransformerModel : public Model {
 public:
  TransformerModel(std::shared_ptr<const gguf::File> file, const LoadOptions& options, TransformerConfig config);

  std::unique_ptr<ModelState> new_state(int64_t n_ctx) const override;
  uint64_t state_bytes(int64_t n_ctx) const override {
    return TransformerState::bytes_for(kv_type_, kv_shapes(std::max<int64_t>(1, n_ctx)));
  }
  uint64_t scratch_bytes() const override { return scratch_bytes_; }
  uint64_t kv_bytes_per_token() const override;
  const ForwardTimes& times() const { return times_; }
  void reset_times() { times_ = ForwardTimes{}; }
  void forward(ModelState& state, std::span<const int32_t> tokens, LogitsMode mode, float* logits) override;

 private:
  struct RopeTable {
    std::vector<double> inv_freq;  // [n_rot / 2]
    std::vector<float> cos, sin;   // [max_batch][n_rot / 2] for the current chunk
  };

  void load_weights();
  void fill_info();
  void allocate_scratch();
  std::vector<KvLayerShape> kv_shapes(int64_t n_ctx) const;
  KvLayerShape kv_shape(size_t layer, int64_t n_ctx) const;
  TransformerState& state_of(ModelState& state) const;

  void forward_chunk(TransformerState& st, std::span<const int32_t> tokens, bool all_logits, bool want_logits,
                     float* logits);
  void embed(std::span<const int32_t> tokens);
  // Rows [first, n) of x_ carry on past layer l; the K and V of all n rows
  // are stored in any case.
  void attention_block(TransformerState& st, int64_t l, int64_t n, int64_t pos0, int64_t first);
  void ffn_block(int64_t l, int64_t n, int64_t first);
  void output(int64_t first_row, int64_t n_rows, float* logits);

  void project(const Matrix& w, const std::vector<float>& bias, const float* x, int64_t n, float* y);
  void norm_rows(const float* x, const std::vector<float>& w, float* y, int64_t n_rows, int64_t dim);
  void compute_rope_tables(int64_t pos0, int64_t n);
  // Rotates n rows of heads whose first row is chunk token `first_token`.
  void apply_rope(float* x, int64_t first_token, int64_t n, int64_t n_heads, int64_t head_dim,
                  const RopeTable& table) const;

  TransformerConfig cfg_;
  std::shared_ptr<ThreadPool> pool_;
  int64_t max_batch_;
  DType kv_type_;
  bool kv_swa_full_;

  Matrix tok_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  std::vector<RopeTable> ropes_;      // one per distinct (base, scale)
  std::vector<int> layer_rope_;       // index into ropes_ per layer

  // scratch, sized for max_batch tokens at load
  std::vector<float> x_, xn_, q_, k_, v_, attn_, proj_, gate_, up_;
  std::vector<KvRows> k_rows_, v_rows_;
  AttentionScratch attn_scratch_;
  uint64_t scratch_bytes_ = 0;
  ForwardTimes times_;
};

TransformerModel::TransformerModel(std::shared_ptr<const gguf::File> file, const LoadOptions& options,
                                   TransformerConfig config)
    : cfg_(std::move(config)),
      pool_(options.pool),
      max_batch_(options.max_batch),
      kv_type_(options.kv_type),
      kv_swa_full_(options.kv_swa_full) {
  file_ = std::move(file);
  if (!pool_) throw Error("transformer: LoadOptions.pool is required");
  if (max_batch_ < 1) throw Error("transformer: max_batch must be at least 1, found " + std::to_string(max_batch_));
  if (!kv_type_supported(kv_type_))
    throw Error(std::string("KV cache type must be F32, F16 or Q8_0, found ") + traits(kv_type_).name);
  const int64_t block = traits(kv_type_).block_size;
  if (cfg_.head_dim_k % block != 0 || cfg_.head_dim_v % block != 0)
    throw Error(std::string("KV cache type ") + traits(kv_type_).name + " needs head dims that are multiples of " +
                std::to_string(block) + ", this model has " + std::to_string(cfg_.head_dim_k) + " and " +
                std::to_string(cfg_.head_dim_v));
  if (cfg_.n_rot <= 0 || cfg_.n_rot % 2 != 0 || cfg_.n_rot > cfg_.head_dim_k)
    throw Error(file_->path() + ": rope dimension " + std::to_string(cfg_.n_rot) +
                " must be even and at most the head dim " + std::to_string(cfg_.head_dim_k));
  for (size_t l = 0; l < cfg_.layers.size(); ++l) {
    const auto& lc = cfg_.layers[l];
    if (lc.n_head <= 0 || lc.n_head_kv <= 0 || lc.n_head % lc.n_head_kv != 0)
      throw Error(file_->path() + ": layer " + std::to_string(l) + ": " + std::to_string(lc.n_head) +
                  " heads cannot share " + std::to_string(lc.n_head_kv) + " KV heads");
  }
  if (cfg_.attention_scale == 0) cfg_.attention_scale = static_cast<float>(1.0 / std::sqrt(double(cfg_.head_dim_k)));
  load_weights();
  fill_info();
  allocate_scratch();
}

void TransformerModel::load_weights() {
  const TensorReader r(*file_);
  const int64_t E = cfg_.n_embd, V = cfg_.n_vocab, F = cfg_.n_ff;
  tok_embd_ = r.matrix("token_embd.weight", E, V);
  output_norm_ = r.vector("output_norm.weight", E);
  output_ = r.find("output.weight") ? r.matrix("output.weight", E, V) : tok_embd_;

  std::vector<float> freq_factors;
  if (r.find("rope_freqs.weight")) freq_factors = r.vector("rope_freqs.weight", cfg_.n_rot / 2);

  layers_.resize(cfg_.layers.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto& lc = cfg_.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t q_dim = lc.n_head * cfg_.head_dim_k;
    const int64_t k_dim = lc.n_head_kv * cfg_.head_dim_k;
    const int64_t v_dim = lc.n_head_kv * cfg_.head_dim_v;
    const int64_t o_dim = lc.n_head * cfg_.head_dim_v;
    LayerWeights& w = layers_[l];
    w.attn_norm = r.vector(p + "attn_norm.weight", E);
    w.wq = r.matrix(p + "attn_q.weight", E, q_dim);
    w.wk = r.matrix(p + "attn_k.weight", E, k_dim);
    w.wv = r.matrix(p + "attn_v.weight", E, v_dim);
    w.wo = r.matrix(p + "attn_output.weight", o_dim, E);
    w.bq = r.optional_vector(p + "attn_q.bias", q_dim);
    w.bk = r.optional_vector(p + "attn_k.bias", k_dim);
    w.bv = r.optional_vector(p + "attn_v.bias", v_dim);
    w.bo = r.optional_vector(p + "attn_output.bias", E);
    if (cfg_.qk_norm) {
      w.q_norm = r.vector(p + "attn_q_norm.weight", cfg_.head_dim_k);
      w.k_norm = r.vector(p + "attn_k_norm.weight", cfg_.head_dim_k);
    }
    if (cfg_.post_norms) {
      w.post_attn_norm = r.vector(p + "post_attention_norm.weight", E);
      w.post_ffn_norm = r.vector(p + "post_ffw_norm.weight", E);
    }
    if (r.find(p + "ffn_gate_inp.weight"))
      throw Error(file_->path() + ": mixture-of-experts layers (" + p + "ffn_gate_inp.weight) are not supported");
    w.ffn_norm = r.vector(p + "ffn_norm.weight", E);
    w.w_gate = r.matrix(p + "ffn_gate.weight", E, F);
    w.w_up = r.matrix(p + "ffn_up.weight", E, F);
    w.w_down = r.matrix(p + "ffn_down.weight", F, E);
    w.b_gate = r.optional_vector(p + "ffn_gate.bias", F);
    w.b_up = r.optional_vector(p + "ffn_up.bias", F);
    w.b_down = r.optional_vector(p + "ffn_down.bias", E);
  }

  // RoPE: one frequency table per distinct (base, scale) among the layers.
  std::map<std::pair<double, double>, int> index;
  for (const auto& lc : cfg_.layers) {
    auto key = std::make_pair(lc.rope_base, lc.rope_scale);
    auto it = index.find(key);
    if (it == index.end()) {
      RopeTable t;
      for (int64_t i = 0; i < cfg_.n_rot / 2; ++i) {
        double f = lc.rope_scale * std::pow(lc.rope_base, -2.0 * double(i) / double(cfg_.n_rot));
        if (!freq_factors.empty()) f /= freq_factors[i];
        t.inv_freq.push_back(f);
      }
      it = index.emplace(key, static_cast<int>(ropes_.size())).first;
      ropes_.push_back(std::move(t));
    }
    layer_rope_.push_back(it->second);
  }
}

void TransformerModel::fill_info() {
  info_.architecture = cfg_.arch;
  info_.name = file_->get_string("general.name", std::filesystem::path(file_->path()).stem().string());
  info_.n_vocab = cfg_.n_vocab;
  info_.n_embd = cfg_.n_embd;
  info_.n_layer = static_cast<int64_t>(cfg_.layers.size());
  info_.n_ctx_train = cfg_.n_ctx_train;
  info_.recurrent = false;
  std::map<DType, uint64_t> bytes_by_type;
  for (const auto& t : file_->tensors()) {
    info_.n_params += static_cast<uint64_t>(t.n_elements());
    info_.weight_bytes += t.n_bytes;
    if (t.dims.size() >= 2) bytes_by_type[t.type] += t.n_bytes;
  }
  uint64_t best = 0;
  for (const auto& [type, bytes] : bytes_by_type)
    if (bytes > best) {
      best = bytes;
      info_.file_type = traits(type).name;
    }
  // A decode step reads every weight once, but only one row of an untied embedding.
  const uint64_t embd_bytes = tok_embd_.bytes();
  const bool tied = output_.data == tok_embd_.data;
  info_.bytes_per_token = info_.weight_bytes - (tied ? 0 : embd_bytes - tok_embd_.row_stride);
}

void TransformerModel::allocate_scratch() {
  int64_t max_head = 0, max_head_kv = 0, max_group = 0;
  for (const auto& lc : cfg_.layers) {
    max_head = std::max(max_head, lc.n_head);
    max_head_kv = std::max(max_head_kv, lc.n_head_kv);
    max_group = std::max(max_group, lc.n_head / lc.n_head_kv);
  }
  const int64_t B = max_batch_;
  const auto sz = [&](int64_t per_token) { return static_cast<size_t>(B * per_token); };
  x_.assign(sz(cfg_.n_embd), 0.0f);
  xn_.assign(sz(std::max(cfg_.n_embd, max_head * cfg_.head_dim_v)), 0.0f);
  q_.assign(sz(max_head * cfg_.head_dim_k), 0.0f);
  k_.assign(sz(max_head_kv * cfg_.head_dim_k), 0.0f);
  v_.assign(sz(max_head_kv * cfg_.head_dim_v), 0.0f);
  attn_.assign(sz(max_head * cfg_.head_dim_v), 0.0f);
  proj_.assign(sz(cfg_.n_embd), 0.0f);
  gate_.assign(sz(cfg_.n_ff), 0.0f);
  up_.assign(sz(cfg_.n_ff), 0.0f);
  for (auto& t : ropes_) {
    t.cos.assign(sz(cfg_.n_rot / 2), 0.0f);
    t.sin.assign(sz(cfg_.n_rot / 2), 0.0f);
  }
  k_rows_.resize(max_head_kv);
  v_rows_.resize(max_head_kv);
  attn_scratch_ = AttentionScratch(pool_->size(), max_group * max_head_kv, max_head_kv, cfg_.head_dim_k,
                                   cfg_.head_dim_v);
  size_t floats = x_.size() + xn_.size() + q_.size() + k_.size() + v_.size() + attn_.size() + proj_.size() +
                  gate_.size() + up_.size();
  for (const auto& t : ropes_) floats += t.cos.size() + t.sin.size();
  scratch_bytes_ = floats * sizeof(float) + attn_scratch_.bytes();
}

KvLayerShape TransformerModel::kv_shape(size_t layer, int64_t n_ctx) const {
  const TransformerLayerConfig& lc = cfg_.layers[layer];
  KvLayerShape s;
  s.n_head_kv = lc.n_head_kv;
  s.head_dim_k = cfg_.head_dim_k;
  s.head_dim_v = cfg_.head_dim_v;
  s.window = lc.window;
  // A window layer processing a chunk of up to max_batch tokens needs the
  // window - 1 positions before the chunk plus the chunk itself.
  s.capacity = lc.window > 0 && !kv_swa_full_ ? std::min(n_ctx, lc.window - 1 + max_batch_) : n_ctx;
  return s;
}

std::vector<KvLayerShape> TransformerModel::kv_shapes(int64_t n_ctx) const {
  std::vector<KvLayerShape> shapes;
  for (size_t l = 0; l < cfg_.layers.size(); ++l) shapes.push_back(kv_shape(l, n_ctx));
  return shapes;
}

uint64_t TransformerModel::kv_bytes_per_token() const {
  uint64_t bytes = 0;
  for (const auto& lc : cfg_.layers)
    if (lc.window == 0 || kv_swa_full_)
      bytes += static_cast<uint64_t>(lc.n_head_kv) * (row_bytes(kv_type_, cfg_.head_dim_k) + row_bytes(kv_type_, cfg_.head_dim_v));
  return bytes;
}

std::unique_ptr<ModelState> TransformerModel::new_state(int64_t n_ctx) const {
  if (n_ctx < 1) throw Error("transformer: n_ctx must be at least 1, found " + std::to_string(n_ctx));
  return std::make_unique<TransformerState>(kv_type_, kv_shapes(n_ctx), n_ctx);
}

TransformerState& TransformerModel::state_of(ModelState& state) const {
  auto* st = dynamic_cast<TransformerState*>(&state);
  if (!st) throw Error("transformer: the state was not made by a transformer model");
  // Compared layer by layer: forward() allocates nothing.
  bool same = st->kv().type() == kv_type_ && st->kv().layers().size() == cfg_.layers.size();
  for (size_t l = 0; same && l < cfg_.layers.size(); ++l) same = st->kv().layers()[l] == kv_shape(l, st->n_ctx());
  if (!same) throw Error("transformer: the state was made by a model of another shape or KV type");
  return *st;
}

// ---------------------------------------------------------------- forward

void TransformerModel::forward(ModelState& state, std::span<const int32_t> tokens, LogitsMode mode,
                               float* logits) {
  TransformerState& st = state_of(state);
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab)
      throw Error("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                  " is out of range (vocabulary size " + std::to_string(cfg_.n_vocab) + ")");
  if (st.n_past() + n > st.n_ctx())
    throw ContextOverflowError("context overflow: " + std::to_string(n) + " new tokens do not fit after the " +
                               std::to_string(st.n_past()) + " already in the context (n_ctx " +
                               std::to_string(st.n_ctx()) + "); at most " +
                               std::to_string(st.n_ctx() - st.n_past()) + " more tokens fit");
  if (mode != LogitsMode::None && !logits) throw Error("transformer: logits requested but no buffer given");
  // Nothing below throws: the checks above are all that can fail.
  ScopedTimer timer(times_.total);
  times_.tokens += n;
  for (int64_t start = 0; start < n; start += max_batch_) {
    const int64_t count = std::min(max_batch_, n - start);
    const bool last_chunk = start + count == n;
    const bool want = mode == LogitsMode::All || (mode == LogitsMode::Last && last_chunk);
    float* out = mode == LogitsMode::All ? logits + start * cfg_.n_vocab : logits;
    forward_chunk(st, tokens.subspan(start, count), mode == LogitsMode::All, want, out);
  }
}

void TransformerModel::forward_chunk(TransformerState& st, std::span<const int32_t> tokens, bool all_logits,
                                     bool want_logits, float* logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t pos0 = st.n_past();
  embed(tokens);
  compute_rope_tables(pos0, n);
  const int64_t n_layer = static_cast<int64_t>(layers_.size());
  for (int64_t l = 0; l < n_layer; ++l) {
    // After the last layer only the rows whose logits are wanted matter.
    const int64_t first = l + 1 < n_layer || all_logits ? 0 : want_logits ? n - 1 : n;
    attention_block(st, l, n, pos0, first);
    ffn_block(l, n, first);
  }
  st.advance(n);
  if (want_logits) {
    if (all_logits) output(0, n, logits);
    else output(n - 1, 1, logits);
  }
}

void TransformerModel::embed(std::span<const int32_t> tokens) {
  const int64_t E = cfg_.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) {
    float* x = x_.data() + t * E;
    dequantize_row(tok_embd_.type, tok_embd_.row(tokens[t]), x, E);
    if (cfg_.embedding_scale != 1.0f)
      for (int64_t i = 0; i < E; ++i) x[i] *= cfg_.embedding_scale;
  }
}

void TransformerModel::project(const Matrix& w, const std::vector<float>& bias, const float* x, int64_t n,
                               float* y) {
  ScopedTimer timer(times_.matmul);
  if (n == 1) matvec(w, x, y, *pool_);
  else matmul(w, x, n, y, *pool_);
  if (bias.empty()) return;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < w.rows; ++i) y[t * w.rows + i] += bias[i];
}

void TransformerModel::norm_rows(const float* x, const std::vector<float>& w, float* y, int64_t n_rows,
                                 int64_t dim) {
  const float eps = cfg_.rms_eps;
  maybe_parallel(*pool_, n_rows, dim, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rms_norm(x + r * dim, w.data(), y + r * dim, dim, eps);
  });
}

void TransformerModel::compute_rope_tables(int64_t pos0, int64_t n) {
  const int64_t half = cfg_.n_rot / 2;
  for (auto& t : ropes_) {
    for (int64_t i = 0; i < n; ++i) {
      const double pos = static_cast<double>(pos0 + i);
      for (int64_t j = 0; j < half; ++j) {
        const double theta = pos * t.inv_freq[j];
        t.cos[i * half + j] = static_cast<float>(std::cos(theta));
        t.sin[i * half + j] = static_cast<float>(std::sin(theta));
      }
    }
  }
}

void TransformerModel::apply_rope(float* x, int64_t first_token, int64_t n, int64_t n_heads, int64_t head_dim,
                                  const RopeTable& table) const {
  const int64_t half = cfg_.n_rot / 2;
  // Norm pairs (2j, 2j + 1); Neox pairs (j, j + n_rot/2).
  const int64_t stride = cfg_.rope_style == RopeStyle::Norm ? 2 : 1;
  const int64_t partner = cfg_.rope_style == RopeStyle::Norm ? 1 : half;
  for (int64_t t = 0; t < n; ++t) {
    const float* c = table.cos.data() + (first_token + t) * half;
    const float* s = table.sin.data() + (first_token + t) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t j = 0; j < half; ++j) {
        float* a = v + j * stride;
        float* b = a + partner;
        const float x0 = *a, x1 = *b;
        *a = x0 * c[j] - x1 * s[j];
        *b = x0 * s[j] + x1 * c[j];
      }
    }
  }
}

void TransformerModel::attention_block(TransformerState& st, int64_t l, int64_t n, int64_t pos0, int64_t first) {
  const LayerWeights& w = layers_[l];
  const TransformerLayerConfig& lc = cfg_.layers[l];
  const int64_t E = cfg_.n_embd, dk = cfg_.head_dim_k, dv = cfg_.head_dim_v;
  const int64_t m = n - first;  // query rows
  norm_rows(x_.data(), w.attn_norm, xn_.data(), n, E);
  project(w.wk, w.bk, xn_.data(), n, k_.data());
  project(w.wv, w.bv, xn_.data(), n, v_.data());
  if (cfg_.qk_norm) norm_rows(k_.data(), w.k_norm, k_.data(), n * lc.n_head_kv, dk);
  const RopeTable& rope = ropes_[layer_rope_[l]];
  apply_rope(k_.data(), 0, n, lc.n_head_kv, dk, rope);

  KvCache& kv = st.kv();
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < lc.n_head_kv; ++h) {
      kv_row_from_f32(kv.type(), k_.data() + (t * lc.n_head_kv + h) * dk, kv.k_row(l, h, pos0 + t), dk);
      kv_row_from_f32(kv.type(), v_.data() + (t * lc.n_head_kv + h) * dv, kv.v_row(l, h, pos0 + t), dv);
    }
  if (m == 0) return;

  project(w.wq, w.bq, xn_.data() + first * E, m, q_.data());
  if (cfg_.qk_norm) norm_rows(q_.data(), w.q_norm, q_.data(), m * lc.n_head, dk);
  apply_rope(q_.data(), first, m, lc.n_head, dk, rope);
  for (int64_t h = 0; h < lc.n_head_kv; ++h) {
    k_rows_[h] = kv.k_rows(l, h);
    v_rows_[h] = kv.v_rows(l, h);
  }
  AttentionArgs a;
  a.n_tokens = m;
  a.first_pos = pos0 + first;
  a.n_head = lc.n_head;
  a.n_head_kv = lc.n_head_kv;
  a.head_dim_k = dk;
  a.head_dim_v = dv;
  a.window = lc.window;
  a.scale = cfg_.attention_scale;
  a.q = q_.data();
  a.out = attn_.data();
  a.k = k_rows_.data();
  a.v = v_rows_.data();
  {
    ScopedTimer timer(times_.attention);
    attention(a, attn_scratch_, *pool_);
  }

  project(w.wo, w.bo, attn_.data(), m, proj_.data());
  if (cfg_.post_norms) norm_rows(proj_.data(), w.post_attn_norm, proj_.data(), m, E);
  float* x = x_.data() + first * E;
  for (int64_t i = 0; i < m * E; ++i) x[i] += proj_[i];
}

void TransformerModel::ffn_block(int64_t l, int64_t n, int64_t first) {
  const LayerWeights& w = layers_[l];
  const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
  const int64_t m = n - first;
  if (m == 0) return;
  float* x = x_.data() + first * E;
  norm_rows(x, w.ffn_norm, xn_.data(), m, E);
  project(w.w_gate, w.b_gate, xn_.data(), m, gate_.data());
  project(w.w_up, w.b_up, xn_.data(), m, up_.data());
  const bool gelu = cfg_.activation == FfnActivation::GeluTanh;
  maybe_parallel(*pool_, m * F, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) gate_[i] = (gelu ? gelu_tanh(gate_[i]) : silu(gate_[i])) * up_[i];
  });
  project(w.w_down, w.b_down, gate_.data(), m, proj_.data());
  if (cfg_.post_norms) norm_rows(proj_.data(), w.post_ffn_norm, proj_.data(), m, E);
  for (int64_t i = 0; i < m * E; ++i) x[i] += proj_[i];
}

void TransformerModel::output(int64_t first_row, int64_t n_rows, float* logits) {
  const int64_t E = cfg_.n_embd;
  norm_rows(x_.data() + first_row * E, output_norm_, xn_.data(), n_rows, E);
  const std::vector<float> no_bias;
  project(output_, no_bias, xn_.data(), n_rows, logits);
  if (cfg_.final_logit_softcap > 0) {
    const float c = cfg_.final_logit_softcap;
    for (int64_t i = 0; i < n_rows * cfg_.n_vocab; ++i) logits[i] = c * std::tanh(logits[i] / c);
  }
}

}  // namespace

std::unique_ptr<Model> make_transformer(std::shared_ptr<const gguf::File> file, const LoadOptions& options,
                                        TransformerConfig config) {
  return std::make_unique<TransformerModel>(std::move(file), options, std::move(config));
}

TransformerConfig read_base_config(const gguf::File& file, const std::string& arch) {
  const std::string k = arch + ".";
  TransformerConfig c;
  c.arch = arch;
  const int64_t n_layer = file.get_int(k + "block_count");
  if (n_layer < 1) throw Error(file.path() + ": " + k + "block_count must be at least 1, found " + std::to_string(n_layer));
  c.n_embd = file.get_int(k + "embedding_length");
  const std::vector<int64_t> n_ff = per_layer_ints(file, k + "feed_forward_length", n_layer);
  if (std::any_of(n_ff.begin(), n_ff.end(), [&](int64_t v) { return v != n_ff[0]; }))
    throw Error(file.path() + ": " + k + "feed_forward_length differs between layers, which is not supported");
  c.n_ff = n_ff[0];
  const std::vector<int64_t> n_head = per_layer_ints(file, k + "attention.head_count", n_layer);
  const std::vector<int64_t> n_head_kv = file.has(k + "attention.head_count_kv")
                                             ? per_layer_ints(file, k + "attention.head_count_kv", n_layer)
                                             : n_head;
  if (n_head[0] <= 0) throw Error(file.path() + ": " + k + "attention.head_count must be positive");
  c.head_dim_k = file.get_int(k + "attention.key_length", c.n_embd / n_head[0]);
  c.head_dim_v = file.get_int(k + "attention.value_length", c.head_dim_k);
  c.n_rot = file.get_int(k + "rope.dimension_count", c.head_dim_k);
  c.n_ctx_train = file.get_int(k + "context_length", 0);
  c.rms_eps = static_cast<float>(file.get_float(k + "attention.layer_norm_rms_epsilon", 1e-5));
  c.attention_scale = static_cast<float>(file.get_float(k + "attention.scale", 0.0));
  c.final_logit_softcap = static_cast<float>(file.get_float(k + "final_logit_softcapping", 0.0));
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
  const double base = file.get_float(k + "rope.freq_base", 10000.0);
  for (int64_t l = 0; l < n_layer; ++l) {
    TransformerLayerConfig lc;
    lc.n_head = n_head[l];
    lc.n_head_kv = n_head_kv[l];
    lc.rope_base = base;
    lc.rope_scale = factor > 0 ? 1.0 / factor : 1.0;
    c.layers.push_back(lc);
  }
  return c;
}

std::vector<int64_t> per_layer_ints(const gguf::File& file, const std::string& key, int64_t n_layer) {
  std::vector<int64_t> values = file.get(key).int_array();
  if (values.size() == 1) values.assign(static_cast<size_t>(n_layer), values[0]);
  if (static_cast<int64_t>(values.size()) != n_layer)
    throw Error(file.path() + ": metadata " + key + ": expected 1 or " + std::to_string(n_layer) +
                " values, found " + std::to_string(values.size()));
  return values;
}

ForwardTimes forward_times(const Model& model, bool reset) {
  auto* m = dynamic_cast<const TransformerModel*>(&model);
  if (!m) throw Error("forward_times: not a transformer model");
  ForwardTimes t = m->times();
  if (reset) const_cast<TransformerModel*>(m)->reset_times();
  return t;
}

void fill_state_for_benchmark(ModelState& state, int64_t n_tokens, uint64_t seed) {
  auto* st = dynamic_cast<TransformerState*>(&state);
  if (!st) throw Error("fill_state_for_benchmark: not a transformer state");
  if (n_tokens > st->n_ctx())
    throw Error("fill_state_for_benchmark: " + std::to_string(n_tokens) + " tokens do not fit in n_ctx " +
                std::to_string(st->n_ctx()));
  KvCache& kv = st->kv();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t l = 0; l < kv.layers().size(); ++l) {
    const KvLayerShape& s = kv.layers()[l];
    std::vector<float> row(static_cast<size_t>(std::max(s.head_dim_k, s.head_dim_v)));
    const int64_t rows = std::min(n_tokens, s.capacity);
    for (int64_t h = 0; h < s.n_head_kv; ++h)
      for (int64_t p = n_tokens - rows; p < n_tokens; ++p) {
        for (auto& v : row) v = normal(rng);
        kv_row_from_f32(kv.type(), row.data(), kv.k_row(l, h, p), s.head_dim_k);
        kv_row_from_f32(kv.type(), row.data(), kv.v_row(l, h, p), s.head_dim_v);
      }
  }
  st->set_n_past_for_benchmark(n_tokens);
}

}  // namespace flatline
