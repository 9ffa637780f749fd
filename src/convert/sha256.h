// SHA-256 (FIPS 180-4), for the pre-tokenizer fingerprint llama.cpp's
// converter takes of a tokenizer (see pre_tokenizer.h).
#pragma once

#include <string>
#include <string_view>

namespace flatline::convert {

std::string sha256_hex(std::string_view data);  // lowercase hex digest

}  // namespace flatline::convert
