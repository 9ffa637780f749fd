// What a request asks the output to look like, as a grammar for the token
// mask (runtime/grammar_constraint.h): Ollama's `format` ("json" or a JSON
// Schema), OpenAI's `response_format` (json_object / json_schema) and the
// raw `grammar` field (GBNF, docs/GRAMMAR.md) both APIs accept.
#pragma once

#include <memory>
#include <string>

#include "runtime/grammar.h"
#include "server/json_io.h"

namespace flatline::server {

struct OutputFormat {
  std::shared_ptr<const Grammar> grammar;  // null: free text
  std::string what;                        // for logs: "format json", "response_format json_schema \"x\"", ...
  explicit operator bool() const { return grammar != nullptr; }
};

// Ollama `format`: null or "" = none, "json" = any JSON object, an object =
// a JSON Schema. HttpError(400) with Ollama's wording otherwise, or naming
// the unsupported part of the schema.
OutputFormat ollama_format(const json* format);
// OpenAI `response_format`: {"type": "text" | "json_object" | "json_schema",
// "json_schema": {"name", "schema", "strict"}}.
OutputFormat openai_response_format(const json* response_format);
// The raw `grammar` field: GBNF text whose start rule is `root`.
OutputFormat raw_grammar(const json* grammar);

// At most one of them: HttpError(400) when a request sets two.
OutputFormat pick_output_format(OutputFormat a, OutputFormat b);

}  // namespace flatline::server
