#include "convert/rwkv_vocab.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads `n` hex digits at s[i..]; -1 if they are not all hex.
int64_t read_hex(std::string_view s, size_t i, size_t n) {
  if (i + n > s.size()) return -1;
  int64_t v = 0;
  for (size_t k = 0; k < n; ++k) {
    const int d = hex_digit(s[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void append_code_point(std::string& out, uint32_t cp, bool bytes_literal) {
  if (bytes_literal) {
    out.push_back(static_cast<char>(cp));
  } else {
    unicode::append_utf8(out, cp);
  }
}

}  // namespace

std::string python_literal_bytes(std::string_view lit) {
  const std::string shown(lit.substr(0, 60));
  size_t i = 0;
  const bool bytes_literal = !lit.empty() && (lit[0] == 'b' || lit[0] == 'B');
  if (bytes_literal) ++i;
  if (i >= lit.size() || (lit[i] != '\'' && lit[i] != '"')) throw Error("expected a Python string literal, found " + shown);
  const char quote = lit[i++];
  if (lit.size() < i + 1 || lit.back() != quote) throw Error("unterminated Python string literal " + shown);
  const std::string_view body = lit.substr(i, lit.size() - i - 1);
  std::string out;
  for (size_t k = 0; k < body.size(); ++k) {
    const char c = body[k];
    if (c != '\\') {
      if (c == quote) throw Error("unescaped quote inside the Python literal " + shown);
      out.push_back(c);  // str literals are UTF-8 text already
      continue;
    }
    if (k + 1 >= body.size()) throw Error("Python literal " + shown + " ends in a backslash");
    const char e = body[++k];
    switch (e) {
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': {
        const int64_t v = read_hex(body, k + 1, 2);
        if (v < 0) throw Error("Python literal " + shown + ": \\x needs two hex digits");
        append_code_point(out, static_cast<uint32_t>(v), bytes_literal);
        k += 2;
        break;
      }
      case 'u':
      case 'U': {
        const size_t n = e == 'u' ? 4 : 8;
        const int64_t v = bytes_literal ? -1 : read_hex(body, k + 1, n);
        if (bytes_literal) {  // not an escape in bytes literals
          out.push_back('\\');
          out.push_back(e);
          break;
        }
        if (v < 0 || v > 0x10ffff) throw Error("Python literal " + shown + ": bad \\" + e + " escape");
        unicode::append_utf8(out, static_cast<uint32_t>(v));
        k += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {  // up to three octal digits
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int n = 0; n < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7'; ++n)
            v = v * 8 + static_cast<uint32_t>(body[++k] - '0');
          append_code_point(out, v, bytes_literal);
        } else {  // Python keeps unknown escapes as they are
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

std::string python_bytes_repr_body(std::string_view bytes) {
  const bool has_single = bytes.find('\'') != std::string_view::npos;
  const bool has_double = bytes.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (const char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (b < 0x20 || b >= 0x7f) {
      out += "\\x";
      out.push_back(hex[b >> 4]);
      out.push_back(hex[b & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

RwkvVocabSummary add_rwkv_world_tokenizer(gguf::Writer& writer, const std::string& vocab_path, int64_t vocab_size,
                                          const std::string& tokenizer_config_path) {
  std::ifstream in(vocab_path, std::ios::binary);
  if (!in) throw Error(vocab_path + ": cannot open (an RWKV World checkpoint ships rwkv_vocab_v20230424.txt)");
  std::vector<std::string> tokens = {"<s>"};
  std::vector<int32_t> types = {3};  // CONTROL
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto fail = [&](const std::string& what) {
      throw Error(vocab_path + ":" + std::to_string(line_no) + ": " + what + " (expected \"ID LITERAL LENGTH\")");
    };
    const size_t first_space = line.find(' ');
    const size_t last_space = line.rfind(' ');
    if (first_space == std::string::npos || last_space <= first_space) fail("malformed entry");
    const std::string id = line.substr(0, first_space);
    const std::string length = line.substr(last_space + 1);
    if (id != std::to_string(tokens.size())) {
      fail("id " + id + " where " + std::to_string(tokens.size()) + " was expected (ids are 1, 2, 3, ... in order)");
    }
    std::string bytes;
    try {
      bytes = python_literal_bytes(line.substr(first_space + 1, last_space - first_space - 1));
    } catch (const Error& e) {
      fail(e.what());
    }
    if (length != std::to_string(bytes.size())) {
      fail("the literal is " + std::to_string(bytes.size()) + " bytes but the entry says " + length);
    }
    tokens.push_back(python_bytes_repr_body(bytes));
    types.push_back(1);  // NORMAL
  }
  RwkvVocabSummary summary;
  summary.n_entries = static_cast<int64_t>(tokens.size()) - 1;
  if (vocab_size < static_cast<int64_t>(tokens.size())) {
    throw Error(vocab_path + ": " + std::to_string(tokens.size()) + " tokens (with <s>) do not fit vocab_size " +
                std::to_string(vocab_size));
  }
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < vocab_size; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(5);  // UNUSED
  }
  summary.n_tokens = vocab_size;

  nlohmann::json config = nlohmann::json::object();
  if (!tokenizer_config_path.empty() && std::filesystem::exists(tokenizer_config_path)) {
    std::ifstream c(tokenizer_config_path, std::ios::binary);
    try {
      config = nlohmann::json::parse(c);
    } catch (const nlohmann::json::exception& e) {
      throw Error(tokenizer_config_path + ": not valid JSON: " + e.what());
    }
  }
  writer.add_string("tokenizer.ggml.model", "rwkv");
  writer.add_string_array("tokenizer.ggml.tokens", tokens);
  writer.add_int32_array("tokenizer.ggml.token_type", types);
  // llama.cpp's hack: bos = eos = 0, and "\n\n" ends a turn.
  writer.add_uint32("tokenizer.ggml.bos_token_id", 0);
  writer.add_uint32("tokenizer.ggml.eos_token_id", 0);
  writer.add_uint32("tokenizer.ggml.eot_token_id", 261);
  for (const char* role : {"bos", "eos"}) {
    const std::string key = std::string("add_") + role + "_token";
    if (config.is_object() && config.contains(key) && config[key].is_boolean())
      writer.add_bool("tokenizer.ggml." + key, config[key].get<bool>());
  }
  if (config.is_object() && config.contains("chat_template") && config["chat_template"].is_string()) {
    writer.add_string("tokenizer.chat_template", config["chat_template"].get<std::string>());
  } else {
    writer.add_string("tokenizer.chat_template", "rwkv-world");
  }
  return summary;
}

}  // namespace flatline::convert
