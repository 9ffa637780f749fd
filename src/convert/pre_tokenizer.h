// tokenizer.ggml.pre for a byte-level BPE tokenizer.json, picked the way
// llama.cpp's converter picks it: it tokenizes a fixed check text with the
// model's tokenizer and looks the SHA-256 of the id list up in a table of
// known models (get_vocab_base_pre). flatline cannot run Hugging Face's
// tokenizer, so it first recognises the pre-tokenizer from tokenizer.json's
// "pre_tokenizer" section (which regex family it is), tokenizes the check
// text with that, and takes the table's name when the fingerprint is there
// (a model llama.cpp knows); otherwise the family's canonical name. A
// pre-tokenizer config it does not recognise is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/hf_tokenizer.h"

namespace flatline::convert {

struct PreTokenizerChoice {
  std::string name;         // tokenizer.ggml.pre
  std::string fingerprint;  // sha256 of the check text's ids, as llama.cpp computes it
  bool known_fingerprint = false;
  std::vector<int32_t> check_ids;  // the check text's ids the fingerprint is taken of
  std::string how;          // one line for the log
};

// `options` are those the vocabulary will be converted with (their `pre`
// is ignored). Throws Error for an unrecognised pre_tokenizer section.
PreTokenizerChoice choose_pre_tokenizer(const std::string& tokenizer_json_path, const HfTokenizerOptions& options);

// llama.cpp's check text (chktxt in get_vocab_base_pre) and the Python
// rendering of an id list it hashes ("[1, 2, 3]").
const std::string& pre_tokenizer_check_text();
std::string python_list(const std::vector<int32_t>& ids);

}  // namespace flatline::convert
