// Grammars from users: the input is GBNF text, a NUL byte, then bytes to feed.
// A grammar either is refused with flatline::Error or follows the bytes; the
// matcher's state count stays bounded with compact(), as generation uses it.
#include <string_view>

#include "fuzz_target.h"
#include "runtime/grammar.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = input.find('\0');
  std::string_view gbnf = input.substr(0, split);
  std::string_view feed = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  try {
    flatline::GrammarMatcher matcher(flatline::Grammar::parse(gbnf));
    auto state = matcher.start();
    for (char c : feed) {
      state = matcher.next(state, static_cast<uint8_t>(c));
      if (state == flatline::GrammarMatcher::kDead) break;
      (void)matcher.accepts(state);
      (void)matcher.min_remaining(state);
      if (matcher.state_count() > 4096) state = matcher.compact(state);
    }
  } catch (const flatline::Error&) {
  }
  return 0;
}
