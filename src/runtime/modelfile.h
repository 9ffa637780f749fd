// Ollama's Modelfile, parsed (not yet checked against the models directory;
// server/model_create.h does that):
//
//   # a comment
//   FROM ./rwkv7-2.9B-world-Q8_0.gguf      (a path, or the name of a model)
//   PARAMETER temperature 0.7
//   PARAMETER stop "User:"                   (repeatable)
//   SYSTEM """You are a helpful assistant.
//   You answer briefly."""
//   TEMPLATE chatml
//   MESSAGE user Hello                       (repeatable)
//   LICENSE "MIT"                            (repeatable)
//   ADAPTER ./lora.gguf                      (parsed; flatline refuses it)
//
// Instructions are case-insensitive. A value is the rest of the line, a
// "quoted string" (\" and \\ escapes) or a """triple-quoted""" block that may
// span lines. Every error names the line it is on (ModelfileError::line).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace flatline {

class ModelfileError : public Error {
 public:
  ModelfileError(int line, const std::string& message)
      : Error("Modelfile line " + std::to_string(line) + ": " + message), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

struct ModelfileValue {
  std::string text;
  int line = 0;  // where the instruction starts (1-based)
};

struct ModelfileParameter {
  std::string name;  // lower case, as Ollama's option keys
  std::string value;
  int line = 0;
};

struct ModelfileMessage {
  std::string role;  // system | user | assistant
  std::string content;
  int line = 0;
};

struct Modelfile {
  std::optional<ModelfileValue> from;
  std::vector<ModelfileParameter> parameters;
  std::optional<ModelfileValue> template_text;  // the last TEMPLATE
  std::optional<ModelfileValue> system;         // the last SYSTEM
  std::vector<ModelfileMessage> messages;
  std::vector<ModelfileValue> licenses;
  std::vector<ModelfileValue> adapters;
};

// At most this many bytes of Modelfile text are accepted.
constexpr size_t kMaxModelfileBytes = 4u << 20;

// Throws ModelfileError for an unknown instruction, a missing argument, an
// unterminated quote, a MESSAGE role other than system/user/assistant, a
// second FROM, no FROM at all, or text larger than kMaxModelfileBytes.
Modelfile parse_modelfile(std::string_view text);

}  // namespace flatline
