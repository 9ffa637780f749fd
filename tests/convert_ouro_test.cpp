// `flatline convert` on the Ouro fixture (../shared/models/ouro, a tiny
// random-weight checkpoint in Hugging Face layout with goldens from the
// authors' code): every GGUF tensor equals the safetensors tensor it came
// from (bit for bit, q/k after llama.cpp's row permutation, written out here
// independently), the keys match config.json, the exit gate is kept, the
// sharded copy converts to the same bytes, the BF16 copy passes through,
// and the tokenizer gives the fixture's ids.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert_support.h"
#include "safetensors/safetensors.h"
#include "tensor/fp16.h"
#include "tokenizer/tokenizer.h"

namespace flatline {
namespace {

namespace st = safetensors;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

struct Converted {
  std::string path;
  std::unique_ptr<gguf::File> file;
};

Converted convert_fixture(const std::string& dir, const std::string& type, const std::string& name = "ouro") {
  Converted c;
  c.path = test::temp_path("ouro-" + type + ".gguf");
  test::run_convert(dir, c.path, type, name);
  c.file = std::make_unique<gguf::File>(gguf::File::open(c.path));
  return c;
}

// HF name -> GGUF name for the Ouro layout (docs/GGUF-OURO.md), written out
// independently of the converter.
std::vector<std::pair<std::string, std::string>> ouro_names(int n_layer) {
  std::vector<std::pair<std::string, std::string>> m = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                        {"model.norm.weight", "output_norm.weight"},
                                                        {"lm_head.weight", "output.weight"}};
  for (int i = 0; i < n_layer; ++i) {
    const std::string h = "model.layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
    for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
             {"input_layernorm", "attn_norm"},
             {"self_attn.q_proj", "attn_q"},
             {"self_attn.k_proj", "attn_k"},
             {"self_attn.v_proj", "attn_v"},
             {"self_attn.o_proj", "attn_output"},
             {"input_layernorm_2", "post_attention_norm"},
             {"post_attention_layernorm", "ffn_norm"},
             {"mlp.gate_proj", "ffn_gate"},
             {"mlp.up_proj", "ffn_up"},
             {"mlp.down_proj", "ffn_down"},
             {"post_attention_layernorm_2", "post_ffw_norm"}}) {
      m.push_back({h + a + ".weight", g + b + ".weight"});
    }
  }
  return m;
}

// llama.cpp's permute: view the rows as [n_head][2][head_dim/2], swap the
// last two axes. GGUF row h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i.
std::vector<int64_t> permuted_rows(int64_t rows, int64_t head_dim) {
  std::vector<int64_t> src_of(static_cast<size_t>(rows));
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < rows / head_dim; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i) src_of[h * head_dim + 2 * i + j] = h * head_dim + j * half + i;
  return src_of;
}

TEST(ConvertOuro, EveryTensorEqualsItsSourceBitForBit) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const json config = read_json(dir + "/config.json");
  const st::Checkpoint ckpt = st::Checkpoint::open_dir(dir);
  const Converted c = convert_fixture(dir, "f32");
  const int64_t head_dim = config["head_dim"];
  const auto names = ouro_names(config["num_hidden_layers"]);
  EXPECT_EQ(c.file->tensors().size(), names.size());  // nothing else: the gate is metadata
  for (const auto& [hf, name] : names) {
    SCOPED_TRACE(name);
    const st::TensorInfo& src = ckpt.tensor(hf);
    const gguf::TensorInfo& t = c.file->tensor(name);
    ASSERT_EQ(t.type, DType::F32);
    std::vector<int64_t> ggml_shape(src.shape.rbegin(), src.shape.rend());
    ASSERT_EQ(t.dims, ggml_shape);
    const size_t row = static_cast<size_t>(t.cols()) * 4;
    const bool permute = name.find("attn_q.") != std::string::npos || name.find("attn_k.") != std::string::npos;
    const auto src_of = permuted_rows(t.rows(), head_dim);
    for (int64_t r = 0; r < t.rows(); ++r) {
      const int64_t s = permute ? src_of[static_cast<size_t>(r)] : r;
      ASSERT_EQ(std::memcmp(t.data + r * row, src.data + s * row, row), 0) << "row " << r;
    }
  }
}

TEST(ConvertOuro, MetadataMatchesConfig) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const json config = read_json(dir + "/config.json");
  const json tok_config = read_json(dir + "/tokenizer_config.json");
  const Converted c = convert_fixture(dir, "f32");
  const gguf::File& f = *c.file;
  EXPECT_EQ(f.architecture(), "ouro");
  EXPECT_EQ(f.get_string("general.name"), "ouro");
  EXPECT_EQ(f.get_int("general.file_type"), 0);
  EXPECT_EQ(f.get_int("ouro.block_count"), config["num_hidden_layers"]);
  EXPECT_EQ(f.get_int("ouro.context_length"), config["max_position_embeddings"]);
  EXPECT_EQ(f.get_int("ouro.embedding_length"), config["hidden_size"]);
  EXPECT_EQ(f.get_int("ouro.feed_forward_length"), config["intermediate_size"]);
  EXPECT_EQ(f.get_int("ouro.attention.head_count"), config["num_attention_heads"]);
  EXPECT_EQ(f.get_int("ouro.attention.head_count_kv"), config["num_key_value_heads"]);
  EXPECT_EQ(f.get_int("ouro.attention.key_length"), config["head_dim"]);
  EXPECT_EQ(f.get_int("ouro.attention.value_length"), config["head_dim"]);
  EXPECT_EQ(f.get_int("ouro.rope.dimension_count"), config["head_dim"]);
  EXPECT_EQ(f.get_int("ouro.vocab_size"), config["vocab_size"]);
  EXPECT_EQ(f.get_float("ouro.rope.freq_base"), static_cast<float>(config["rope_theta"].get<double>()));
  EXPECT_EQ(f.get_float("ouro.attention.layer_norm_rms_epsilon"),
            static_cast<float>(config["rms_norm_eps"].get<double>()));
  EXPECT_EQ(f.get_int("ouro.num_loops"), config["total_ut_steps"]);
  EXPECT_FALSE(f.get_bool("ouro.skip_loop_final_norm", true));
  EXPECT_EQ(f.get_float("ouro.early_exit_threshold"), config["early_exit_threshold"].get<double>());
  EXPECT_FALSE(f.has("ouro.early_exit_step"));  // not in this config
  // The exit gate, bit for bit.
  const st::Checkpoint ckpt = st::Checkpoint::open_dir(dir);
  const st::TensorInfo& w = ckpt.tensor("model.early_exit_gate.weight");
  const std::vector<float> gate = f.get("ouro.exit_gate.weight").float_array();
  ASSERT_EQ(gate.size(), static_cast<size_t>(config["hidden_size"]));
  EXPECT_EQ(std::memcmp(gate.data(), w.data, gate.size() * 4), 0);
  float bias;
  std::memcpy(&bias, ckpt.tensor("model.early_exit_gate.bias").data, 4);
  EXPECT_EQ(f.get_float("ouro.exit_gate.bias"), bias);
  // Tokenizer keys as llama.cpp's Llama converter writes them for this vocabulary.
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), config["bos_token_id"]);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), config["eos_token_id"]);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_space_prefix", true));  // tokenizer_config add_prefix_space
  EXPECT_EQ(f.get_string("tokenizer.chat_template"), tok_config["chat_template"]);
  EXPECT_EQ(f.get("tokenizer.ggml.tokens").array_size(), 512u);
  EXPECT_EQ(f.get("tokenizer.ggml.merges").array_size(), 239u);
}

TEST(ConvertOuro, TokenizerGivesTheFixtureIds) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const Converted c = convert_fixture(dir, "f32");
  const auto tok = Tokenizer::from_gguf(*c.file);
  const json cases = read_json(dir + "/golden/tokenizer_tests.json");
  ASSERT_EQ(cases["cases"].size(), 5u);
  for (const json& k : cases["cases"]) {
    EXPECT_EQ(tok->encode(k["text"].get<std::string>(), true), k["ids"].get<std::vector<int32_t>>()) << k["text"];
  }
  const json prompt = read_json(dir + "/golden/tokens.json");
  EXPECT_EQ(tok->encode(prompt["text"].get<std::string>(), true), prompt["ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(tok->find_token("<|im_end|>"), 2);
  EXPECT_TRUE(tok->is_control(2));
}

TEST(ConvertOuro, ShardedAndSingleFileGiveIdenticalFiles) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  REQUIRE_SHARED_MODEL(sharded, "ouro/sharded");
  for (const char* type : {"f32", "q8_0"}) {
    const Converted a = convert_fixture(dir, type);
    const Converted b = convert_fixture(sharded, type);
    EXPECT_EQ(test::read_file(a.path), test::read_file(b.path)) << type;
  }
}

TEST(ConvertOuro, Bf16PassesThroughAndAutoKeepsIt) {
  REQUIRE_SHARED_MODEL(dir, "ouro/bf16");
  const st::Checkpoint ckpt = st::Checkpoint::open_dir(dir);
  const Converted c = convert_fixture(dir, "auto");
  EXPECT_EQ(c.file->get_int("general.file_type"), 32);  // MOSTLY_BF16
  for (const auto& [hf, name] : ouro_names(2)) {
    SCOPED_TRACE(name);
    const st::TensorInfo& src = ckpt.tensor(hf);
    const gguf::TensorInfo& t = c.file->tensor(name);
    if (t.dims.size() == 1) {  // norms: F32, the exact upcast of the BF16 values
      ASSERT_EQ(t.type, DType::F32);
      for (int64_t i = 0; i < t.cols(); ++i) {
        uint16_t b;
        std::memcpy(&b, src.data + 2 * i, 2);
        float f;
        std::memcpy(&f, t.data + 4 * i, 4);
        ASSERT_EQ(f, bf16_to_fp32(b));
      }
    } else if (name.find("attn_q.") == std::string::npos && name.find("attn_k.") == std::string::npos) {
      ASSERT_EQ(t.type, DType::BF16);
      ASSERT_EQ(std::memcmp(t.data, src.data, src.n_bytes()), 0);
    } else {
      ASSERT_EQ(t.type, DType::BF16);
      const auto src_of = permuted_rows(t.rows(), 16);
      const size_t row = static_cast<size_t>(t.cols()) * 2;
      for (int64_t r = 0; r < t.rows(); ++r)
        ASSERT_EQ(std::memcmp(t.data + r * row, src.data + src_of[static_cast<size_t>(r)] * row, row), 0);
    }
  }
  // The gate keeps its BF16 values exactly (as f32).
  const std::vector<float> gate = c.file->get("ouro.exit_gate.weight").float_array();
  const st::TensorInfo& w = ckpt.tensor("model.early_exit_gate.weight");
  for (size_t i = 0; i < gate.size(); ++i) {
    uint16_t b;
    std::memcpy(&b, w.data + 2 * i, 2);
    ASSERT_EQ(gate[i], bf16_to_fp32(b));
  }
}

TEST(ConvertOuro, F16RoundsEveryMatrixAndKeepsNormsF32) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const st::Checkpoint ckpt = st::Checkpoint::open_dir(dir);
  const Converted c = convert_fixture(dir, "f16");
  EXPECT_EQ(c.file->get_int("general.file_type"), 1);
  const gguf::TensorInfo& v = c.file->tensor("blk.1.attn_v.weight");
  ASSERT_EQ(v.type, DType::F16);
  const st::TensorInfo& src = ckpt.tensor("model.layers.1.self_attn.v_proj.weight");
  for (int64_t i = 0; i < v.n_elements(); ++i) {
    float x;
    std::memcpy(&x, src.data + 4 * i, 4);
    uint16_t h;
    std::memcpy(&h, v.data + 2 * i, 2);
    ASSERT_EQ(h, fp32_to_fp16(x));
  }
  EXPECT_EQ(c.file->tensor("blk.1.post_ffw_norm.weight").type, DType::F32);
}

// Quantized conversions: llama-quantize's choices for these shapes (rows of
// 64 or 128 elements do not fit 256-element K-quant blocks, so they fall
// back as llama-quantize does) and values within quantization error.
TEST(ConvertOuro, QuantizedTypesFollowLlamaQuantize) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const Converted q8 = convert_fixture(dir, "q8_0");
  EXPECT_EQ(q8.file->get_int("general.file_type"), 7);
  EXPECT_EQ(q8.file->tensor("output.weight").type, DType::Q8_0);
  EXPECT_EQ(q8.file->tensor("token_embd.weight").type, DType::Q8_0);
  EXPECT_EQ(q8.file->tensor("blk.0.attn_q.weight").type, DType::Q8_0);
  EXPECT_EQ(q8.file->tensor("blk.0.attn_norm.weight").type, DType::F32);
  const Converted q4 = convert_fixture(dir, "q4_k");
  EXPECT_EQ(q4.file->get_int("general.file_type"), 14);       // Q4_K_S
  EXPECT_EQ(q4.file->tensor("output.weight").type, DType::Q8_0);  // 64 % 256 != 0: llama-quantize's Q8_0
  EXPECT_EQ(q4.file->tensor("blk.0.attn_v.weight").type, DType::Q5_1);  // Q5_K (first 4 attn_v), fallback Q5_1
  EXPECT_EQ(q4.file->tensor("blk.0.attn_q.weight").type, DType::Q5_0);  // Q4_K, fallback Q5_0
  EXPECT_EQ(q4.file->tensor("blk.0.ffn_down.weight").type, DType::Q5_0);
  const Converted f32 = convert_fixture(dir, "f32");
  for (const gguf::File* f : {q8.file.get(), q4.file.get()}) {
    for (const auto& t : f32.file->tensors()) {
      const auto want = test::gguf_floats(t);
      const auto got = test::gguf_floats(f->tensor(t.name));
      double err = 0, norm = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err += (got[i] - want[i]) * (got[i] - want[i]);
        norm += want[i] * want[i];
      }
      EXPECT_LT(std::sqrt(err / norm), f == q8.file.get() ? 0.01 : 0.05) << t.name;
    }
  }
}

}  // namespace
}  // namespace flatline
