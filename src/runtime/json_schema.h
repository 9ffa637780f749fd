// JSON Schema -> GBNF (runtime/grammar.h), so structured output and tool
// arguments are produced by constrained sampling and always parse and
// validate.
//
// The text has one fixed layout, the one Python's json.dumps and Hugging
// Face's `tojson` print: ", " between items, ": " after keys, no other
// whitespace, properties in the schema's order. A chat template that
// renders a tool call back with `tojson` then reproduces the generated text
// exactly, so the state cache keeps hitting after tool calls.
//
// Supported: type (one or a list), enum, const, properties / required /
// additionalProperties (absent = no extra properties), nested objects,
// items / prefixItems / minItems / maxItems, anyOf / oneOf (as anyOf),
// allOf of object schemas, $ref into #/$defs or #/definitions (recursion
// allowed), string minLength / maxLength / pattern (a regular-expression
// subset) / format (date, time, date-time, uuid, email, ipv4, uri),
// integer minimum / maximum / exclusive bounds, number sign bounds,
// OpenAPI's nullable. Not enforced (documented in docs/GRAMMAR.md):
// multipleOf, number bounds other than the sign, minProperties /
// maxProperties, uniqueItems, if/then/else, not, patternProperties.
#pragma once

#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace flatline {

class JsonGrammarBuilder {
 public:
  using json = nlohmann::ordered_json;

  // Adds the rules for `schema` and returns the name of its rule. `root`
  // is the document $refs are resolved in (the schema itself when null).
  // Throws Error naming the unsupported or invalid part (with its path).
  std::string add_schema(const json& schema, const std::string& name_hint, const json* root = nullptr);
  // A rule for any JSON value / object (Ollama's format "json").
  std::string any_value();
  std::string any_object();
  // A named rule with this body (identical bodies share one rule).
  std::string add_rule(const std::string& name_hint, const std::string& body);
  // The GBNF text of all rules added, plus `root ::= <root_body>`.
  std::string gbnf(const std::string& root_body) const;

 private:
  std::string visit(const json& schema, const std::string& path, const std::string& hint);
  std::string object_rule(const json& schema, const std::string& path, const std::string& hint);
  std::string array_rule(const json& schema, const std::string& path, const std::string& hint);
  std::string string_rule(const json& schema, const std::string& path);
  std::string integer_rule(const json& schema, const std::string& path);
  std::string number_rule(const json& schema, const std::string& path);
  std::string primitive(const std::string& name);
  const json& resolve_ref(const std::string& ref, const std::string& path) const;

  std::map<std::string, std::string> rules_;        // name -> body
  std::map<std::string, std::string> by_body_;      // body -> name
  std::map<std::string, std::string> refs_;         // "$ref" -> rule name
  std::set<std::string> primitives_;
  const json* root_ = nullptr;
  int depth_ = 0;
};

// GBNF for a whole schema: `root` is the value.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

// A GBNF literal ("...") for `bytes`, escaping quotes, backslashes and
// control characters.
std::string gbnf_literal(std::string_view bytes);

// The text a value has in the generated layout (json.dumps with ", " / ": ").
std::string json_compact_text(const nlohmann::ordered_json& value);

}  // namespace flatline
