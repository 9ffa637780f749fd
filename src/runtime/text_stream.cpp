#include "runtime/text_stream.h"

#include <algorithm>

namespace flatline {

size_t complete_utf8_prefix(std::string_view s) {
  // Look at most 3 bytes back for the start of a multi-byte sequence.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < need ? n - back : n;
  }
  return n;
}

TextStream::TextStream(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

bool TextStream::push(std::string_view bytes) {
  if (stopped_) return true;
  size_t search_from = text_.size();
  text_.append(bytes);
  for (const auto& stop : stops_) {
    size_t from = search_from >= stop.size() ? search_from - stop.size() + 1 : 0;
    size_t at = text_.find(stop, std::min(from, text_.size()));
    if (at != std::string::npos && at >= released_) {
      text_.resize(at);
      stopped_ = true;
      matched_ = stop;
    }
  }
  return stopped_;
}

std::string TextStream::release() {
  size_t safe = text_.size();
  if (!stopped_) {
    // Hold back a suffix that could still grow into a stop string.
    for (const auto& stop : stops_) {
      for (size_t len = std::min(stop.size() - 1, text_.size()); len > 0; --len) {
        if (text_.compare(text_.size() - len, len, stop, 0, len) == 0) {
          safe = std::min(safe, text_.size() - len);
          break;
        }
      }
    }
    safe = released_ + complete_utf8_prefix(std::string_view(text_).substr(released_, safe - released_));
  }
  if (safe <= released_) return {};
  std::string out = text_.substr(released_, safe - released_);
  released_ = safe;
  return out;
}

std::string TextStream::flush() {
  std::string out = text_.substr(released_);
  released_ = text_.size();
  return out;
}

}  // namespace flatline
