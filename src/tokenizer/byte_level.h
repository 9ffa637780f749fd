// GPT-2's reversible byte <-> code point mapping used by byte-level BPE
// vocabularies: printable Latin-1 bytes stand for themselves, the other 68
// bytes (controls, space, 0x7F-0xA0, 0xAD) for U+0100.. in byte order, so
// every token text is printable. Internal to src/tokenizer/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flatline::tokenizer_detail {

uint32_t byte_to_codepoint(uint8_t byte);
// The byte a code point stands for, or -1 if it stands for none.
int codepoint_to_byte(uint32_t cp);
// Byte-level text of raw bytes ("a b" -> "aĠb").
std::string byte_level_encode(std::string_view bytes);

// The byte of a byte-fallback token text "<0xXX>" (either case), or -1.
int parse_byte_token(std::string_view text);

}  // namespace flatline::tokenizer_detail
