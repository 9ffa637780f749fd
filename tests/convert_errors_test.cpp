// What `flatline convert` refuses, with which message, and that a refused or
// interrupted conversion leaves nothing behind: no output file, no temporary
// file. The checkpoints are tiny Llamas written here (random weights, the
// Ouro fixture's 512-token byte-level BPE tokenizer).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "convert/type_rules.h"
#include "convert_support.h"
#include "safetensors_support.h"
#include "util/error.h"

namespace flatline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kH = 32, kFfn = 64, kV = 512, kHeads = 2, kKvHeads = 1, kHeadDim = 16;

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.2f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<test::StTensor> tiny_llama_tensors() {
  std::vector<test::StTensor> t;
  uint32_t seed = 1;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    t.push_back(test::st_f32(name, shape, random_values(n, seed++)));
  };
  add("model.embed_tokens.weight", {kV, kH});
  add("model.norm.weight", {kH});
  add("lm_head.weight", {kV, kH});
  const std::string p = "model.layers.0.";
  add(p + "input_layernorm.weight", {kH});
  add(p + "self_attn.q_proj.weight", {kHeads * kHeadDim, kH});
  add(p + "self_attn.k_proj.weight", {kKvHeads * kHeadDim, kH});
  add(p + "self_attn.v_proj.weight", {kKvHeads * kHeadDim, kH});
  add(p + "self_attn.o_proj.weight", {kH, kHeads * kHeadDim});
  add(p + "post_attention_layernorm.weight", {kH});
  add(p + "mlp.gate_proj.weight", {kFfn, kH});
  add(p + "mlp.up_proj.weight", {kFfn, kH});
  add(p + "mlp.down_proj.weight", {kH, kFfn});
  return t;
}

json tiny_llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},    {"hidden_size", kH},
          {"intermediate_size", kFfn},            {"num_hidden_layers", 1},   {"num_attention_heads", kHeads},
          {"num_key_value_heads", kKvHeads},      {"vocab_size", kV},         {"rms_norm_eps", 1e-5},
          {"max_position_embeddings", 256},       {"tie_word_embeddings", false}};
}

// A tiny Llama directory; `tensors` and `config` can be changed before it is written.
struct TinyLlama {
  std::string dir;
  std::vector<test::StTensor> tensors = tiny_llama_tensors();
  json config = tiny_llama_config();
  bool ok = false;

  explicit TinyLlama(const std::string& name) {
    const std::string tokenizer = test::shared_model("ouro/tokenizer.json");
    if (tokenizer.empty()) return;
    dir = test::temp_path(name);
    fs::create_directories(dir);
    fs::copy_file(tokenizer, dir + "/tokenizer.json");
    fs::copy_file(test::shared_model("ouro/tokenizer_config.json"), dir + "/tokenizer_config.json");
    ok = true;
  }
  void write() const {
    test::write_text(dir + "/config.json", config.dump());
    test::write_bytes(dir + "/model.safetensors", test::st_build(tensors));
  }
  void remove(const std::string& name) {
    std::erase_if(tensors, [&](const test::StTensor& t) { return t.name == name; });
  }
  test::StTensor& tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no " + name);
  }
};

#define REQUIRE_TINY(var, name)                  \
  TinyLlama var(name);                           \
  if (!var.ok) GTEST_SKIP() << "fixture ../shared/models/ouro (its tokenizer) not found"

// Converts; returns the Error message ("" on success) and checks that a
// failure left no output and no temporary file in the output directory.
std::string convert_error(const std::string& dir, const std::string& type = "f32",
                          const std::function<void(convert::ConvertOptions&)>& adjust = {}) {
  const std::string out_dir = test::temp_path("convert-out");
  fs::create_directories(out_dir);
  const std::string out = out_dir + "/model.gguf";
  convert::ConvertOptions o;
  o.type = type;
  if (adjust) adjust(o);
  std::string message;
  try {
    convert::convert_hf_model(dir, out, o);
  } catch (const Error& e) {
    message = e.what();
  }
  if (!message.empty()) {
    EXPECT_FALSE(fs::exists(out)) << "a failed conversion left " << out;
    EXPECT_TRUE(fs::is_empty(out_dir)) << "a failed conversion left a temporary file in " << out_dir;
  }
  return message;
}

#define EXPECT_MENTIONS(message, ...)                                                         \
  do {                                                                                       \
    const std::string m_ = (message);                                                        \
    EXPECT_FALSE(m_.empty()) << "expected an Error";                                         \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(m_.find(part), std::string::npos) << m_; \
  } while (0)

TEST(ConvertErrors, TheTinyLlamaItselfConverts) {
  REQUIRE_TINY(m, "tiny-ok");
  m.write();
  EXPECT_EQ(convert_error(m.dir), "");
}

// generation_config.json becomes general.sampling.*, as gguf-py's Metadata writes it.
TEST(ConvertErrors, GenerationConfigBecomesSamplingKeys) {
  REQUIRE_TINY(m, "tiny-gen");
  m.write();
  test::write_text(m.dir + "/generation_config.json",
                   R"({"do_sample": true, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.1})");
  const std::string out = test::temp_path("tiny-gen.gguf");
  test::run_convert(m.dir, out, "f16", "tiny");
  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.get_int("general.sampling.top_k"), 40);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("general.sampling.temp")), 0.7f);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("general.sampling.top_p")), 0.9f);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("general.sampling.penalty_repeat")), 1.1f);
  EXPECT_FALSE(f.has("general.sampling.min_p"));
  EXPECT_EQ(f.get_string("general.name"), "tiny");
  EXPECT_EQ(f.get_int("general.file_type"), 1);
  test::write_text(m.dir + "/generation_config.json", "{ not json");
  EXPECT_MENTIONS(convert_error(m.dir), "generation_config.json", "not valid JSON");
}

TEST(ConvertErrors, UnknownArchitecture) {
  REQUIRE_TINY(m, "tiny-arch");
  m.config["architectures"] = {"MambaForCausalLM"};
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "config.json", "architecture 'MambaForCausalLM' is not supported",
                  "LlamaForCausalLM", "OuroForCausalLM", "RWKV7ForCausalLM");
}

TEST(ConvertErrors, MissingTensor) {
  REQUIRE_TINY(m, "tiny-missing");
  m.remove("model.layers.0.mlp.up_proj.weight");
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "missing tensor 'model.layers.0.mlp.up_proj.weight'", "expected shape [64, 32]");
}

TEST(ConvertErrors, MissingLmHeadWhenNotTied) {
  REQUIRE_TINY(m, "tiny-nohead");
  m.remove("lm_head.weight");
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "missing tensor 'lm_head.weight'", "tie_word_embeddings is false");
}

TEST(ConvertErrors, ShapeInconsistentWithConfig) {
  REQUIRE_TINY(m, "tiny-shape");
  m.config["intermediate_size"] = 96;
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 32]",
                  "config.json implies [96, 32]", "intermediate_size");
  TinyLlama g("tiny-heads");
  g.config["num_key_value_heads"] = 2;
  g.write();
  EXPECT_MENTIONS(convert_error(g.dir), "'model.layers.0.self_attn.k_proj.weight' has shape [16, 32]",
                  "implies [32, 32]");
}

TEST(ConvertErrors, InconsistentConfig) {
  REQUIRE_TINY(m, "tiny-config");
  m.config["num_attention_heads"] = 3;  // 32 is not a multiple of 3
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "hidden_size 32 is not a multiple of num_attention_heads 3");
  m.config = tiny_llama_config();
  m.config["hidden_size"] = "big";
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "'hidden_size' must be an integer", "\"big\"");
  m.config = tiny_llama_config();
  m.config.erase("vocab_size");
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "missing integer 'vocab_size'");
  m.config = tiny_llama_config();
  m.config["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "rope scaling type 'longrope' is not supported");
}

TEST(ConvertErrors, TensorTheLayoutDoesNotHave) {
  REQUIRE_TINY(m, "tiny-extra");
  m.tensors.push_back(test::st_f32("model.layers.0.self_attn.q_norm.weight", {16}, random_values(16, 9)));
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "not part of the llama layout", "model.layers.0.self_attn.q_norm.weight");
}

TEST(ConvertErrors, UnsupportedDtype) {
  REQUIRE_TINY(m, "tiny-dtype");
  auto& t = m.tensor("model.layers.0.input_layernorm.weight");
  t.dtype = "I32";
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir), "tensor 'model.layers.0.input_layernorm.weight' has dtype I32",
                  "reads F32, F16 and BF16");
}

TEST(ConvertErrors, BadSafetensorsHeader) {
  REQUIRE_TINY(m, "tiny-header");
  m.write();
  auto bytes = test::read_file(m.dir + "/model.safetensors");
  bytes.resize(bytes.size() - 100);
  test::write_bytes(m.dir + "/model.safetensors", bytes);
  EXPECT_MENTIONS(convert_error(m.dir), "model.safetensors", "past the end of the data section");
  test::write_bytes(m.dir + "/model.safetensors", test::st_raw("{\"a\": ", {}));
  EXPECT_MENTIONS(convert_error(m.dir), "model.safetensors", "not valid JSON");
}

TEST(ConvertErrors, IndexNamingAMissingShard) {
  REQUIRE_TINY(m, "tiny-index");
  m.write();
  fs::rename(m.dir + "/model.safetensors", m.dir + "/model-00001-of-00002.safetensors");
  json map;
  for (const auto& t : m.tensors) map[t.name] = "model-00001-of-00002.safetensors";
  map["lm_head.weight"] = "model-00002-of-00002.safetensors";
  test::write_text(m.dir + "/model.safetensors.index.json", json({{"weight_map", map}}).dump());
  EXPECT_MENTIONS(convert_error(m.dir), "model.safetensors.index.json", "model-00002-of-00002.safetensors",
                  "does not exist");
}

TEST(ConvertErrors, UnknownOutputType) {
  REQUIRE_TINY(m, "tiny-type");
  m.write();
  EXPECT_MENTIONS(convert_error(m.dir, "q3_k"), "unknown --type 'q3_k'", "q4_k", "bf16");
}

TEST(ConvertErrors, MissingFiles) {
  EXPECT_MENTIONS(convert_error("/nonexistent/model"), "/nonexistent/model", "not a directory");
  REQUIRE_TINY(m, "tiny-files");
  m.write();
  fs::remove(m.dir + "/tokenizer.json");
  EXPECT_MENTIONS(convert_error(m.dir), "no tokenizer.json");
  fs::remove(m.dir + "/config.json");
  EXPECT_MENTIONS(convert_error(m.dir), "no config.json");
}

TEST(ConvertErrors, InterruptedConversionLeavesNothing) {
  REQUIRE_TINY(m, "tiny-cancel");
  m.write();
  std::atomic<bool> cancel{false};
  const std::string message = convert_error(m.dir, "q8_0", [&](convert::ConvertOptions& o) {
    o.cancel = &cancel;
    o.progress = [&](const convert::ConvertProgress& p) {
      if (p.tensor == 5) cancel = true;  // halfway through writing
    };
  });
  EXPECT_MENTIONS(message, "interrupted");
}

TEST(ConvertErrors, OuroCheckpointsTheLayoutCannotHold) {
  REQUIRE_SHARED_MODEL(fixture, "ouro");
  const std::string dir = test::copy_dir(fixture, "ouro-swa");
  json config = json::parse(test::read_file(dir + "/config.json"));
  config["use_sliding_window"] = true;
  test::write_text(dir + "/config.json", config.dump());
  EXPECT_MENTIONS(convert_error(dir), "use_sliding_window is true");
  config["use_sliding_window"] = false;
  config["total_ut_steps"] = 0;
  test::write_text(dir + "/config.json", config.dump());
  EXPECT_MENTIONS(convert_error(dir), "total_ut_steps must be >= 1");
}

// --- the command ------------------------------------------------------------

struct CommandResult {
  int status;
  std::string output;
};

CommandResult run(const std::string& args) {
  const std::string cmd = test::flatline_binary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  CommandResult r{-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

TEST(ConvertCommand, ConvertsWithProgressAndSummary) {
  REQUIRE_SHARED_MODEL(dir, "ouro");
  const std::string out = test::temp_path("cli-ouro.gguf");
  const CommandResult r = run("convert " + dir + " " + out + " --type q8_0");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[1/25] token_embd.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[25/25] blk.1.post_ffw_norm.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("wrote " + out + ": ouro (OuroForCausalLM), 25 tensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokenizer.ggml.pre 'smollm'"), std::string::npos) << r.output;
  EXPECT_EQ(gguf::File::open(out).get_int("general.file_type"), 7);
}

TEST(ConvertCommand, RefusalIsAnErrorExitWithoutOutput) {
  const std::string out = test::temp_path("cli-none.gguf");
  const CommandResult r = run("convert /nonexistent/dir " + out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("flatline: error: /nonexistent/dir: not a directory"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  const CommandResult t = run("convert /tmp " + out + " --type q2_k");
  EXPECT_EQ(t.status, 1) << t.output;
}

// --- type rules on llama-sized shapes (K-quant blocks fit) -------------------

convert::PlannedTensor stub(const std::string& name, std::vector<int64_t> dims) {
  convert::PlannedTensor t;
  t.name = name;
  t.dims = std::move(dims);
  return t;
}

std::map<std::string, DType> types_for(const std::string& type, bool tied, DType first = DType::F32) {
  std::vector<convert::PlannedTensor> ts = {stub("token_embd.weight", {256, 1000}), stub("output_norm.weight", {256})};
  if (!tied) ts.push_back(stub("output.weight", {256, 1000}));
  for (int i = 0; i < 8; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    ts.push_back(stub(b + "attn_norm.weight", {256}));
    ts.push_back(stub(b + "attn_q.weight", {256, 256}));
    ts.push_back(stub(b + "attn_v.weight", {256, 64}));
    ts.push_back(stub(b + "ffn_down.weight", {512, 256}));
    ts.push_back(stub(b + "time_mix_w1.weight", {256, 32}));
    ts.push_back(stub(b + "time_mix_a1.weight", {256, 32}));
    ts.push_back(stub(b + "time_mix_lerp_fused.weight", {256, 1, 1, 6}));
  }
  convert::assign_types(ts, convert::parse_output_type(type, first), 8);
  std::map<std::string, DType> out;
  for (const auto& t : ts) out[t.name] = t.type;
  return out;
}

TEST(ConvertTypeRules, FollowConvertHfToGgufAndLlamaQuantize) {
  auto f16 = types_for("f16", false);
  EXPECT_EQ(f16["token_embd.weight"], DType::F16);
  EXPECT_EQ(f16["output_norm.weight"], DType::F32);
  EXPECT_EQ(f16["blk.0.time_mix_w1.weight"], DType::F32);
  EXPECT_EQ(f16["blk.0.time_mix_a1.weight"], DType::F16);
  EXPECT_EQ(f16["blk.0.time_mix_lerp_fused.weight"], DType::F32);
  EXPECT_EQ(types_for("auto", false, DType::BF16)["blk.0.attn_q.weight"], DType::BF16);
  EXPECT_EQ(types_for("auto", false, DType::F32)["blk.0.attn_q.weight"], DType::F16);

  auto q4 = types_for("q4_k", false);  // Q4_K_S
  EXPECT_EQ(q4["output.weight"], DType::Q6_K);
  EXPECT_EQ(q4["token_embd.weight"], DType::Q4_K);
  EXPECT_EQ(q4["blk.0.attn_q.weight"], DType::Q4_K);
  for (int i = 0; i < 8; ++i)  // the first four attn_v get Q5_K
    EXPECT_EQ(q4["blk." + std::to_string(i) + ".attn_v.weight"], i < 4 ? DType::Q5_K : DType::Q4_K) << i;
  EXPECT_EQ(q4["blk.0.ffn_down.weight"], DType::Q5_K);  // i_layer < n_layer / 8
  EXPECT_EQ(q4["blk.1.ffn_down.weight"], DType::Q4_K);
  EXPECT_EQ(q4["blk.0.time_mix_a1.weight"], DType::F16);  // llama-quantize leaves RWKV's small matrices
  EXPECT_EQ(q4["output_norm.weight"], DType::F32);
  EXPECT_EQ(types_for("q4_k", true)["token_embd.weight"], DType::Q6_K);  // tied: treated as the output

  auto q8 = types_for("q8_0", false);
  EXPECT_EQ(q8["output.weight"], DType::Q8_0);
  EXPECT_EQ(q8["blk.3.attn_v.weight"], DType::Q8_0);
  EXPECT_EQ(types_for("q4_0", false)["output.weight"], DType::Q6_K);
  EXPECT_EQ(types_for("q5_k", false)["blk.0.attn_v.weight"], DType::Q5_K);
  EXPECT_EQ(types_for("q6_k", false)["blk.0.attn_q.weight"], DType::Q6_K);
}

TEST(ConvertTypeRules, SizeLabelsAsGgufPy) {
  EXPECT_EQ(convert::size_label(292800), "293K");
  EXPECT_EQ(convert::size_label(140000), "140K");
  EXPECT_EQ(convert::size_label(1430000000), "1.4B");
  EXPECT_EQ(convert::size_label(8030000000), "8.0B");
  EXPECT_EQ(convert::size_label(834000), "834K");
  EXPECT_EQ(convert::size_label(25000000), "25M");
}

}  // namespace
}  // namespace flatline
