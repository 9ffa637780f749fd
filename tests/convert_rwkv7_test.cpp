// `flatline convert` for RWKV-7 from fla-hub checkpoints, against outside
// truth: rwkv.cpp's tiny trained RWKV-7 (../shared/models/tiny-rwkv7-834K-
// f32.gguf, llama.cpp's rwkv7 layout) is re-exported here to the layout of
// flash-linear-attention's RWKV7ForCausalLM (fla/models/rwkv7,
// fla/layers/rwkv7.py: attn.x_r ... x_g [1, 1, H], LoRAs as lora.0 / lora.2
// Linear layers, r_k [heads, head_dim], ...) and converted back: the tensors
// and the logits must be the original ones. The full RWKV World vocabulary
// must convert to exactly the vocab-only GGUF built by llama.cpp's converter
// and tokenize as llama.cpp does.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/rwkv_vocab.h"
#include "convert_support.h"
#include "gguf/gguf_writer.h"
#include "safetensors_support.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flatline {
namespace {

using nlohmann::json;

// The tiny GGUF -> an fla-hub style directory.
std::string export_rwkv7_to_fla(const std::string& gguf_path) {
  const gguf::File f = gguf::File::open(gguf_path);
  const int64_t H = f.get_int("rwkv7.embedding_length"), L = f.get_int("rwkv7.block_count");
  const int64_t hs = f.get_int("rwkv7.wkv.head_size"), F = f.get_int("rwkv7.feed_forward_length");
  const int64_t V = static_cast<int64_t>(f.get("tokenizer.ggml.tokens").array_size());
  const std::string dir = test::temp_path("rwkv7-fla");
  std::filesystem::create_directories(dir);
  const json config = {{"architectures", {"RWKV7ForCausalLM"}},
                       {"model_type", "rwkv7"},
                       {"hidden_size", H},
                       {"num_hidden_layers", L},
                       {"head_dim", hs},
                       {"num_heads", H / hs},
                       {"intermediate_size", F},
                       {"vocab_size", V},
                       {"decay_low_rank_dim", f.get_int("rwkv7.attention.decay_lora_rank")},
                       {"a_low_rank_dim", f.get_int("rwkv7.attention.iclr_lora_rank")},
                       {"v_low_rank_dim", f.get_int("rwkv7.attention.value_residual_mix_lora_rank")},
                       {"gate_low_rank_dim", f.get_int("rwkv7.attention.gate_lora_rank")},
                       {"norm_eps", f.get_float("rwkv7.attention.layer_norm_epsilon")},
                       {"norm_first", true},
                       {"norm_bias", true},
                       {"hidden_act", "sqrelu"},
                       {"attn", nullptr},
                       {"tie_word_embeddings", false},
                       {"bos_token_id", 1},
                       {"eos_token_id", 2}};
  test::write_text(dir + "/config.json", config.dump(1));

  std::vector<test::StTensor> out;
  auto bytes_of = [](const gguf::TensorInfo& t, int64_t first = 0, int64_t n = -1) {
    if (n < 0) n = t.n_elements();
    return std::vector<uint8_t>(t.data + first * 4, t.data + (first + n) * 4);
  };
  // A GGUF tensor under an fla name, with the torch shape given.
  auto add = [&](const std::string& name, const gguf::TensorInfo& t, std::vector<int64_t> shape) {
    out.push_back({name, "F32", std::move(shape), bytes_of(t)});
  };
  add("model.embeddings.weight", f.tensor("token_embd.weight"), {V, H});
  add("model.layers.0.pre_norm.weight", f.tensor("token_embd_norm.weight"), {H});
  add("model.layers.0.pre_norm.bias", f.tensor("token_embd_norm.bias"), {H});
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".", a = p + "attn.", b = "blk." + std::to_string(i) + ".";
    const auto T = [&](const std::string& n) -> const gguf::TensorInfo& { return f.tensor(b + n); };
    add(p + "attn_norm.weight", T("attn_norm.weight"), {H});
    add(p + "attn_norm.bias", T("attn_norm.bias"), {H});
    add(p + "ffn_norm.weight", T("attn_norm_2.weight"), {H});
    add(p + "ffn_norm.bias", T("attn_norm_2.bias"), {H});
    const char* mixes[] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};  // lerp_fused rows, in llama.cpp's order
    for (int k = 0; k < 6; ++k) out.push_back({a + mixes[k], "F32", {1, 1, H}, bytes_of(T("time_mix_lerp_fused.weight"), k * H, H)});
    add(a + "k_k", T("time_mix_k_k.weight"), {H});
    add(a + "k_a", T("time_mix_k_a.weight"), {H});
    add(a + "r_k", T("time_mix_r_k.weight"), {H / hs, hs});
    add(a + "r_proj.weight", T("time_mix_receptance.weight"), {H, H});
    add(a + "k_proj.weight", T("time_mix_key.weight"), {H, H});
    add(a + "v_proj.weight", T("time_mix_value.weight"), {H, H});
    add(a + "o_proj.weight", T("time_mix_output.weight"), {H, H});
    // fla's LoRA: lora.0 = Linear(H, rank) [rank, H], lora.2 = Linear(rank, H) [H, rank] + bias.
    for (const auto& [fla, g] : std::vector<std::pair<std::string, std::string>>{{"w", "w"}, {"a", "a"}, {"v", "v"}, {"g", "g"}}) {
      if (fla == "v" && i == 0) continue;  // fla has no v_lora in layer 0
      const auto& down = T("time_mix_" + g + "1.weight");
      const auto& up = T("time_mix_" + g + "2.weight");
      add(a + fla + "_lora.lora.0.weight", down, {down.dims[1], H});
      add(a + fla + "_lora.lora.2.weight", up, {H, up.dims[0]});
      if (fla != "g") add(a + fla + "_lora.lora.2.bias", T("time_mix_" + g + "0.weight"), {H});
    }
    add(a + "g_norm.weight", T("time_mix_ln.weight"), {H});
    add(a + "g_norm.bias", T("time_mix_ln.bias"), {H});
    add(p + "ffn.x_k", T("channel_mix_lerp_k.weight"), {H});
    add(p + "ffn.key.weight", T("channel_mix_key.weight"), {F, H});
    add(p + "ffn.value.weight", T("channel_mix_value.weight"), {H, F});
  }
  add("model.norm.weight", f.tensor("output_norm.weight"), {H});
  add("model.norm.bias", f.tensor("output_norm.bias"), {H});
  add("lm_head.weight", f.tensor("output.weight"), {V, H});
  test::write_bytes(dir + "/model.safetensors", test::st_build(out));

  // The byte-level vocabulary as an RWKV World file: ids 1..255 = bytes 1..255
  // (id 0 is <s> in that format), every entry a b'\xNN' literal.
  std::ofstream vocab(dir + "/rwkv_vocab_v20230424.txt", std::ios::binary);
  static const char* hex = "0123456789abcdef";
  for (int byte = 1; byte < V; ++byte) vocab << byte << " b'\\x" << hex[byte >> 4] << hex[byte & 15] << "' 1\n";
  return dir;
}

class ConvertRwkv7 : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = test::shared_model("tiny-rwkv7-834K-f32.gguf");
    if (original_.empty()) GTEST_SKIP() << "fixture ../shared/models/tiny-rwkv7-834K-f32.gguf not found";
  }
  std::string original_;
};

TEST_F(ConvertRwkv7, FlaHubRoundTripGivesTheOriginalTensorsAndLogits) {
  const std::string dir = export_rwkv7_to_fla(original_);
  const std::string out = test::temp_path("rwkv7-converted.gguf");
  const auto summary = test::run_convert(dir, out, "f32");
  EXPECT_EQ(summary.architecture, "rwkv7");
  const gguf::File a = gguf::File::open(original_);
  const gguf::File b = gguf::File::open(out);
  EXPECT_EQ(b.tensors().size(), a.tensors().size());
  for (const auto& t : a.tensors()) {
    SCOPED_TRACE(t.name);
    const gguf::TensorInfo* u = b.find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->n_elements(), t.n_elements());
    ASSERT_EQ(u->type, DType::F32);
    // Layer 0's value-residual LoRA is unused; llama.cpp's converter writes
    // copies of a0/a1/a2 there, whatever the source had.
    if (t.name == "blk.0.time_mix_v0.weight" || t.name == "blk.0.time_mix_v1.weight" ||
        t.name == "blk.0.time_mix_v2.weight") {
      const std::string a_name = "blk.0.time_mix_a" + t.name.substr(std::strlen("blk.0.time_mix_v"));
      const gguf::TensorInfo& src = a.tensor(a_name);
      EXPECT_EQ(u->dims, src.dims);
      EXPECT_EQ(std::memcmp(u->data, src.data, src.n_bytes), 0);
      continue;
    }
    EXPECT_EQ(std::memcmp(u->data, t.data, t.n_bytes), 0);
  }
  EXPECT_EQ(b.tensor("blk.3.time_mix_lerp_fused.weight").dims, (std::vector<int64_t>{64, 1, 1, 6}));
  // The metadata keys llama.cpp's converter writes, equal to the original's.
  for (const char* key : {"rwkv7.embedding_length", "rwkv7.block_count", "rwkv7.wkv.head_size",
                          "rwkv7.attention.decay_lora_rank", "rwkv7.attention.iclr_lora_rank",
                          "rwkv7.attention.value_residual_mix_lora_rank", "rwkv7.attention.gate_lora_rank",
                          "rwkv7.feed_forward_length"}) {
    EXPECT_EQ(b.get_int(key), a.get_int(key)) << key;
  }
  EXPECT_EQ(b.get_float("rwkv7.attention.layer_norm_epsilon"), a.get_float("rwkv7.attention.layer_norm_epsilon"));
  EXPECT_EQ(b.get_int("rwkv7.context_length"), 1048576);
  // Tokens 1..255 as the original spells them; 0 is <s> in the World format.
  const auto ta = a.get("tokenizer.ggml.tokens").string_array();
  const auto tb = b.get("tokenizer.ggml.tokens").string_array();
  ASSERT_EQ(ta.size(), tb.size());
  EXPECT_EQ(tb[0], "<s>");
  for (size_t i = 1; i < ta.size(); ++i) EXPECT_EQ(tb[i], ta[i]) << i;
  EXPECT_EQ(b.get_string("tokenizer.chat_template"), "rwkv-world");

  std::vector<int32_t> ids;
  for (char c : std::string("Once upon a time, there was a little girl who \"in")) ids.push_back(static_cast<unsigned char>(c));
  EXPECT_EQ(test::model_logits(original_, ids), test::model_logits(out, ids));
  const auto tok_a = Tokenizer::from_gguf(a);
  const auto tok_b = Tokenizer::from_gguf(b);
  for (const char* text : {"Hello world!", "User: hi\n\nAssistant:", "\t\r\n ~\x7f"}) EXPECT_EQ(tok_b->encode(text), tok_a->encode(text));
}

// The same checkpoint quantized: loads, and stays close to the F32 logits
// (relative bounds as in convert_llama_test.cpp).
TEST_F(ConvertRwkv7, QuantizedConversionsLoadAndStayClose) {
  const std::string dir = export_rwkv7_to_fla(original_);
  std::vector<int32_t> ids;
  for (int i = 0; i < 32; ++i) ids.push_back((37 * i + 11) % 256);
  const auto reference = test::model_logits(original_, ids);
  for (const auto& [type, rel_bound] : std::vector<std::pair<std::string, double>>{{"q8_0", 0.02}, {"q4_k", 0.15}}) {
    const std::string out = test::temp_path("rwkv7-" + type + ".gguf");
    test::run_convert(dir, out, type);
    const gguf::File f = gguf::File::open(out);
    EXPECT_EQ(f.tensor("blk.0.time_mix_w1.weight").type, DType::F32) << type;  // kept F32 by the converter
    EXPECT_EQ(f.tensor("blk.0.time_mix_a1.weight").type, DType::F16) << type;  // not quantized by llama-quantize
    EXPECT_EQ(f.tensor("blk.0.time_mix_lerp_fused.weight").type, DType::F32) << type;
    const auto got = test::model_logits(out, ids);
    double err = 0, norm = 0;
    int agree = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* x = reference.data() + t * 256;
      const float* y = got.data() + t * 256;
      for (int v = 0; v < 256; ++v) {
        err += (x[v] - y[v]) * (x[v] - y[v]);
        norm += x[v] * x[v];
      }
      agree += std::max_element(x, x + 256) - x == std::max_element(y, y + 256) - y;
    }
    const double rel = std::sqrt(err / norm);
    std::printf("  %-5s logits vs F32: relative RMS error %.4f, top-1 agreement %d/32\n", type.c_str(), rel, agree);
    EXPECT_LT(rel, rel_bound) << type;
    EXPECT_GE(agree, 28) << type;
  }
}

TEST(ConvertRwkvVocab, WorldVocabularyMatchesLlamaCppsConversion) {
  REQUIRE_SHARED_MODEL(txt, "rwkv-world-vocab/rwkv_vocab_v20230424.txt");
  REQUIRE_SHARED_MODEL(ref_path, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  REQUIRE_SHARED_MODEL(cases_path, "rwkv-world-vocab/rwkv-world.tokenize.json");
  gguf::Writer w;
  w.add_string("general.architecture", "rwkv7");
  const auto summary = convert::add_rwkv_world_tokenizer(w, txt, 65536, "");
  EXPECT_EQ(summary.n_entries, 65529);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const gguf::File mine = gguf::File::parse(bytes);
  const gguf::File ref = gguf::File::open(ref_path);
  const auto a = ref.get("tokenizer.ggml.tokens").string_array();
  const auto b = mine.get("tokenizer.ggml.tokens").string_array();
  ASSERT_EQ(a.size(), b.size());
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i] && differ++ < 5) ADD_FAILURE() << "token " << i << ": '" << b[i] << "' vs llama.cpp's '" << a[i] << "'";
  }
  EXPECT_EQ(differ, 0u);
  EXPECT_EQ(mine.get("tokenizer.ggml.token_type").int_array(), ref.get("tokenizer.ggml.token_type").int_array());
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"})
    EXPECT_EQ(mine.get_int(key), ref.get_int(key)) << key;
  EXPECT_EQ(mine.get_string("tokenizer.ggml.model"), "rwkv");
  EXPECT_EQ(mine.get_string("tokenizer.chat_template"), ref.get_string("tokenizer.chat_template"));
  const auto tok = Tokenizer::from_gguf(mine);
  std::ifstream in(cases_path);
  const json cases = json::parse(in);
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases)
    EXPECT_EQ(tok->encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>()) << c["text"];
}

TEST(ConvertRwkvVocab, PythonLiteralsAndReprs) {
  EXPECT_EQ(convert::python_literal_bytes("'a b'"), "a b");
  EXPECT_EQ(convert::python_literal_bytes("b'\\xe4\\xb8'"), "\xe4\xb8");
  EXPECT_EQ(convert::python_literal_bytes("'\\x00'"), std::string(1, '\0'));
  EXPECT_EQ(convert::python_literal_bytes("'\\xe9'"), "\xc3\xa9");  // a str literal: U+00E9 in UTF-8
  EXPECT_EQ(convert::python_literal_bytes("'\\u3000'"), "\xe3\x80\x80");
  EXPECT_EQ(convert::python_literal_bytes("\"it's\""), "it's");
  EXPECT_EQ(convert::python_literal_bytes("'\\\\$'"), "\\$");
  EXPECT_EQ(convert::python_bytes_repr_body("it's"), "it's");    // repr picks "..." quotes then
  EXPECT_EQ(convert::python_bytes_repr_body("'\""), "\\'\"");    // both quotes: '...' with \'
  EXPECT_EQ(convert::python_bytes_repr_body("\n\t\r\\\x7f\xff"), "\\n\\t\\r\\\\\\x7f\\xff");
  for (const char* bad : {"abc", "'unterminated", "b'\\x4'", "'a'b'"}) {
    EXPECT_THROW(convert::python_literal_bytes(bad), Error) << bad;
  }
}

TEST(ConvertRwkvVocab, RefusesMalformedEntries) {
  const std::string path = test::temp_path("rwkv_vocab_v20230424.txt");
  const auto error_for = [&](const std::string& text) -> std::string {
    test::write_text(path, text);
    gguf::Writer w;
    try {
      convert::add_rwkv_world_tokenizer(w, path, 16, "");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_for("1 'a' 1\n3 'b' 1\n").find(":2: id 3 where 2 was expected"), std::string::npos);
  EXPECT_NE(error_for("1 'ab' 1\n").find("the literal is 2 bytes but the entry says 1"), std::string::npos);
  EXPECT_NE(error_for("1 'a\n").find(":1:"), std::string::npos);
  std::string many;
  for (int i = 1; i <= 20; ++i) many += std::to_string(i) + " 'x' 1\n";
  EXPECT_NE(error_for(many).find("do not fit vocab_size 16"), std::string::npos);
}

}  // namespace
}  // namespace flatline
