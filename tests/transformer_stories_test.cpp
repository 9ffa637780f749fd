// stories260K, a real trained Llama (karpathy's tinyllamas, GGUF from
// ggml-org): greedy decoding must reproduce the token ids and the text of the
// independent reference runs in ../shared/models/stories260K/reference (whose
// text equals llama2.c's expected output), and its logits for the first 16
// positions.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "model_test_util.h"

namespace flatline {
namespace {

using test::argmax;
using test::load_test_model;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The value of the first key that starts with `prefix` (the reference files
// spell some keys with explanations in them).
const nlohmann::json& key_starting(const nlohmann::json& j, const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key().rfind(prefix, 0) == 0) return it.value();
  throw std::runtime_error("reference has no key starting with " + prefix);
}

// Feeds `prompt` in one batch, then decodes greedily one token at a time
// until `total` tokens have been fed; returns every fed id and the logits
// after each of the first `keep_logits` positions.
std::vector<int32_t> greedy(test::TestModel& model, const std::vector<int32_t>& prompt, size_t total,
                            std::vector<float>* logits_out = nullptr, size_t keep_logits = 0) {
  const int64_t V = model.info().n_vocab;
  auto state = model.new_state(static_cast<int64_t>(total));
  std::vector<int32_t> fed = prompt;
  std::vector<float> all(prompt.size() * V);
  model.forward(*state, prompt, LogitsMode::All, all.data());
  if (logits_out) logits_out->assign(all.begin(), all.begin() + std::min(prompt.size(), keep_logits) * V);
  std::vector<float> last(all.end() - V, all.end());
  while (fed.size() < total) {
    const int32_t next = argmax(last.data(), V);
    fed.push_back(next);
    model.forward(*state, std::span<const int32_t>(&fed.back(), 1), LogitsMode::Last, last.data());
    if (logits_out && fed.size() <= keep_logits) logits_out->insert(logits_out->end(), last.begin(), last.end());
  }
  return fed;
}

TEST(TransformerStories, GreedyFromBosReproducesReference) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  REQUIRE_SHARED_MODEL(ref_json, "stories260K/reference/greedy_reference.json");
  REQUIRE_SHARED_MODEL(ref_logits, "stories260K/reference/greedy_logits_pos0-15.f32");
  auto ref = read_json(ref_json);
  auto expected = ref["input_ids_fed_pos0_to_pos199"].get<std::vector<int32_t>>();
  ASSERT_EQ(expected.size(), 200u);
  ASSERT_EQ(expected[0], 1);
  for (DType kv : {DType::F32, DType::F16}) {
    auto m = load_test_model(path, kv, 256, false, 1);
    std::vector<float> logits;
    // One more step than fed: run.c also prints the token predicted at the last position.
    auto fed = greedy(m, {1}, expected.size() + 1, &logits, 16);
    EXPECT_EQ(std::vector<int32_t>(fed.begin(), fed.end() - 1), expected) << "KV type " << dtype_name(kv);
    // The text through flatline's SentencePiece tokenizer is llama2.c's (which prints from position 1).
    auto tok = Tokenizer::from_gguf(*m.file);
    EXPECT_EQ(tok->decode(std::span<const int32_t>(fed).subspan(1)), ref["generated_text"].get<std::string>());
    auto want = test::read_f32_file(ref_logits);
    ASSERT_EQ(logits.size(), want.size());
    float diff = test::max_abs_diff(logits, want);
    std::cout << "stories260K (" << dtype_name(kv) << " KV): max |logit diff| at positions 0-15 = " << diff << "\n";
    EXPECT_LT(diff, kv == DType::F32 ? 1e-4f : 3e-2f);  // F16 keys round to 11 bits
  }
}

TEST(TransformerStories, GreedyAfterPromptsReproducesReference) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  REQUIRE_SHARED_MODEL(ref_json, "stories260K/reference/greedy_prompted_reference.json");
  auto m = load_test_model(path, DType::F16, 256, false, 1);
  auto refs = read_json(ref_json);
  ASSERT_EQ(refs.size(), 2u);
  for (const auto& r : refs) {
    auto prompt = key_starting(r, "prompt_token_ids").get<std::vector<int32_t>>();
    auto expected = key_starting(r, "fed_token_ids").get<std::vector<int32_t>>();
    ASSERT_GT(expected.size(), prompt.size());
    auto fed = greedy(m, prompt, expected.size() + 1);
    EXPECT_EQ(std::vector<int32_t>(fed.begin(), fed.end() - 1), expected) << r["prompt"];
    auto tok = Tokenizer::from_gguf(*m.file);
    EXPECT_EQ(std::vector<int32_t>(prompt.begin() + 1, prompt.end()), tok->encode(r["prompt"].get<std::string>()));
    EXPECT_EQ(tok->decode(std::span<const int32_t>(fed).subspan(1)), key_starting(r, "printed_text").get<std::string>());
  }
}

TEST(TransformerStories, InfoDescribesTheModel) {
  REQUIRE_SHARED_MODEL(path, "stories260K/stories260K.gguf");
  auto m = load_test_model(path, DType::F16, 256, false, 1);
  const ModelInfo& info = m.model->info();
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.n_vocab, 512);
  EXPECT_EQ(info.n_embd, 64);
  EXPECT_EQ(info.n_layer, 5);
  EXPECT_EQ(info.n_ctx_train, 2048);
  EXPECT_TRUE(m.model->traits().has_context_limit);
  EXPECT_TRUE(m.model->traits().can_truncate);
  EXPECT_EQ(info.file_type, "F32");
  uint64_t params = 0;
  for (const auto& t : m.file->tensors()) params += t.n_elements();
  EXPECT_EQ(info.n_params, params);
  EXPECT_EQ(info.weight_bytes, params * 4);
  // Untied output: a decode step reads one of the 512 embedding rows.
  EXPECT_EQ(info.bytes_per_token, info.weight_bytes - 511 * 64 * 4);
  // 5 layers x (K + V) x 4 KV heads x head dim 8 x 2 bytes.
  EXPECT_EQ(m.model->traits().state_bytes_per_token, 5u * 2 * 4 * 8 * 2);
}

}  // namespace
}  // namespace flatline
