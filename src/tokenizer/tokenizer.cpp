#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "util/error.h"

namespace flatline {

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, render_special);
  return out;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  std::string kind = file.get_string("tokenizer.ggml.model", "");
  if (kind.empty()) throw Error(file.path() + ": no tokenizer (tokenizer.ggml.model is missing)");
  throw Error(file.path() + ": tokenizer kind '" + kind + "' is not supported");
}

}  // namespace flatline
