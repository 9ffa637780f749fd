// `flatline convert` for LlamaForCausalLM against outside truth: stories260K
// (a real trained Llama GGUF from ggml-org, ../shared/models/stories260K) is
// re-exported here to a Hugging Face directory (safetensors with the q/k
// rows put back in HF's rotate-half order, config.json, and a tokenizer.json
// equivalent of its SentencePiece vocabulary, built the way transformers'
// LlamaConverter builds one: BPE with byte fallback, merges ordered by the
// score of the merged piece). Converting that back must give the original
// tensors byte for byte, the same logits and the same token ids; quantized
// conversions must load and stay close to the F32 logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "convert_support.h"
#include "safetensors_support.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flatline {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Number of UTF-8 code points (Python's len of a str).
size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// transformers' SentencePieceExtractor for a BPE model: every split of a
// piece into two pieces of the vocabulary is a merge, ranked by the score of
// the merged piece (highest first), then by the lengths of the parts.
std::vector<std::pair<std::string, std::string>> spm_merges(const std::vector<std::string>& tokens,
                                                            const std::vector<float>& scores) {
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) id.emplace(tokens[i], static_cast<int64_t>(i));
  struct Merge {
    std::string l, r;
    float score;
  };
  std::vector<Merge> merges;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<Merge> local;
    const std::string& piece = tokens[t];
    for (size_t i = 1; i < piece.size(); ++i) {
      if ((static_cast<unsigned char>(piece[i]) & 0xC0) == 0x80) continue;  // inside a code point
      const std::string l = piece.substr(0, i), r = piece.substr(i);
      if (id.count(l) && id.count(r)) local.push_back({l, r, scores[t]});
    }
    std::stable_sort(local.begin(), local.end(),
                     [&](const Merge& a, const Merge& b) { return std::make_pair(id[a.l], id[a.r]) < std::make_pair(id[b.l], id[b.r]); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::make_tuple(a.score, code_points(a.l), code_points(a.r)) >
           std::make_tuple(b.score, code_points(b.l), code_points(b.r));
  });
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : merges) out.push_back({m.l, m.r});
  return out;
}

// tokenizer.json + tokenizer_config.json for a GGUF "llama" (SentencePiece) vocabulary.
void write_spm_tokenizer_json(const gguf::File& f, const std::string& dir) {
  std::vector<std::string> tokens;
  for (auto s : f.get("tokenizer.ggml.tokens").string_array()) tokens.emplace_back(s);
  const std::vector<float> scores = f.get("tokenizer.ggml.scores").float_array();
  const std::vector<int64_t> types = f.get("tokenizer.ggml.token_type").int_array();
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  ordered_json merges = ordered_json::array();
  for (const auto& [l, r] : spm_merges(tokens, scores)) merges.push_back({l, r});
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == 2 || types[i] == 3)
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const std::string space = "\xe2\x96\x81";
  ordered_json j;
  j["version"] = "1.0";
  j["added_tokens"] = added;
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", space}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},      {"dropout", nullptr},       {"unk_token", "<unk>"},
                {"fuse_unk", true},   {"byte_fallback", true},    {"vocab", vocab},
                {"merges", merges}};
  test::write_text(dir + "/tokenizer.json", j.dump(1));
  test::write_text(dir + "/tokenizer_config.json",
                   json({{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"add_bos_token", true},
                         {"add_eos_token", false}, {"tokenizer_class", "LlamaTokenizer"}})
                       .dump(1));
}

// The rows of a GGUF q/k matrix in Hugging Face's order: the inverse of
// llama.cpp's permute (HF row h*hd + j*hd/2 + i is GGUF row h*hd + 2*i + j).
std::vector<uint8_t> unpermute_rows(const gguf::TensorInfo& t, int64_t head_dim) {
  const size_t row = static_cast<size_t>(t.cols()) * 4;
  std::vector<uint8_t> out(t.n_bytes);
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < t.rows() / head_dim; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i)
        std::memcpy(out.data() + (h * head_dim + j * half + i) * row, t.data + (h * head_dim + 2 * i + j) * row, row);
  return out;
}

struct Exported {
  std::string dir;
  bool tied = false;
};

// stories260K.gguf -> a Hugging Face LlamaForCausalLM directory.
Exported export_llama_to_hf(const std::string& gguf_path, bool drop_lm_head = false) {
  const gguf::File f = gguf::File::open(gguf_path);
  const int64_t H = f.get_int("llama.embedding_length"), n_head = f.get_int("llama.attention.head_count");
  const int64_t n_kv = f.get_int("llama.attention.head_count_kv"), L = f.get_int("llama.block_count");
  const int64_t head_dim = H / n_head;
  const int64_t V = static_cast<int64_t>(f.get("tokenizer.ggml.tokens").array_size());
  Exported e;
  e.dir = test::temp_path(drop_lm_head ? "stories-hf-tied" : "stories-hf");
  std::filesystem::create_directories(e.dir);
  e.tied = drop_lm_head;
  json config = {{"architectures", {"LlamaForCausalLM"}},
                 {"model_type", "llama"},
                 {"hidden_size", H},
                 {"intermediate_size", f.get_int("llama.feed_forward_length")},
                 {"num_hidden_layers", L},
                 {"num_attention_heads", n_head},
                 {"num_key_value_heads", n_kv},
                 {"max_position_embeddings", f.get_int("llama.context_length")},
                 {"rms_norm_eps", f.get_float("llama.attention.layer_norm_rms_epsilon")},
                 {"rope_theta", f.get_float("llama.rope.freq_base", 10000.0)},
                 {"vocab_size", V},
                 {"bos_token_id", 1},
                 {"eos_token_id", 2},
                 {"tie_word_embeddings", drop_lm_head},
                 {"torch_dtype", "float32"}};
  test::write_text(e.dir + "/config.json", config.dump(1));
  std::vector<test::StTensor> tensors;
  auto add = [&](const std::string& hf, const gguf::TensorInfo& t, std::vector<uint8_t> bytes = {}) {
    std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());
    if (bytes.empty()) bytes.assign(t.data, t.data + t.n_bytes);
    tensors.push_back({hf, "F32", shape, std::move(bytes)});
  };
  add("model.embed_tokens.weight", f.tensor("token_embd.weight"));
  add("model.norm.weight", f.tensor("output_norm.weight"));
  if (!drop_lm_head) add("lm_head.weight", f.tensor("output.weight"));
  for (int64_t i = 0; i < L; ++i) {
    const std::string h = "model.layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
    add(h + "input_layernorm.weight", f.tensor(g + "attn_norm.weight"));
    add(h + "self_attn.q_proj.weight", f.tensor(g + "attn_q.weight"), unpermute_rows(f.tensor(g + "attn_q.weight"), head_dim));
    add(h + "self_attn.k_proj.weight", f.tensor(g + "attn_k.weight"), unpermute_rows(f.tensor(g + "attn_k.weight"), head_dim));
    add(h + "self_attn.v_proj.weight", f.tensor(g + "attn_v.weight"));
    add(h + "self_attn.o_proj.weight", f.tensor(g + "attn_output.weight"));
    add(h + "post_attention_layernorm.weight", f.tensor(g + "ffn_norm.weight"));
    add(h + "mlp.gate_proj.weight", f.tensor(g + "ffn_gate.weight"));
    add(h + "mlp.up_proj.weight", f.tensor(g + "ffn_up.weight"));
    add(h + "mlp.down_proj.weight", f.tensor(g + "ffn_down.weight"));
  }
  test::write_bytes(e.dir + "/model.safetensors", test::st_build(tensors));
  write_spm_tokenizer_json(f, e.dir);
  return e;
}

std::vector<int32_t> sample_ids() {
  std::vector<int32_t> ids = {1};
  for (int i = 0; i < 40; ++i) ids.push_back((37 * i + 11) % 509 + 3);
  return ids;
}

const char* kTexts[] = {"Once upon a time, there was a little girl named Lily.",
                        "She liked to play in the park with her dog, Max!",
                        " two  spaces\nand a newline", "caf\xc3\xa9 \xe2\x98\x95 123", ""};

class ConvertStories : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = test::shared_model("stories260K/stories260K.gguf");
    if (original_.empty()) GTEST_SKIP() << "fixture ../shared/models/stories260K/stories260K.gguf not found";
  }
  std::string original_;
};

TEST_F(ConvertStories, RoundTripGivesTheOriginalTensorsLogitsAndTokens) {
  const Exported e = export_llama_to_hf(original_);
  const std::string out = test::temp_path("stories-converted.gguf");
  const auto summary = test::run_convert(e.dir, out, "f32");
  EXPECT_EQ(summary.architecture, "llama");
  const gguf::File a = gguf::File::open(original_);
  const gguf::File b = gguf::File::open(out);
  EXPECT_EQ(b.tensors().size(), a.tensors().size());
  for (const auto& t : a.tensors()) {
    const gguf::TensorInfo& u = b.tensor(t.name);
    EXPECT_EQ(u.dims, t.dims) << t.name;
    ASSERT_EQ(u.type, DType::F32) << t.name;
    EXPECT_EQ(std::memcmp(u.data, t.data, t.n_bytes), 0) << t.name;
  }
  const std::vector<int32_t> ids = sample_ids();
  const auto want = test::model_logits(original_, ids);
  const auto got = test::model_logits(out, ids);
  ASSERT_EQ(want.size(), got.size());
  float worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - got[i]));
  EXPECT_EQ(worst, 0.0f) << "same F32 bytes must give the same logits";

  const auto tok_a = Tokenizer::from_gguf(a);
  const auto tok_b = Tokenizer::from_gguf(b);
  EXPECT_EQ(tok_b->model_kind(), "llama");
  EXPECT_EQ(tok_b->bos_id(), tok_a->bos_id());
  EXPECT_EQ(tok_b->eos_id(), tok_a->eos_id());
  EXPECT_EQ(tok_b->add_bos(), tok_a->add_bos());
  for (const char* text : kTexts) EXPECT_EQ(tok_b->encode(text), tok_a->encode(text)) << "'" << text << "'";
  // Every piece of the vocabulary tokenizes to itself in both.
  int same = 0, n = 0;
  for (int32_t id = 3 + 256; id < tok_a->n_vocab(); ++id, ++n) {
    const std::string text = tok_a->decode(std::vector<int32_t>{id});
    same += tok_b->encode(text) == tok_a->encode(text);
  }
  EXPECT_EQ(same, n);
}

TEST_F(ConvertStories, TiedEmbeddingsWriteNoOutputTensor) {
  const gguf::File a = gguf::File::open(original_);
  const auto& emb = a.tensor("token_embd.weight");
  const auto& head = a.tensor("output.weight");
  const Exported e = export_llama_to_hf(original_, /*drop_lm_head=*/true);
  const std::string out = test::temp_path("stories-tied.gguf");
  test::run_convert(e.dir, out, "f32");
  const gguf::File b = gguf::File::open(out);
  EXPECT_EQ(b.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(b.tensors().size(), a.tensors().size() - 1);
  // stories260K shares its classifier, so the tied file computes the same logits.
  if (emb.n_bytes == head.n_bytes && std::memcmp(emb.data, head.data, emb.n_bytes) == 0) {
    const auto ids = sample_ids();
    EXPECT_EQ(test::model_logits(original_, ids), test::model_logits(out, ids));
  }
}

// The bounds of tests/rwkv7_quant_test.cpp compare two engines on the same
// quantized bytes; here the quantization error itself is measured, which on
// a 64-wide model is far larger, so the bounds are relative: RMS of the
// logit error over the RMS of the logits, and top-1 agreement.
TEST_F(ConvertStories, QuantizedConversionsLoadAndStayClose) {
  const Exported e = export_llama_to_hf(original_);
  const std::vector<int32_t> ids = sample_ids();
  const auto reference = test::model_logits(original_, ids);
  const int64_t V = 512;
  struct Bound {
    std::string type;
    double rel_rms;
    int min_agree;
  };
  for (const Bound& b : {Bound{"q8_0", 0.02, 39}, Bound{"q4_k", 0.15, 33}}) {
    const std::string out = test::temp_path("stories-" + b.type + ".gguf");
    test::run_convert(e.dir, out, b.type);
    const gguf::File f = gguf::File::open(out);
    EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").type, DType::F16) << b.type;  // rows of 172: llama-quantize's F16
    EXPECT_EQ(f.tensor("blk.0.attn_norm.weight").type, DType::F32) << b.type;
    const auto got = test::model_logits(out, ids);
    double err = 0, norm = 0;
    float worst = 0;
    int agree = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* x = reference.data() + t * V;
      const float* y = got.data() + t * V;
      for (int64_t v = 0; v < V; ++v) {
        err += (x[v] - y[v]) * (x[v] - y[v]);
        norm += x[v] * x[v];
        worst = std::max(worst, std::fabs(x[v] - y[v]));
      }
      agree += std::max_element(x, x + V) - x == std::max_element(y, y + V) - y;
    }
    const double rel = std::sqrt(err / norm);
    std::printf("  %-5s logits vs F32: relative RMS error %.4f, max |diff| %.3g, top-1 agreement %d/%zu\n",
                b.type.c_str(), rel, worst, agree, ids.size());
    EXPECT_LT(rel, b.rel_rms) << b.type;
    EXPECT_GE(agree, b.min_agree) << b.type;
  }
}

// rope_scaling llama3: the rope_freqs tensor as llama.cpp computes it,
// checked against the formula evaluated in double precision here.
TEST(ConvertLlama, Llama3RopeScalingWritesRopeFreqs) {
  REQUIRE_SHARED_MODEL(original, "stories260K/stories260K.gguf");
  const Exported e = export_llama_to_hf(original);
  json config = json::parse(test::read_file(e.dir + "/config.json"));
  config["rope_theta"] = 500000.0;
  config["rope_scaling"] = {{"rope_type", "llama3"},        {"factor", 8.0},
                            {"low_freq_factor", 1.0},        {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 64}};
  test::write_text(e.dir + "/config.json", config.dump());
  const std::string out = test::temp_path("stories-llama3.gguf");
  test::run_convert(e.dir, out, "f32");
  const gguf::File f = gguf::File::open(out);
  const auto& t = f.tensor("rope_freqs.weight");
  ASSERT_EQ(t.dims, (std::vector<int64_t>{4}));  // head_dim 8 / 2
  const auto got = test::gguf_floats(t);
  const double pi = 3.14159265358979323846;
  int blended = 0;
  for (int i = 0; i < 4; ++i) {
    const double freq = 1.0 / std::pow(500000.0, 2.0 * i / 8.0);
    const double wavelen = 2 * pi / freq, low = 64 / 1.0, high = 64 / 4.0;
    double want;
    if (wavelen < high) {
      want = 1;
    } else if (wavelen > low) {
      want = 8;
    } else {
      const double smooth = (64 / wavelen - 1.0) / (4.0 - 1.0);
      want = 1 / ((1 - smooth) / 8 + smooth);
      ++blended;
    }
    EXPECT_NEAR(got[static_cast<size_t>(i)], want, 1e-5 * want) << i;
  }
  EXPECT_GE(blended, 0);
  EXPECT_FALSE(f.has("llama.rope.scaling.type"));  // llama3 is carried by the tensor alone
}

TEST(ConvertLlama, LinearRopeScalingWritesKeys) {
  REQUIRE_SHARED_MODEL(original, "stories260K/stories260K.gguf");
  const Exported e = export_llama_to_hf(original);
  json config = json::parse(test::read_file(e.dir + "/config.json"));
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  test::write_text(e.dir + "/config.json", config.dump());
  const std::string out = test::temp_path("stories-linear.gguf");
  test::run_convert(e.dir, out, "f32");
  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.get_string("llama.rope.scaling.type"), "linear");
  EXPECT_EQ(f.get_float("llama.rope.scaling.factor"), 4.0);
}

}  // namespace
}  // namespace flatline
