// Hugging Face tokenizer.json (+ tokenizer_config.json) -> GGUF tokenizer
// metadata, written the way llama.cpp's convert_hf_to_gguf.py writes it, so
// Tokenizer::from_gguf then tokenizes as llama.cpp would.
//
//   byte-level BPE (GPT-2 / Llama 3 / Qwen style)  -> tokenizer.ggml.model "gpt2":
//       tokens, token_type, merges, pre (given by the caller: the pre-tokenizer
//       is not something tokenizer.json names in a way llama.cpp uses)
//   BPE with byte_fallback (SentencePiece style, e.g. Gemma 3) -> "llama":
//       tokens, token_type and scores. llama.cpp reads scores from
//       tokenizer.model; tokenizer.json has none, so a token's score is minus
//       the rank of the first merge that makes it (HF derived its merge order
//       from those scores, so the order of the scores is the same).
// Added tokens become CONTROL (special, or looking like "<|...|>") or
// USER_DEFINED; ids the tokenizer leaves free up to vocab_size become
// "[PAD<id>]" UNUSED tokens. Special ids, add_bos/add_eos and the chat
// template follow gguf-py's SpecialVocab: a tokenizer_config.json entry
// ("bos_token": "<s>") names an added token; config.json's bos_token_id
// etc. fill the roles still open; the chat template comes from
// tokenizer_config.json, else chat_template.jinja / chat_template.json.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "gguf/gguf_writer.h"

namespace flatline {

struct HfTokenizerOptions {
  // tokenizer.ggml.pre for byte-level BPE vocabularies ("llama-bpe", "qwen2",
  // "gpt-2", ...); required for those, ignored for SentencePiece-style ones.
  std::string pre;
  // Rows of the model's embedding (config.json vocab_size); 0 = one past the
  // largest id in tokenizer.json.
  int64_t vocab_size = 0;
  // tokenizer_config.json; "" = the file next to tokenizer.json, if any.
  std::string config_path;
  // The model's config.json, for special ids tokenizer_config.json leaves
  // open ("" = none).
  std::string model_config_path;
  // tokenizer.ggml.add_space_prefix as the caller decided it (llama.cpp's
  // Llama converter takes tokenizer_config.json's add_prefix_space);
  // nullopt = SentencePiece-style vocabularies derive it from the normalizer.
  std::optional<bool> add_space_prefix;
  // Overrides tokenizer.ggml.add_bos_token (nullopt = from the configs).
  std::optional<bool> add_bos;
};

struct HfTokenizerSummary {
  std::string model;  // "gpt2" or "llama"
  int64_t n_tokens = 0;
  int64_t n_merges = 0;
  int64_t n_added = 0;
  std::map<std::string, int64_t> special_ids;  // "bos", "eos", ... as written
};

// Throws Error when the file is unreadable or not a supported tokenizer.
HfTokenizerSummary add_hf_tokenizer(gguf::Writer& writer, const std::string& tokenizer_json_path,
                                    const HfTokenizerOptions& options = {});

}  // namespace flatline
