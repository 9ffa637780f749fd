#include "tokenizer/rwkv_tokenizer.h"

#include "util/error.h"

namespace flatline::tokenizer_detail {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string unescape_rwkv_token(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    const char c = escaped[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= escaped.size()) {
      throw Error("RWKV token '" + std::string(escaped) + "': expected a character after the final backslash");
    }
    const char e = escaped[++i];
    switch (e) {
      case 't': out.push_back('\t'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 'x': {
        const int hi = i + 1 < escaped.size() ? hex_value(escaped[i + 1]) : -1;
        const int lo = i + 2 < escaped.size() ? hex_value(escaped[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          throw Error("RWKV token '" + std::string(escaped) + "': expected two hex digits after \\x");
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      default: out.push_back(e);  // \\ \' \" and anything else: the character itself
    }
  }
  return out;
}

RwkvTokenizer::RwkvTokenizer(const gguf::File& file)
    : VocabTokenizer(Vocab::load(file, VocabDefaults{}), "rwkv", file.get_string("tokenizer.ggml.pre", "")) {
  const int32_t n = vocab_.size();
  std::vector<ByteTrie::Entry> entries;
  entries.reserve(n);
  bytes_offsets_.reserve(n + 1);
  bytes_offsets_.push_back(0);
  for (int32_t id = 0; id < n; ++id) {
    std::string bytes = unescape_rwkv_token(vocab_.text(id));
    bytes_storage_ += bytes;
    bytes_offsets_.push_back(static_cast<uint32_t>(bytes_storage_.size()));
    // Control ("<s>") and unused ("[PAD7]") tokens are not text: the original
    // RWKV tokenizer never produces them from raw input. (llama.cpp puts them
    // in its trie too, so "<s>" typed by a user becomes token 0 there.)
    if (vocab_.has_attr(id, kAttrControl | kAttrUnused)) continue;
    entries.push_back({std::move(bytes), id});
  }
  trie_ = ByteTrie(std::move(entries));
}

void RwkvTokenizer::encode_text(std::string_view text, bool, std::vector<int32_t>& out) const {
  size_t pos = 0;
  while (pos < text.size()) {
    const ByteTrie::Match m = trie_.longest_prefix(text.substr(pos));
    if (m.value >= 0) {
      out.push_back(m.value);
      pos += m.length;
      continue;
    }
    if (vocab_.special().unk < 0) {
      static const char* hex = "0123456789abcdef";
      const uint8_t b = static_cast<uint8_t>(text[pos]);
      throw Error(std::string("RWKV vocabulary has no token for byte 0x") + hex[b >> 4] + hex[b & 15] +
                  " and no unknown token");
    }
    out.push_back(vocab_.special().unk);
    ++pos;
  }
}

std::string RwkvTokenizer::piece_bytes(int32_t id) const {
  return bytes_storage_.substr(bytes_offsets_[id], bytes_offsets_[id + 1] - bytes_offsets_[id]);
}

int32_t RwkvTokenizer::find_by_bytes(std::string_view bytes) const { return trie_.find(bytes); }

}  // namespace flatline::tokenizer_detail
