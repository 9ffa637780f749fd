#include "tokenizer_support.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace flatline::test {

LoadedTokenizer load_tokenizer(const std::string& gguf_path) {
  LoadedTokenizer t;
  t.file = std::make_unique<gguf::File>(gguf::File::open(gguf_path));
  t.tokenizer = Tokenizer::from_gguf(*t.file);
  return t;
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<VocabCase> read_vocab_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string raw = slurp(inp_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::vector<int32_t>> outputs;
  std::istringstream out(slurp(out_path));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (long id; ls >> id;) ids.push_back(static_cast<int32_t>(id));
    outputs.push_back(std::move(ids));
  }
  if (inputs.size() != outputs.size()) {
    throw std::runtime_error(inp_path + ": " + std::to_string(inputs.size()) + " inputs but " +
                             std::to_string(outputs.size()) + " output lines");
  }
  std::vector<VocabCase> cases;
  for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], outputs[i]});
  return cases;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::string random_bytes(std::mt19937& rng, size_t max_length) {
  std::uniform_int_distribution<size_t> len(0, max_length);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

static void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string random_utf8(std::mt19937& rng, size_t max_codepoints) {
  std::uniform_int_distribution<size_t> len(0, max_codepoints);
  std::uniform_int_distribution<int> plane(0, 9);
  std::string s;
  const size_t n = len(rng);
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp;
    switch (plane(rng)) {
      case 0: case 1: case 2: case 3: cp = std::uniform_int_distribution<uint32_t>(0, 0x7F)(rng); break;
      case 4: cp = std::uniform_int_distribution<uint32_t>(0x80, 0x7FF)(rng); break;
      case 5: case 6: cp = std::uniform_int_distribution<uint32_t>(0x800, 0xFFFD)(rng); break;
      case 7: cp = std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng); break;
      default: cp = std::uniform_int_distribution<uint32_t>(0x10000, 0x10FFFF)(rng); break;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x20;  // no surrogates in valid UTF-8
    append_utf8(s, cp);
  }
  return s;
}

std::string random_text(std::mt19937& rng, size_t max_pieces) {
  static const char* pieces[] = {
      "the", " the", "The", " quick", " brown", " fox", "jumps", " over", " lazy", " dog", "Hello", " world", ",",
      ".", "!", "?", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "'s", "'ll", "'VE", "don't", "123", "4567",
      "3.14", "1e-5", "(", ")", "{", "}", "[", "]", "<", ">", "=", "==", "->", "::", "#include", "std::vector",
      "def ", "return", "    ", "\xe4\xbd\xa0\xe5\xa5\xbd", "\xe4\xb8\x96\xe7\x95\x8c", "\xe6\x97\xa5\xe6\x9c\xac",
      "\xf0\x9f\x90\x9d", "\xf0\x9f\x98\x81", "\xc3\xa9t\xc3\xa9", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
      "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "\xe2\x80\x94", "\xe2\x80\x9c", "\xc2\xa0", "\xe3\x80\x80",
      "aaaa", "____", "----", "====", "...", "\xe2\x96\x81", "<s>", "</s>", "<|endoftext|>", "[PAD1]"};
  std::uniform_int_distribution<size_t> len(0, max_pieces);
  std::uniform_int_distribution<size_t> pick(0, std::size(pieces) - 1);
  std::string s;
  const size_t n = len(rng);
  for (size_t i = 0; i < n; ++i) s += pieces[pick(rng)];
  return s;
}

}  // namespace flatline::test
