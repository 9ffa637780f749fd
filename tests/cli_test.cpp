// The `flatline` command end to end: bad input gets a clear message and a
// non-zero exit status, never a crash; good input gives the documented output.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "gguf/gguf_writer.h"
#include "models/synthetic.h"
#include "test_support.h"

namespace flatline {
namespace {

struct CommandResult {
  int status;
  std::string output;  // stdout + stderr
};

CommandResult run(const std::string& args) {
  std::string cmd = test::flatline_binary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  CommandResult r{-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string tiny_synthetic_model() {
  static std::string path = [] {
    SyntheticModel s = synthetic_preset("rwkv7", "0.1b");
    s.n_embd = 64;
    s.n_layer = 2;
    s.n_vocab = 256;
    s.n_ff = 128;
    s.rank_decay = s.rank_iclr = s.rank_value = s.rank_gate = 16;
    s.seed = 3;
    std::string p = test::temp_path("cli-tiny.gguf");
    write_synthetic_model(p, s);
    return p;
  }();
  return path;
}

TEST(Cli, TruncatedModelFileIsAClearError) {
  auto bytes = test::read_file(tiny_synthetic_model());
  std::string path = test::temp_path("truncated.gguf");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size() / 2);
  CommandResult r = run("run " + path + " -p hi -n 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("invalid GGUF"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST(Cli, NotAGgufFile) {
  std::string path = test::temp_path("text.gguf");
  std::ofstream(path) << "this is not a model, just some text that is long enough";
  CommandResult r = run("info " + path);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("not a GGUF file"), std::string::npos) << r.output;
}

TEST(Cli, UnknownArchitectureNamesItAndTheSupportedOnes) {
  gguf::Writer w;
  w.add_string("general.architecture", "falcon-h9");
  float zero[4] = {};
  w.add_tensor("token_embd.weight", DType::F32, {4}, zero, sizeof zero);
  std::string path = test::temp_path("unknown-arch.gguf");
  w.write(path);
  CommandResult r = run("run " + path + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown architecture 'falcon-h9'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rwkv7"), std::string::npos) << r.output;
}

TEST(Cli, MissingFile) {
  CommandResult r = run("info /nonexistent/model.gguf");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot open /nonexistent/model.gguf"), std::string::npos) << r.output;
}

TEST(Cli, ModelThatDoesNotFitTheMemoryBudgetIsRefused) {
  CommandResult r = run("run " + tiny_synthetic_model() + " -p hi --max-memory 100K");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("needs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("memory budget"), std::string::npos) << r.output;
}

TEST(Cli, BadTokenListAndOutOfRangeIds) {
  std::string out = test::temp_path("logits.f32");
  CommandResult r = run("logits " + tiny_synthetic_model() + " --tokens 1,x,3 --out " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("'x' is not a token id"), std::string::npos) << r.output;
  r = run("logits " + tiny_synthetic_model() + " --tokens 1,999 --out " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("token id 999 at index 1 is out of range"), std::string::npos) << r.output;
}

TEST(Cli, LogitsWritesRawFloats) {
  std::string out = test::temp_path("logits.f32");
  CommandResult r = run("logits " + tiny_synthetic_model() + " --tokens 1,2,3 --out " + out + " --all");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(test::read_file(out).size(), 3u * 256 * 4);
  r = run("logits " + tiny_synthetic_model() + " --tokens 1,2,3 --out " + out);
  EXPECT_EQ(test::read_file(out).size(), 256u * 4);
}

TEST(Cli, TokenizePrintsAJsonArrayMatchingLlamaCpp) {
  REQUIRE_SHARED_MODEL(vocab, "rwkv-world-vocab/rwkv-world.vocab.gguf");
  CommandResult r = run("tokenize " + vocab + " 'Hello world!'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "[33155, 40213, 34]\n");  // rwkv-world.tokenize.json, computed by llama.cpp
}

TEST(Cli, InfoDescribesMemory) {
  CommandResult r = run("info " + tiny_synthetic_model());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("architecture:    rwkv7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("per conversation, whatever its length"), std::string::npos) << r.output;
}

TEST(Cli, QuantizeThenRun) {
  std::string q = test::temp_path("tiny-q8.gguf");
  CommandResult r = run("quantize " + tiny_synthetic_model() + " " + q + " q8_0");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("info " + q);
  EXPECT_NE(r.output.find("Q8_0"), std::string::npos) << r.output;
  r = run("run " + q + " -p 'abc' -n 5 --temp 0");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run("quantize " + tiny_synthetic_model() + " " + q + " iq2_xxs");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot quantize to 'iq2_xxs'"), std::string::npos) << r.output;
}

TEST(Cli, BenchJsonHasTheDocumentedFields) {
  CommandResult r = run("bench " + tiny_synthetic_model() + " -p 16 -n 4 -r 1 -t 1 --json --bandwidth-mib 64");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* field : {"pp_tok_s", "tg_tok_s", "peak_rss_bytes", "bandwidth_gb_s", "roofline_fraction"})
    EXPECT_NE(r.output.find(std::string("\"") + field + "\""), std::string::npos) << field << "\n" << r.output;
}

// `flatline create NAME -f Modelfile`: FROM paths are relative to the
// Modelfile's folder (as Ollama's CLI reads them) and must name a file in
// the models directory; the manifest lands there and `run`-free checks read it.
TEST(Cli, CreateWritesAnAliasManifestFromAModelfile) {
  namespace fs = std::filesystem;
  const fs::path root = test::temp_path("cli-create");
  fs::create_directories(root / "models");
  fs::create_directories(root / "project");
  fs::copy_file(tiny_synthetic_model(), root / "models" / "tiny.gguf", fs::copy_options::overwrite_existing);
  std::ofstream(root / "project" / "Modelfile") << "FROM ../models/tiny.gguf\nPARAMETER temperature 0.2\nSYSTEM Hi.\n";
  CommandResult ok = run("create tiny:chat -f " + (root / "project" / "Modelfile").string() + " --models " +
                         (root / "models").string());
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("success"), std::string::npos) << ok.output;
  std::ifstream manifest(root / "models" / "tiny:chat.alias.json");
  ASSERT_TRUE(manifest.good());
  const std::string text((std::istreambuf_iterator<char>(manifest)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"from\": \"tiny.gguf\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"temperature\": 0.2"), std::string::npos) << text;

  std::ofstream(root / "project" / "Bad") << "FROM ../models/tiny.gguf\nPARAMETR temperature 1\n";
  CommandResult bad = run("create broken -f " + (root / "project" / "Bad").string() + " --models " + (root / "models").string());
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("Modelfile line 2: unknown instruction"), std::string::npos) << bad.output;

  fs::copy_file(tiny_synthetic_model(), root / "project" / "stray.gguf", fs::copy_options::overwrite_existing);
  std::ofstream(root / "project" / "Outside") << "FROM ./stray.gguf\n";
  CommandResult outside =
      run("create stray -f " + (root / "project" / "Outside").string() + " --models " + (root / "models").string());
  EXPECT_EQ(outside.status, 1) << outside.output;
  EXPECT_NE(outside.output.find("outside the models directory"), std::string::npos) << outside.output;
  EXPECT_FALSE(fs::exists(root / "models" / "stray.alias.json"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace flatline
