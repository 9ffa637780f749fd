// RWKV World vocabulary (rwkv_vocab_v20230424.txt: lines "ID LITERAL LEN",
// LITERAL a Python str or bytes literal) -> GGUF tokenizer metadata, as
// llama.cpp's _set_vocab_rwkv_world writes it: token 0 "<s>" (CONTROL), then
// every entry in file order as the Python repr of its bytes without b'...'
// (NORMAL), "[PADn]" (UNUSED) up to vocab_size; tokenizer.ggml.model "rwkv";
// bos = eos = 0 and eot = 261 ("\n\n"); the chat template of
// tokenizer_config.json, else "rwkv-world".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gguf/gguf_writer.h"

namespace flatline::convert {

struct RwkvVocabSummary {
  int64_t n_entries = 0;  // lines of the vocabulary file
  int64_t n_tokens = 0;   // with <s> and the padding
};

// Throws Error naming the file and line for malformed entries.
RwkvVocabSummary add_rwkv_world_tokenizer(gguf::Writer& writer, const std::string& vocab_path, int64_t vocab_size,
                                          const std::string& tokenizer_config_path);

// The bytes of a Python string or bytes literal ('a\n', b'\xe4', "it's");
// str literals are encoded as UTF-8. Throws Error for malformed literals.
std::string python_literal_bytes(std::string_view literal);
// Python's repr(bytes) without the b'' quotes: llama.cpp's token text.
std::string python_bytes_repr_body(std::string_view bytes);

}  // namespace flatline::convert
