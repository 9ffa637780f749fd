// Turning a stream of token bytes into text a client can display:
// complete UTF-8 only, and nothing that might be the start of a stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace flatline {

// Length of the longest prefix of `s` that does not end inside an incomplete
// UTF-8 sequence (invalid bytes count as complete, so they are not held
// back forever).
size_t complete_utf8_prefix(std::string_view s);

// Accumulates generated text; release() hands out what is safe to show.
class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_strings = {});

  // Adds token bytes. Returns true if a stop string is now complete; the
  // text before it is then available from release() / flush().
  bool push(std::string_view bytes);
  // Text that can be shown now (complete UTF-8, not a possible stop-string start).
  std::string release();
  // Everything still held back (at the end of generation), minus any stop string.
  std::string flush();
  // All text shown so far plus what flush() would return.
  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }
  // The stop string that ended the text (empty until one did).
  const std::string& matched_stop() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string text_;       // full visible text (up to a stop string)
  size_t released_ = 0;    // bytes of text_ already handed out
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace flatline
