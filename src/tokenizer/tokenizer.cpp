#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/rwkv_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "util/error.h"

namespace flatline {

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_bytes(ids[i], render_special);
    if (i == 0 && strip_decoded_prefix_space_ && !piece.empty() && piece[0] == ' ' && !is_control(ids[0])) {
      piece.erase(0, 1);
    }
    out += piece;
  }
  return out;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  const gguf::Value* model = file.find("tokenizer.ggml.model");
  if (!model) throw Error(file.path() + ": no tokenizer (tokenizer.ggml.model is missing)");
  if (model->type() != gguf::ValueType::String) {
    throw Error(file.path() + ": tokenizer.ggml.model: expected a string, found " +
                gguf::value_type_name(model->type()));
  }
  const std::string kind(model->as_string());
  if (kind == "rwkv") return std::make_unique<tokenizer_detail::RwkvTokenizer>(file);
  if (kind == "llama") return std::make_unique<tokenizer_detail::SpmTokenizer>(file);
  if (kind == "gpt2") return std::make_unique<tokenizer_detail::BpeTokenizer>(file);
  throw Error(file.path() + ": tokenizer.ggml.model '" + kind +
              "' is not supported (expected one of: rwkv, llama, gpt2)");
}

}  // namespace flatline
