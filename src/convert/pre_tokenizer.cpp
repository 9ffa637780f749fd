#include "convert/pre_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/sha256.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

using nlohmann::json;

// The regexes of the Split pre-tokenizers llama.cpp knows, as tokenizer.json spells them.
constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

struct KnownFingerprint {
  const char* sha256;
  const char* name;
  const char* model;  // the Hugging Face model llama.cpp took it from
};

// llama.cpp's get_vocab_base_pre (conversion/base.py at de3ff81), the
// entries whose names flatline's pre-tokenizers implement, in its order
// (when two entries share a fingerprint the later one wins, as there).
constexpr KnownFingerprint kFingerprints[] = {
    {"1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35", "minerva-7b", "sapienzanlp/Minerva-7B-base-v1.0"},
    {"7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664", "hunyuan", "tencent/Hunyuan-A13B-Instruct"},
    {"a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6", "falcon-h1", "tiiuae/Falcon-H1-0.5B-Base"},
    {"60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86", "falcon-h1", "tiiuae/Falcon-H1-1B-Base"},
    {"3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896", "falcon-h1", "tiiuae/Falcon-H1-7B-Base"},
    {"48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b", "falcon-h1", "tiiuae/Falcon-H1-34B-Base"},
    {"d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2", "Qwen/Qwen3-Embedding-0.6B"},
    {"b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df", "jina-v2-de", "aari1995/German_Semantic_V3"},
    {"0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2", "evilfreelancer/ruGPT3XL"},
    {"9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7", "lfm2", "LiquidAI/LFM2.5-8B-A1B"},
    {"0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe", "meta-llama/Meta-Llama-3-8B"},
    {"049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754", "deepseek-llm", "deepseek-ai/deepseek-llm-7b-base"},
    {"347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821", "deepseek-coder", "deepseek-ai/deepseek-coder-6.7b-base"},
    {"8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed", "falcon", "tiiuae/falcon-7b"},
    {"9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e", "falcon3", "tiiuae/Falcon3-7B-Base"},
    {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "mpt", "mosaicml/mpt-7b"},
    {"35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34", "starcoder", "bigcode/starcoder2-3b"},
    {"3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2", "openai-community/gpt2"},
    {"32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3", "stablelm2", "stabilityai/stablelm-2-zephyr-1_6b"},
    {"6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff", "refact", "smallcloudai/Refact-1_6-base"},
    {"9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8", "command-r", "CohereForAI/c4ai-command-r-v01"},
    {"e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2", "Qwen/Qwen1.5-7B"},
    {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo", "allenai/OLMo-1.7-7B-hf"},
    {"a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e", "dbrx", "databricks/dbrx-base"},
    {"c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448", "jina-v1-en", "jinaai/jina-reranker-v1-tiny-en"},
    {"171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643", "jina-v2-es", "jinaai/jina-embeddings-v2-base-es"},
    {"27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6", "jina-v2-de", "jinaai/jina-embeddings-v2-base-de"},
    {"c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d", "smaug-bpe", "abacusai/Smaug-Llama-3-70B-Instruct"},
    {"c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360", "poro-chat", "LumiOpen/Poro-34B-chat"},
    {"7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a", "jina-v2-code", "jinaai/jina-embeddings-v2-base-code"},
    {"7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee", "viking", "LumiOpen/Viking-7B"},
    {"7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f", "codeshell", "WisdomShell/CodeShell-7B"},
    {"855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm", "HuggingFaceTB/SmolLM-135M"},
    {"3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7", "bloom", "bigscience/bloom"},
    {"bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21", "gpt3-finnish", "TurkuNLP/gpt3-finnish-small"},
    {"4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae", "exaone", "LGAI-EXAONE/EXAONE-3.0-7.8B-Instruct"},
    {"fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085", "phi-2", "microsoft/phi-2"},
    {"8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65", "roberta-bpe", "sentence-transformers/stsb-roberta-base"},
    {"ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb", "gigachat", "ai-sage/GigaChat-20B-A3B-instruct"},
    {"d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1", "megrez", "Infinigence/Megrez-3B-Instruct"},
    {"b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"},
    {"1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15", "trillion", "trillionlabs/Trillion-7B-preview"},
    {"0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3", "pixtral", "mistral-community/pixtral-12b"},
    {"b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf", "a.x-4.0", "skt/A.X-4.0"},
    {"f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4", "midm-2.0", "K-intelligence/Midm-2.0-Base-Instruct"},
    {"169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51", "lfm2", "LiquidAI/LFM2.5-350M"},
    {"2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb", "exaone4", "LGAI-EXAONE/EXAONE-4.0-32B"},
    {"a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756", "mellum", "JetBrains/Mellum-4b-base"},
    {"53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e", "granite-docling", "ibm-granite/granite-docling-258M"},
    {"4a2e2abae11ca2b86d570fc5b44be4d5eb5e72cc8f22dd136a94b37da83ab665", "kormo", "KORMo-Team/KORMo-tokenizer"},
};

bool is_type(const json& node, const char* type) { return node.is_object() && node.value("type", "") == type; }

bool byte_level(const json& node, bool use_regex) {
  return is_type(node, "ByteLevel") && node.value("use_regex", true) == use_regex &&
         !node.value("add_prefix_space", false);
}

std::string split_regex(const json& node) {
  if (!is_type(node, "Split") || !node.contains("pattern") || !node["pattern"].is_object()) return "";
  const json& p = node["pattern"];
  if (!p.contains("Regex") || !p["Regex"].is_string()) return "";
  if (node.value("behavior", "") != "Isolated" || node.value("invert", false)) return "";
  return p["Regex"].get<std::string>();
}

// The canonical tokenizer.ggml.pre of the pre_tokenizer section's regex
// family, or "" when flatline does not know it.
std::string family_of(const json& pre) {
  if (byte_level(pre, true)) return "gpt-2";
  if (!is_type(pre, "Sequence") || !pre.contains("pretokenizers") || !pre["pretokenizers"].is_array()) return "";
  const json& steps = pre["pretokenizers"];
  if (steps.size() != 2) return "";
  if (is_type(steps[0], "Digits") && steps[0].value("individual_digits", false) && byte_level(steps[1], true)) {
    return "smollm";  // StarCoder / SmolLM: single digits, then GPT-2's regex
  }
  if (byte_level(steps[1], false)) {
    const std::string regex = split_regex(steps[0]);
    if (regex == kLlama3Regex) return "llama-bpe";
    if (regex == kQwen2Regex) return "qwen2";
  }
  return "";
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

// The special token a TemplateProcessing post-processor puts first / last
// in a single sequence ("" when none): Hugging Face's encode() adds them.
void template_specials(const json& post, std::string& first, std::string& last) {
  if (!post.is_object()) return;
  if (is_type(post, "Sequence") && post.contains("processors")) {
    for (const json& p : post["processors"]) template_specials(p, first, last);
    return;
  }
  if (!is_type(post, "TemplateProcessing") || !post.contains("single") || !post["single"].is_array()) return;
  const json& single = post["single"];
  if (single.size() < 2) return;
  auto special = [](const json& item) -> std::string {
    if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string())
      return item["SpecialToken"]["id"].get<std::string>();
    return "";
  };
  first = special(single.front());
  last = special(single.back());
}

}  // namespace

const std::string& pre_tokenizer_check_text() {
  static const std::string text =
      "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\360\237\232\200 (normal) \360\237\230\266\342"
      "\200\215\360\237\214\253\357\270\217 (multiple emojis concatenated) \342\234\205 \360\237\246"
      "\231\360\237\246\231 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \341\236\200\341"
      "\236\266\341\236\223\341\237\213\341\236\217\341\237\202\341\236\226\341\236\267\341\236\237\341"
      "\237\201\341\236\237\341\236\242\341\236\266\341\236\205\360\237\230\201 ?\346\210\221\346\203"
      "\263\345\234\250apple\345\267\245\344\275\2341314151\345\244\251\357\275\236 ------======= \320"
      "\275\320\265\321\211\320\276 \320\275\320\260 \320\221\321\212\320\273\320\263\320\260\321\200"
      "\321\201\320\272\320\270 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE"
      " you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";
  return text;
}

std::string python_list(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

PreTokenizerChoice choose_pre_tokenizer(const std::string& path, const HfTokenizerOptions& options) {
  const json j = read_json(path);
  const json pre = j.is_object() && j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  PreTokenizerChoice choice;
  choice.name = family_of(pre);
  if (choice.name.empty()) {
    throw Error(path + ": pre_tokenizer " + pre.dump().substr(0, 300) +
                " is not one flatline knows (it knows GPT-2's ByteLevel, Digits + ByteLevel as in StarCoder/SmolLM, "
                "and the Llama 3 and Qwen 2 Split regexes)");
  }
  // Tokenize the check text as Hugging Face's encode() would: the
  // pre-tokenizer family, then the post-processor's special tokens.
  HfTokenizerOptions with_pre = options;
  with_pre.pre = choice.name;
  gguf::Writer w;
  w.add_string("general.architecture", "llama");
  add_hf_tokenizer(w, path, with_pre);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const gguf::File vocab = gguf::File::parse(bytes, path);
  const auto tokenizer = Tokenizer::from_gguf(vocab);
  std::vector<int32_t> ids = tokenizer->encode(pre_tokenizer_check_text(), false);
  std::string first, last;
  if (j.contains("post_processor")) template_specials(j["post_processor"], first, last);
  if (!first.empty() && tokenizer->find_token(first) >= 0) ids.insert(ids.begin(), tokenizer->find_token(first));
  if (!last.empty() && tokenizer->find_token(last) >= 0) ids.push_back(tokenizer->find_token(last));
  choice.fingerprint = sha256_hex(python_list(ids));
  choice.check_ids = ids;

  const KnownFingerprint* match = nullptr;
  for (const auto& f : kFingerprints) {
    if (choice.fingerprint == f.sha256) match = &f;
  }
  if (match) {
    choice.name = match->name;
    choice.known_fingerprint = true;
    choice.how = "tokenizer.ggml.pre '" + choice.name + "': fingerprint " + choice.fingerprint.substr(0, 12) +
                 " matches llama.cpp's entry for " + match->model;
  } else {
    choice.how = "tokenizer.ggml.pre '" + choice.name + "' from the pre_tokenizer section (fingerprint " +
                 choice.fingerprint.substr(0, 12) + " is not in llama.cpp's table, which would refuse this tokenizer)";
  }
  return choice;
}

}  // namespace flatline::convert
