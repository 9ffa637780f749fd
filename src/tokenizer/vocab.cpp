#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <limits>
#include <memory>

#include "util/error.h"

namespace flatline::tokenizer_detail {

namespace {

constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";

uint32_t attr_from_type(int64_t type) {
  switch (type) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}

TokenType type_from_int(int64_t type) {
  return type >= 0 && type <= 6 ? static_cast<TokenType>(type) : TokenType::Undefined;
}

std::string quoted(std::string_view text) {
  std::string out = "'";
  for (char c : text.substr(0, 40)) {
    if (static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 15];
      out += hex[c & 15];
    } else {
      out += c;
    }
  }
  if (text.size() > 40) out += "...";
  return out + "'";
}

// A parallel array (token_type, scores) must be an array of numbers with one
// entry per token.
const gguf::Value* parallel_array(const gguf::File& file, const char* key, size_t n_tokens, bool want_float) {
  const gguf::Value* v = file.find(key);
  if (!v) return nullptr;
  if (!v->is_array()) {
    throw Error(file.path() + ": " + key + ": expected an array, found " + gguf::value_type_name(v->type()));
  }
  const gguf::ValueType t = v->array_type();
  const bool numeric = t != gguf::ValueType::String && t != gguf::ValueType::Array && t != gguf::ValueType::Bool;
  const bool integer = numeric && t != gguf::ValueType::Float32 && t != gguf::ValueType::Float64;
  if (!numeric || (!want_float && !integer)) {
    throw Error(file.path() + ": " + key + ": expected an array of " + (want_float ? "numbers" : "integers") +
                ", found an array of " + gguf::value_type_name(t));
  }
  if (v->array_size() != n_tokens) {
    throw Error(file.path() + ": " + key + ": expected " + std::to_string(n_tokens) + " entries (one per token), found " +
                std::to_string(v->array_size()));
  }
  return v;
}

// Texts llama.cpp uses to find roles the metadata does not name.
constexpr std::array kEotTexts = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                  "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                  "<end_of_utterance>"};
constexpr std::array kEomTexts = {"<|eom_id|>"};
constexpr std::array kFimPreTexts = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>"};
constexpr std::array kFimSufTexts = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xe2\x96\x81<SUF>"};
constexpr std::array kFimMidTexts = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xe2\x96\x81<MID>"};
constexpr std::array kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"};
constexpr std::array kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
constexpr std::array kFimSepTexts = {"<|file_sep|>"};
// Tokens that end a generation whatever the metadata says.
constexpr std::array kEndOfGenerationTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>", "</s>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<eos>"};

bool is_c_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

}  // namespace

Vocab Vocab::load(const gguf::File& file, const VocabDefaults& defaults) {
  Vocab v;
  v.read_tokens(file);
  v.read_special_ids(file, defaults);
  v.mark_special_tokens(file);
  v.build_special_cache();
  return v;
}

void Vocab::read_tokens(const gguf::File& file) {
  const gguf::Value* tokens = file.find(kTokensKey);
  if (!tokens) throw Error(file.path() + ": " + kTokensKey + " is missing (the file has no vocabulary)");
  if (!tokens->is_array() || tokens->array_type() != gguf::ValueType::String) {
    throw Error(file.path() + ": " + kTokensKey + ": expected an array of strings, found " +
                (tokens->is_array() ? std::string("an array of ") + gguf::value_type_name(tokens->array_type())
                                    : std::string(gguf::value_type_name(tokens->type()))));
  }
  const uint64_t n = tokens->array_size();
  if (n == 0) throw Error(file.path() + ": " + kTokensKey + ": expected at least one token, found none");
  if (n > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    throw Error(file.path() + ": " + kTokensKey + ": " + std::to_string(n) + " tokens is more than int32 ids allow");
  }

  const std::vector<std::string_view> texts = tokens->string_array();
  size_t total = 0;
  for (auto t : texts) total += t.empty() ? 24 : t.size();
  if (total > std::numeric_limits<uint32_t>::max()) throw Error(file.path() + ": token texts are too large");
  storage_.reserve(total);
  offsets_.reserve(n + 1);
  offsets_.push_back(0);
  for (uint64_t i = 0; i < n; ++i) {
    // llama.cpp names empty tokens this way; they could never match text.
    const std::string empty_name = texts[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : "";
    const std::string_view t = texts[i].empty() ? std::string_view(empty_name) : texts[i];
    storage_.insert(storage_.end(), t.begin(), t.end());
    offsets_.push_back(static_cast<uint32_t>(storage_.size()));
  }

  const auto text_of = [this](int32_t id) { return text(id); };
  index_.reset(n);
  for (int32_t id = 0; id < static_cast<int32_t>(n); ++id) {
    const int32_t previous = index_.insert(text(id), id, text_of);
    if (previous >= 0) {
      throw Error(file.path() + ": " + kTokensKey + ": duplicate token " + quoted(text(id)) + " at ids " +
                  std::to_string(previous) + " and " + std::to_string(id));
    }
  }

  attrs_.assign(n, kAttrNormal);
  types_.assign(n, TokenType::Normal);
  if (const gguf::Value* types = parallel_array(file, kTypesKey, n, false)) {
    for (uint64_t i = 0; i < n; ++i) {
      const int64_t t = types->int_at(i);
      attrs_[i] = attr_from_type(t);
      types_[i] = type_from_int(t);
    }
  }
  if (const gguf::Value* scores = parallel_array(file, kScoresKey, n, true)) {
    scores_.resize(n);
    for (uint64_t i = 0; i < n; ++i) scores_[i] = static_cast<float>(scores->float_at(i));
  }
}

void Vocab::read_special_ids(const gguf::File& file, const VocabDefaults& defaults) {
  special_.bos = defaults.bos;
  special_.eos = defaults.eos;
  special_.unk = defaults.unk;
  const struct {
    const char* key;
    int32_t* id;
  } keys[] = {
      {"tokenizer.ggml.bos_token_id", &special_.bos},       {"tokenizer.ggml.eos_token_id", &special_.eos},
      {"tokenizer.ggml.eot_token_id", &special_.eot},       {"tokenizer.ggml.eom_token_id", &special_.eom},
      {"tokenizer.ggml.unknown_token_id", &special_.unk},   {"tokenizer.ggml.seperator_token_id", &special_.sep},
      {"tokenizer.ggml.padding_token_id", &special_.pad},   {"tokenizer.ggml.mask_token_id", &special_.mask},
      {"tokenizer.ggml.fim_pre_token_id", &special_.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &special_.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &special_.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &special_.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &special_.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &special_.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &special_.fim_pre},  {"tokenizer.ggml.suffix_token_id", &special_.fim_suf},
      {"tokenizer.ggml.middle_token_id", &special_.fim_mid},
  };
  for (const auto& k : keys) {
    if (!valid(*k.id)) *k.id = -1;
    const gguf::Value* value = file.find(k.key);
    if (!value) continue;
    if (!value->is_integer()) {
      throw Error(file.path() + ": " + k.key + ": expected an integer token id, found " +
                  gguf::value_type_name(value->type()));
    }
    // Out-of-range ids (converters write 0xFFFFFFFF for "none") keep the
    // default, as llama.cpp does.
    const int64_t id = value->as_int();
    if (id >= 0 && id < size()) *k.id = static_cast<int32_t>(id);
  }

  add_bos_ = file.get_bool("tokenizer.ggml.add_bos_token", defaults.add_bos);
  add_eos_ = file.get_bool("tokenizer.ggml.add_eos_token", false);
  add_space_prefix_ = file.get_bool("tokenizer.ggml.add_space_prefix", defaults.add_space_prefix);
  if (add_bos_ && special_.bos < 0) {
    throw Error(file.path() + ": tokenizer.ggml.add_bos_token is true, but the file names no valid bos token id");
  }
  if (add_eos_ && special_.eos < 0) {
    throw Error(file.path() + ": tokenizer.ggml.add_eos_token is true, but the file names no valid eos token id");
  }
}

void Vocab::mark_special_tokens(const gguf::File& file) {
  const auto make_control = [&](int32_t id) { attrs_[id] |= kAttrControl; };
  const auto find_first = [&](const auto& texts, int32_t& role) {
    if (role >= 0) return;
    for (const char* t : texts) {
      const int32_t id = find(t);
      if (id >= 0) {
        role = id;
        make_control(id);
        return;
      }
    }
  };
  find_first(kEotTexts, special_.eot);
  find_first(kEomTexts, special_.eom);
  find_first(kFimPreTexts, special_.fim_pre);
  find_first(kFimSufTexts, special_.fim_suf);
  find_first(kFimMidTexts, special_.fim_mid);
  find_first(kFimPadTexts, special_.fim_pad);
  find_first(kFimRepTexts, special_.fim_rep);
  find_first(kFimSepTexts, special_.fim_sep);

  std::vector<int32_t> eog;
  const auto add = [&](int32_t id) {
    if (id >= 0 && std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
  };
  add(special_.fim_pad);
  add(special_.fim_rep);
  add(special_.fim_sep);
  for (const char* t : kEndOfGenerationTexts) {
    const int32_t id = find(t);
    if (id >= 0) {
      add(id);
      make_control(id);
    }
  }
  add(special_.eos);
  add(special_.eot);
  add(special_.eom);
  // gpt-oss style vocabularies: <|end|> ends a message, not the generation.
  const int32_t end_id = find("<|end|>");
  if (end_id >= 0 && find("<|return|>") >= 0 && find("<|call|>") >= 0 && special_.eot != end_id) {
    eog.erase(std::remove(eog.begin(), eog.end(), end_id), eog.end());
    attrs_[end_id] = kAttrUserDefined;
  }
  std::sort(eog.begin(), eog.end());
  end_of_generation_ = std::move(eog);

  // Phi-3 special tokens swallow the whitespace after them (llama.cpp keys
  // this on the model name).
  std::string name = file.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id = 0; id < size(); ++id) {
      if (has_attr(id, kAttrControl | kAttrUserDefined | kAttrUnknown)) attrs_[id] |= kAttrRstrip;
    }
    for (const char* t : {"</s>"}) {
      if (int32_t id = find(t); id >= 0) attrs_[id] |= kAttrRstrip;
    }
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (int32_t id = find(t); id >= 0) attrs_[id] &= ~kAttrRstrip;
    }
  }
}

void Vocab::build_special_cache() {
  for (int32_t id = 0; id < size(); ++id) {
    if (has_attr(id, kAttrControl | kAttrUserDefined | kAttrUnknown)) special_cache_.push_back(id);
  }
  std::stable_sort(special_cache_.begin(), special_cache_.end(),
                   [&](int32_t a, int32_t b) { return text(a).size() > text(b).size(); });
  special_first_pair_.reserve(special_cache_.size());
  for (int32_t id : special_cache_) {
    std::string_view t = text(id);
    const uint8_t b0 = static_cast<uint8_t>(t[0]);
    const uint8_t b1 = t.size() > 1 ? static_cast<uint8_t>(t[1]) : 0;
    special_first_pair_.push_back(static_cast<uint16_t>(b0 << 8 | b1));
  }
}

void Vocab::partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  out.clear();
  if (text.empty()) return;
  out.push_back({-1, 0, text.size()});
  if (special_cache_.empty()) return;

  // Which bytes and byte pairs occur at all: most special tokens can be
  // skipped without searching the text for them.
  auto bytes_seen = std::make_unique<std::bitset<256>>();
  auto pairs_seen = std::make_unique<std::bitset<65536>>();
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(text[i]);
    bytes_seen->set(b);
    if (i + 1 < text.size()) pairs_seen->set(static_cast<size_t>(b) << 8 | static_cast<uint8_t>(text[i + 1]));
  }

  std::vector<Fragment> next;
  for (size_t k = 0; k < special_cache_.size(); ++k) {
    const int32_t id = special_cache_[k];
    const uint32_t a = attrs_[id];
    if (!parse_special && (a & (kAttrControl | kAttrUnknown))) continue;
    const std::string_view token = this->text(id);
    const uint16_t pair = special_first_pair_[k];
    if (token.size() == 1 ? !bytes_seen->test(pair >> 8) : !pairs_seen->test(pair)) continue;
    if (text.find(token) == std::string_view::npos) continue;

    next.clear();
    for (const Fragment& f : out) {
      if (f.is_token()) {
        next.push_back(f);
        continue;
      }
      size_t base = f.begin;
      while (base < f.end) {
        const size_t match = text.substr(0, f.end).find(token, base);
        if (match == std::string_view::npos) {
          next.push_back({-1, base, f.end});
          break;
        }
        size_t left_end = match;
        if (a & kAttrLstrip) {
          while (left_end > base && is_c_space(text[left_end - 1])) --left_end;
        }
        if (left_end > base) next.push_back({-1, base, left_end});
        next.push_back({id, match, match + token.size()});
        base = match + token.size();
        if (a & kAttrRstrip) {
          while (base < f.end && is_c_space(text[base])) ++base;
        }
      }
    }
    out.swap(next);
  }
}

}  // namespace flatline::tokenizer_detail
