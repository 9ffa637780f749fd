// A Jinja2 interpreter for the templates Hugging Face chat models ship
// (tokenizer.chat_template): parse once, render with a JSON context.
//
//   jinja::Template t = jinja::Template::parse(source);
//   std::string prompt = t.render({{"messages", messages}, {"add_generation_prompt", true},
//                                  {"bos_token", "<s>"}, {"eos_token", "</s>"}});
//
// Rendering follows transformers' chat-template environment: an immutable
// sandbox with trim_blocks and lstrip_blocks, the loopcontrols extension
// (break / continue), the {% generation %} tag, `tojson` as json.dumps with
// ensure_ascii=False, and the globals raise_exception and strftime_now (plus
// Jinja's own range, dict, namespace, cycler, joiner). Output is meant to be
// byte-identical to Python's jinja2 for those templates; README.md ("Jinja
// chat templates") lists what is not supported.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jinja/error.h"

namespace flatline::jinja {

namespace ast {
struct Stmt;
}

// A wall-clock time for strftime_now (local time, no time zone).
struct CivilTime {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0;
};

struct RenderOptions {
  // strftime_now's "now"; unset: the local time when render() starts.
  std::optional<CivilTime> now;
  // Limits that stop a hostile template (one from a downloaded GGUF) from
  // hanging or exhausting memory; each violation is a jinja::LimitError.
  size_t max_output_bytes = 16u << 20;    // rendered text, and any one string value
  size_t max_total_bytes = 256u << 20;    // all text built while rendering
  int64_t max_loop_iterations = 1000000;  // for-loop iterations + items built by filters
  int max_recursion_depth = 100;          // nested macro calls
};

class Template {
 public:
  // Throws jinja::Error ("template syntax error at line L, column C: ...").
  static Template parse(std::string_view source);

  // `context` must be a JSON object; its members are the template's
  // variables. Objects keep their key order with ordered_json (tojson
  // prints keys in that order); nlohmann::json sorts keys. Throws
  // jinja::Error for render errors (TemplateRaisedError for
  // raise_exception, LimitError for a limit).
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;
  std::string render(const nlohmann::json& context, const RenderOptions& options = {}) const;

 private:
  Template() = default;
  struct Parsed;
  std::shared_ptr<const Parsed> parsed_;
};

}  // namespace flatline::jinja
