// Splits a reply as it streams into its parts: reasoning (between <think>
// and </think>, or from the start when the prompt opened <think> itself),
// the answer, and tool calls (in the syntax of runtime/tool_calls.h).
// Text that might still become a marker is held back, so no partial
// "<tool_ca" or "</thi" ever reaches the answer; a call whose body is not a
// valid call stays in the answer as the model wrote it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tool_calls.h"

namespace flatline {

struct ReplySplitterOptions {
  bool separate_thinking = false;          // <think>...</think> at the start of the reply is reasoning
  bool starts_in_thinking = false;         // the prompt ends inside <think>: the reply begins as reasoning
  std::optional<ToolCallFormat> tools;     // parse calls in this syntax (nullopt: no tools)
  bool active() const { return separate_thinking || starts_in_thinking || tools.has_value(); }
};

// What became ready with one push() or finish().
struct ReplyParts {
  std::string content;
  std::string thinking;
  std::vector<ToolCall> calls;
  bool empty() const { return content.empty() && thinking.empty() && calls.empty(); }
};

class ReplySplitter {
 public:
  explicit ReplySplitter(ReplySplitterOptions options);

  // Adds visible reply text; returns the parts that are now certain.
  ReplyParts push(std::string_view text);
  // The reply ended: everything still held back.
  ReplyParts finish();

  // The whole reply so far, split.
  const std::string& content() const { return all_.content; }
  const std::string& thinking() const { return all_.thinking; }
  const std::vector<ToolCall>& calls() const { return all_.calls; }

  // The whole of `text` split at once.
  static ReplyParts split(const ReplySplitterOptions& options, std::string_view text);

 private:
  enum class Mode { Content, Thinking, Call };
  void process(bool at_end, ReplyParts& out);
  bool step_content(bool at_end, ReplyParts& out);
  bool step_thinking(bool at_end, ReplyParts& out);
  bool step_call(bool at_end, ReplyParts& out);
  void emit_content(std::string_view text, ReplyParts& out);
  void emit_thinking(std::string_view text, ReplyParts& out);
  void end_call(std::string_view body, ReplyParts& out);

  ReplySplitterOptions options_;
  Mode mode_ = Mode::Content;
  std::string pending_;        // text not yet classified
  bool at_start_ = true;       // nothing but whitespace of the answer seen yet
  bool trim_content_ = false;  // drop the answer's leading whitespace (after </think> or a call)
  std::string held_ws_;        // trailing whitespace of the answer, not yet shown
  std::string held_think_ws_;  // trailing whitespace of the reasoning
  bool thinking_started_ = false;
  std::string call_close_;     // the marker that ends the call being read ("" = the end of the reply)
  std::string call_body_;
  std::string call_raw_;       // the text as written, in case it is not a call after all
  ReplyParts all_;
};

// Whether `prompt` ends inside a reasoning block the template opened (a
// <think> after the last </think>, followed by whitespace only).
bool prompt_opens_thinking(std::string_view prompt);

}  // namespace flatline
