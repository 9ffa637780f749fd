#include "runtime/reply_splitter.h"

#include <algorithm>

namespace flatline {

namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

size_t first_non_space(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!is_space(s[i])) return i;
  return std::string_view::npos;
}

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_marker_suffix(std::string_view text, std::string_view marker) {
  for (size_t len = std::min(marker.size() - 1, text.size()); len > 0; --len)
    if (text.substr(text.size() - len) == marker.substr(0, len)) return len;
  return 0;
}

// Splits `text` into its body and its trailing whitespace.
std::pair<std::string_view, std::string_view> split_trailing_space(std::string_view text) {
  size_t end = text.size();
  while (end > 0 && is_space(text[end - 1])) --end;
  return {text.substr(0, end), text.substr(end)};
}

}  // namespace

bool prompt_opens_thinking(std::string_view prompt) {
  const size_t open = prompt.rfind(kThinkOpen);
  if (open == std::string_view::npos) return false;
  const std::string_view rest = prompt.substr(open + kThinkOpen.size());
  return first_non_space(rest) == std::string_view::npos;
}

ReplySplitter::ReplySplitter(ReplySplitterOptions options) : options_(options) {
  if (options_.starts_in_thinking) mode_ = Mode::Thinking;
}

ReplyParts ReplySplitter::push(std::string_view text) {
  ReplyParts out;
  if (!options_.active()) {
    out.content = std::string(text);
  } else {
    pending_.append(text);
    process(/*at_end=*/false, out);
  }
  all_.content += out.content;
  all_.thinking += out.thinking;
  all_.calls.insert(all_.calls.end(), out.calls.begin(), out.calls.end());
  return out;
}

ReplyParts ReplySplitter::finish() {
  ReplyParts out;
  if (options_.active()) {
    process(/*at_end=*/true, out);
    // Whitespace after the last call or at the end of the answer goes;
    // the answer's own trailing spaces are kept when there were no calls.
    if (all_.calls.empty() && out.calls.empty() && !trim_content_) out.content += held_ws_;
    held_ws_.clear();
  }
  all_.content += out.content;
  all_.thinking += out.thinking;
  all_.calls.insert(all_.calls.end(), out.calls.begin(), out.calls.end());
  return out;
}

ReplyParts ReplySplitter::split(const ReplySplitterOptions& options, std::string_view text) {
  ReplySplitter s(options);
  ReplyParts a = s.push(text);
  ReplyParts b = s.finish();
  a.content += b.content;
  a.thinking += b.thinking;
  a.calls.insert(a.calls.end(), b.calls.begin(), b.calls.end());
  return a;
}

void ReplySplitter::process(bool at_end, ReplyParts& out) {
  for (;;) {
    bool more = false;
    switch (mode_) {
      case Mode::Content: more = step_content(at_end, out); break;
      case Mode::Thinking: more = step_thinking(at_end, out); break;
      case Mode::Call: more = step_call(at_end, out); break;
    }
    if (!more) return;
  }
}

// Returns true when the mode changed and there is more to look at.
bool ReplySplitter::step_content(bool at_end, ReplyParts& out) {
  if (at_start_) {
    const size_t p = first_non_space(pending_);
    if (p == std::string::npos) {
      if (at_end) {
        emit_content(pending_, out);
        pending_.clear();
      }
      return false;
    }
    const std::string_view rest = std::string_view(pending_).substr(p);
    if (options_.separate_thinking) {
      if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
        pending_.erase(0, p + kThinkOpen.size());
        mode_ = Mode::Thinking;
        return true;
      }
      if (!at_end && rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) return false;
    }
    if (options_.tools) {
      const ToolCallSyntax& s = tool_call_syntax(*options_.tools);
      // A reply that is a bare JSON object (Llama 3), or a list whose
      // marker is a control token the text does not show (Mistral, Granite).
      const bool bare_object = *options_.tools == ToolCallFormat::Llama3Json && rest[0] == '{';
      // "[TOOL_CALLS]" itself starts with "[": wait until it is clear
      // whether the marker is being written.
      const std::string_view head = rest.substr(0, std::min(rest.size(), s.open.size()));
      const bool may_be_marker = !s.open.empty() && s.open.compare(0, head.size(), head) == 0;
      if (may_be_marker && !at_end && rest.size() < s.open.size()) return false;
      const bool bare_list = s.list && rest[0] == '[' && !may_be_marker;
      if (bare_object || bare_list) {
        call_close_.clear();
        call_raw_ = pending_;
        call_body_ = std::string(rest);
        pending_.clear();
        at_start_ = false;
        mode_ = Mode::Call;
        return true;
      }
    }
    at_start_ = false;
  }
  if (!options_.tools || tool_call_syntax(*options_.tools).open.empty()) {
    emit_content(pending_, out);
    pending_.clear();
    return false;
  }
  const ToolCallSyntax& s = tool_call_syntax(*options_.tools);
  const size_t at = pending_.find(s.open);
  if (at != std::string::npos) {
    emit_content(std::string_view(pending_).substr(0, at), out);
    // Whitespace just before a call is layout, not answer (kept in case
    // the call turns out not to be one).
    call_raw_ = held_ws_ + s.open;
    held_ws_.clear();
    call_close_ = s.close;
    call_body_.clear();
    pending_.erase(0, at + s.open.size());
    mode_ = Mode::Call;
    return true;
  }
  const size_t hold = at_end ? 0 : partial_marker_suffix(pending_, s.open);
  emit_content(std::string_view(pending_).substr(0, pending_.size() - hold), out);
  pending_.erase(0, pending_.size() - hold);
  return false;
}

bool ReplySplitter::step_thinking(bool at_end, ReplyParts& out) {
  const size_t at = pending_.find(kThinkClose);
  if (at != std::string::npos) {
    emit_thinking(std::string_view(pending_).substr(0, at), out);
    held_think_ws_.clear();  // whitespace before </think> is layout
    pending_.erase(0, at + kThinkClose.size());
    mode_ = Mode::Content;
    at_start_ = true;
    trim_content_ = true;
    return true;
  }
  const size_t hold = at_end ? 0 : partial_marker_suffix(pending_, kThinkClose);
  emit_thinking(std::string_view(pending_).substr(0, pending_.size() - hold), out);
  pending_.erase(0, pending_.size() - hold);
  return false;
}

bool ReplySplitter::step_call(bool at_end, ReplyParts& out) {
  if (!call_close_.empty()) {
    const size_t at = pending_.find(call_close_);
    if (at != std::string::npos) {
      call_body_.append(pending_, 0, at);
      call_raw_ += pending_.substr(0, at) + call_close_;
      pending_.erase(0, at + call_close_.size());
      end_call(call_body_, out);
      mode_ = Mode::Content;
      return true;
    }
  }
  // Hold back what may be the start of the closing marker.
  const size_t hold = at_end || call_close_.empty() ? 0 : partial_marker_suffix(pending_, call_close_);
  call_body_.append(pending_, 0, pending_.size() - hold);
  call_raw_.append(pending_, 0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  if (at_end) {
    end_call(call_body_, out);  // an unclosed call still counts when its body is one
    mode_ = Mode::Content;
  }
  return false;
}

void ReplySplitter::end_call(std::string_view body, ReplyParts& out) {
  auto calls = parse_tool_call_body(*options_.tools, body);
  if (calls) {
    out.calls.insert(out.calls.end(), calls->begin(), calls->end());
    trim_content_ = true;  // whitespace between and after calls is layout
  } else {
    // Not a call after all: the text stays in the answer as written.
    trim_content_ = false;
    emit_content(call_raw_, out);
  }
  call_raw_.clear();
  call_body_.clear();
}

void ReplySplitter::emit_content(std::string_view text, ReplyParts& out) {
  if (text.empty()) return;
  std::string s = held_ws_ + std::string(text);
  held_ws_.clear();
  if (trim_content_) {
    const size_t p = first_non_space(s);
    if (p == std::string::npos) return;
    s.erase(0, p);
    trim_content_ = false;
  }
  if (!options_.tools) {  // only calls make trailing whitespace uncertain
    out.content += s;
    return;
  }
  auto [body, space] = split_trailing_space(s);
  out.content += body;
  held_ws_ = std::string(space);
}

void ReplySplitter::emit_thinking(std::string_view text, ReplyParts& out) {
  if (text.empty()) return;
  std::string s = held_think_ws_ + std::string(text);
  held_think_ws_.clear();
  if (!thinking_started_) {  // the reasoning's leading newline is layout
    const size_t p = first_non_space(s);
    if (p == std::string::npos) return;
    s.erase(0, p);
    thinking_started_ = true;
  }
  auto [body, space] = split_trailing_space(s);
  out.thinking += body;
  held_think_ws_ = std::string(space);
}

}  // namespace flatline
