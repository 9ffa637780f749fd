#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pretokenizer.h"
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

SpecialTokenTexts special_token_texts(const gguf::File& file) {
  // The same defaults per kind as the tokenizers' VocabDefaults (SentencePiece:
  // BOS 1, EOS 2, added BOS; BPE: the pre-tokenizer's add_bos; RWKV: none).
  const std::string kind = file.get_string("tokenizer.ggml.model", "");
  int64_t bos = -1, eos = -1;
  bool add_bos = false;
  if (kind == "llama") {
    bos = 1;
    eos = 2;
    add_bos = true;
  } else if (kind == "gpt2") {
    try {
      add_bos = tokenizer_detail::PreTokenizer::from_name(file.get_string("tokenizer.ggml.pre", "")).add_bos();
    } catch (const Error&) {
    }
  }
  const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
  const int64_t n = tokens && tokens->is_array() && tokens->array_type() == gguf::ValueType::String
                        ? static_cast<int64_t>(tokens->array_size())
                        : 0;
  auto id_of = [&](const char* key, int64_t fallback) {
    const gguf::Value* v = file.find(key);
    const int64_t id = v && v->is_integer() ? v->as_int() : fallback;
    return id >= 0 && id < n ? id : (fallback >= 0 && fallback < n ? fallback : -1);
  };
  bos = id_of("tokenizer.ggml.bos_token_id", bos);
  eos = id_of("tokenizer.ggml.eos_token_id", eos);
  SpecialTokenTexts out;
  if (bos >= 0) out.bos = std::string(tokens->string_at(static_cast<uint64_t>(bos)));
  if (eos >= 0) out.eos = std::string(tokens->string_at(static_cast<uint64_t>(eos)));
  out.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", add_bos) && bos >= 0;
  out.add_eos = file.get_bool("tokenizer.ggml.add_eos_token", false) && eos >= 0;
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
