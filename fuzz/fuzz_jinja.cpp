// The chat-template renderer on arbitrary template source (templates come from
// downloaded GGUFs): parse, then render a chat with tools, under tight limits.
// Every failure must be a jinja::Error (a flatline::Error) with a message.
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_target.h"
#include "jinja/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::ordered_json;
  static const ordered_json context = ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
        "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
      {"role": "tool", "content": "4"},
      {"role": "assistant", "content": "4."}
    ],
    "tools": [{"type": "function", "function": {"name": "add", "description": "adds",
      "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"
  })");
  flatline::jinja::RenderOptions options;
  options.now = flatline::jinja::CivilTime{2026, 12, 4, 12, 0, 0};
  options.max_output_bytes = 1u << 20;
  options.max_total_bytes = 8u << 20;
  options.max_loop_iterations = 100000;
  options.max_recursion_depth = 50;
  try {
    auto tmpl = flatline::jinja::Template::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    std::string text = tmpl.render(context, options);
    FUZZ_CHECK(text.size() <= options.max_output_bytes, "output within its limit");
  } catch (const flatline::Error&) {
  }
  return 0;
}
