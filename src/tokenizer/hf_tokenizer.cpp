#include "tokenizer/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "tokenizer/pretokenizer.h"
#include "util/error.h"

namespace flatline {

namespace {

using nlohmann::json;

constexpr int32_t kTypeNormal = 1;
constexpr int32_t kTypeUnknown = 2;
constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;
constexpr int32_t kTypeUnused = 5;
constexpr int32_t kTypeByte = 6;
constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

// Like llama.cpp's does_token_look_special: added tokens some models forgot
// to mark special.
bool looks_special(const std::string& t) {
  const auto starts = [&](std::string_view p) { return t.size() >= p.size() && t.compare(0, p.size(), p) == 0; };
  const auto ends = [&](std::string_view s) {
    return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0;
  };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // <｜...｜>
  if (starts("<unused") && ends(">")) return true;
  return false;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

bool is_byte_piece(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  return std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]));
}

// "a b" strings, or ["a", "b"] pairs in newer files (a space inside a part
// becomes U+0120, as gguf-py writes it).
std::vector<std::string> read_merges(const json& model, const std::string& path) {
  std::vector<std::string> merges;
  if (!model.contains("merges")) return merges;
  const json& list = model["merges"];
  if (!list.is_array()) throw Error(path + ": model.merges: expected an array");
  merges.reserve(list.size());
  for (const json& m : list) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(replace_all(m[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                       replace_all(m[1].get<std::string>(), " ", "\xc4\xa0"));
    } else {
      throw Error(path + ": model.merges[" + std::to_string(merges.size()) +
                  "]: expected \"a b\" or [\"a\", \"b\"], found " + m.dump().substr(0, 60));
    }
  }
  return merges;
}

// The content of a tokenizer_config entry like "bos_token": "<s>" or
// {"content": "<s>", ...}.
std::optional<std::string> config_token(const json& config, const std::string& key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

std::optional<bool> config_bool(const json& config, const std::string& key) {
  if (config.contains(key) && config[key].is_boolean()) return config[key].get<bool>();
  return std::nullopt;
}

// From a TemplateProcessing post-processor: whether single sequences start
// (add_bos) or end (add_eos) with the given special token.
void template_adds(const json& post, const std::string& bos, const std::string& eos, std::optional<bool>& add_bos,
                   std::optional<bool>& add_eos) {
  if (!post.is_object()) return;
  if (post.value("type", "") == "Sequence" && post.contains("processors")) {
    for (const json& p : post["processors"]) template_adds(p, bos, eos, add_bos, add_eos);
    return;
  }
  if (post.value("type", "") != "TemplateProcessing" || !post.contains("single")) return;
  const json& single = post["single"];
  if (!single.is_array() || single.empty()) return;
  const auto special_id = [](const json& item) -> std::string {
    if (item.contains("SpecialToken") && item["SpecialToken"].contains("id")) {
      return item["SpecialToken"]["id"].get<std::string>();
    }
    return "";
  };
  if (!add_bos) add_bos = !bos.empty() && special_id(single.front()) == bos;
  if (!add_eos) add_eos = !eos.empty() && special_id(single.back()) == eos;
}

// SentencePiece-style tokenizers put U+2581 in front of the text when their
// normalizer prepends it or their Metaspace pre-tokenizer does.
bool prepends_space(const json& j) {
  const auto check = [](const json& node, const auto& self) -> bool {
    if (!node.is_object()) return false;
    const std::string type = node.value("type", "");
    if (type == "Prepend" && node.value("prepend", "") == kSpaceMark) return true;
    if (type == "Metaspace") {
      if (node.contains("prepend_scheme")) return node["prepend_scheme"] != "never";
      return node.value("add_prefix_space", true);
    }
    for (const char* list : {"normalizers", "pretokenizers"}) {
      if (node.contains(list) && node[list].is_array()) {
        for (const json& child : node[list]) {
          if (self(child, self)) return true;
        }
      }
    }
    return false;
  };
  return check(j.value("normalizer", json()), check) || check(j.value("pre_tokenizer", json()), check);
}

}  // namespace

HfTokenizerSummary add_hf_tokenizer(gguf::Writer& writer, const std::string& path, const HfTokenizerOptions& options) {
  const json j = read_json(path);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    throw Error(path + ": expected a tokenizer.json object with a \"model\" section");
  }
  const json& model = j["model"];
  const std::string type = model.value("type", "");
  if (type != "BPE") {
    throw Error(path + ": tokenizer model type '" + type + "' is not supported (expected BPE)");
  }
  const bool sentencepiece = model.value("byte_fallback", false);
  if (!sentencepiece) {
    if (options.pre.empty()) {
      throw Error(path + ": a byte-level BPE tokenizer needs the pre-tokenizer name (tokenizer.ggml.pre, e.g. "
                         "llama-bpe or qwen2)");
    }
    tokenizer_detail::PreTokenizer::from_name(options.pre);  // unknown names fail here, not at load time
  }

  std::string config_path = options.config_path;
  if (config_path.empty()) {
    const auto next_to = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(next_to)) config_path = next_to.string();
  }
  const json config = config_path.empty() ? json::object() : read_json(config_path);

  // id -> text, from the model vocabulary and the added tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw Error(path + ": model.vocab: expected an object");
  int64_t max_id = -1;
  std::unordered_map<int64_t, std::string> texts;
  texts.reserve(model["vocab"].size());
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) throw Error(path + ": model.vocab['" + text + "']: expected an id >= 0");
    texts[id.get<int64_t>()] = text;
    max_id = std::max(max_id, id.get<int64_t>());
  }
  std::vector<AddedToken> added;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string()) {
        throw Error(path + ": added_tokens: expected entries with an integer \"id\" and a string \"content\"");
      }
      added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
      max_id = std::max(max_id, added.back().id);
    }
  }
  const int64_t n = options.vocab_size > 0 ? options.vocab_size : max_id + 1;
  if (max_id >= n) {
    throw Error(path + ": token id " + std::to_string(max_id) + " does not fit vocab_size " + std::to_string(n));
  }
  if (n <= 0) throw Error(path + ": the tokenizer has no tokens");

  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, kTypeUnused);
  for (int64_t id = 0; id < n; ++id) tokens[id] = "[PAD" + std::to_string(id) + "]";
  const std::string unk = model.value("unk_token", json()).is_string() ? model["unk_token"].get<std::string>() : "";
  for (auto& [id, text] : texts) {
    tokens[id] = text;
    types[id] = sentencepiece && is_byte_piece(text) ? kTypeByte
                : sentencepiece && !unk.empty() && text == unk ? kTypeUnknown
                                                               : kTypeNormal;
  }
  for (const AddedToken& a : added) {
    if (a.special || looks_special(a.content)) {
      tokens[a.id] = a.content;
      types[a.id] = kTypeControl;
    } else {
      // llama.cpp's converters store user-defined spaces as spaces.
      tokens[a.id] = replace_all(a.content, kSpaceMark, " ");
      types[a.id] = kTypeUserDefined;
    }
  }

  const std::vector<std::string> merges = read_merges(model, path);
  HfTokenizerSummary summary;
  summary.n_tokens = n;
  summary.n_added = static_cast<int64_t>(added.size());
  if (sentencepiece) {
    // Score = minus the rank of the first merge that makes the token, so
    // tokens made by earlier merges win; the rest rank below every merge.
    std::unordered_map<std::string, int64_t> first_rank;
    first_rank.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const size_t space = merges[r].find(' ', 1);
      if (space == std::string::npos) continue;
      std::string merged = merges[r].substr(0, space) + merges[r].substr(space + 1);
      first_rank.emplace(std::move(merged), static_cast<int64_t>(r));
    }
    std::vector<float> scores(n);
    for (int64_t id = 0; id < n; ++id) {
      if (types[id] == kTypeControl || types[id] == kTypeUserDefined) {
        scores[id] = -1000.0f;  // as llama.cpp gives added tokens
      } else if (types[id] == kTypeNormal) {
        auto it = first_rank.find(tokens[id]);
        scores[id] = -static_cast<float>(it != first_rank.end() ? it->second : static_cast<int64_t>(merges.size()) + id);
      } else {
        scores[id] = 0.0f;
      }
    }
    writer.add_string("tokenizer.ggml.model", "llama");
    writer.add_string("tokenizer.ggml.pre", "default");
    writer.add_string_array("tokenizer.ggml.tokens", tokens);
    writer.add_float32_array("tokenizer.ggml.scores", scores);
    writer.add_int32_array("tokenizer.ggml.token_type", types);
    writer.add_bool("tokenizer.ggml.add_space_prefix", prepends_space(j));
    summary.model = "llama";
  } else {
    writer.add_string("tokenizer.ggml.model", "gpt2");
    writer.add_string("tokenizer.ggml.pre", options.pre);
    writer.add_string_array("tokenizer.ggml.tokens", tokens);
    writer.add_int32_array("tokenizer.ggml.token_type", types);
    writer.add_string_array("tokenizer.ggml.merges", merges);
    summary.model = "gpt2";
    summary.n_merges = static_cast<int64_t>(merges.size());
  }

  // Special token ids by content (added tokens first, then the vocabulary).
  std::unordered_map<std::string, int64_t> ids;
  for (const auto& [id, text] : texts) ids.emplace(text, id);
  for (const AddedToken& a : added) ids[a.content] = a.id;
  const struct {
    const char* role;
    const char* key;
  } roles[] = {{"bos", "tokenizer.ggml.bos_token_id"},   {"eos", "tokenizer.ggml.eos_token_id"},
               {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
               {"pad", "tokenizer.ggml.padding_token_id"}, {"cls", "tokenizer.ggml.cls_token_id"},
               {"mask", "tokenizer.ggml.mask_token_id"}};
  std::string bos_text, eos_text;
  for (const auto& r : roles) {
    const auto text = config_token(config, std::string(r.role) + "_token");
    if (!text) continue;
    auto it = ids.find(*text);
    if (it == ids.end()) continue;
    writer.add_uint32(r.key, static_cast<uint32_t>(it->second));
    if (std::string_view(r.role) == "bos") bos_text = *text;
    if (std::string_view(r.role) == "eos") eos_text = *text;
  }
  std::optional<bool> add_bos = config_bool(config, "add_bos_token");
  std::optional<bool> add_eos = config_bool(config, "add_eos_token");
  if (j.contains("post_processor")) template_adds(j["post_processor"], bos_text, eos_text, add_bos, add_eos);
  if (add_bos) writer.add_bool("tokenizer.ggml.add_bos_token", *add_bos && !bos_text.empty());
  if (add_eos) writer.add_bool("tokenizer.ggml.add_eos_token", *add_eos && !eos_text.empty());

  if (config.contains("chat_template")) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      writer.add_string("tokenizer.chat_template", t.get<std::string>());
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
      // As llama.cpp's converter: the default one, the others by name.
      for (const json& entry : t) {
        if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string()) continue;
        const std::string name = entry.value("name", "");
        if (name == "default") {
          writer.add_string("tokenizer.chat_template", entry["template"].get<std::string>());
        } else if (!name.empty()) {
          writer.add_string("tokenizer.chat_template." + name, entry["template"].get<std::string>());
        }
      }
    }
  }
  return summary;
}

}  // namespace flatline
