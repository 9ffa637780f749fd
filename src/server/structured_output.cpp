#include "server/structured_output.h"

#include "runtime/json_schema.h"

namespace flatline::server {

namespace {

std::shared_ptr<const Grammar> any_object_grammar() {
  static const std::shared_ptr<const Grammar> g = [] {
    JsonGrammarBuilder b;
    const std::string root = b.any_object();
    return Grammar::parse(b.gbnf(root));
  }();
  return g;
}

std::shared_ptr<const Grammar> schema_grammar(const json& schema, const std::string& field) {
  try {
    return Grammar::parse(json_schema_to_gbnf(schema));
  } catch (const Error& e) {
    throw HttpError(400, "invalid JSON schema in " + field + ": " + e.what());
  }
}

}  // namespace

OutputFormat ollama_format(const json* format) {
  if (!format || format->is_null()) return {};
  if (format->is_string()) {
    const std::string s = format->get<std::string>();
    if (s.empty()) return {};
    if (s == "json") return {any_object_grammar(), "format json"};
  } else if (format->is_object()) {
    return {schema_grammar(*format, "format"), "format (JSON schema)"};
  }
  throw HttpError(400, "invalid format: " + format->dump() + "; expected \"json\" or a valid JSON Schema object");
}

OutputFormat openai_response_format(const json* rf) {
  if (!rf || rf->is_null()) return {};
  if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
    throw HttpError(400, "response_format must be an object with a \"type\" of \"text\", \"json_object\" or "
                         "\"json_schema\", got " + rf->dump());
  const std::string type = (*rf)["type"].get<std::string>();
  if (type == "text") return {};
  if (type == "json_object") return {any_object_grammar(), "response_format json_object"};
  if (type != "json_schema")
    throw HttpError(400, "response_format.type must be \"text\", \"json_object\" or \"json_schema\", got \"" + type + "\"");
  const auto it = rf->find("json_schema");
  if (it == rf->end() || !it->is_object())
    throw HttpError(400, "response_format.json_schema is required (an object with \"name\" and \"schema\") when type is "
                         "\"json_schema\"");
  const json& js = *it;
  std::string name = js.contains("name") && js["name"].is_string() ? js["name"].get<std::string>() : "";
  if (!js.contains("schema") || js["schema"].is_null())  // OpenAI allows it: any JSON object
    return {any_object_grammar(), "response_format json_schema \"" + name + "\" (no schema)"};
  if (!js["schema"].is_object())
    throw HttpError(400, "response_format.json_schema.schema must be an object, got " + js["schema"].dump());
  return {schema_grammar(js["schema"], "response_format.json_schema.schema"),
          "response_format json_schema \"" + name + "\""};
}

OutputFormat raw_grammar(const json* grammar) {
  if (!grammar || grammar->is_null()) return {};
  if (!grammar->is_string()) throw HttpError(400, "grammar must be a string of GBNF rules, got " + grammar->dump());
  const std::string text = grammar->get<std::string>();
  if (text.empty()) return {};
  try {
    return {Grammar::parse(text), "grammar"};
  } catch (const Error& e) {
    throw HttpError(400, std::string("invalid grammar: ") + e.what());
  }
}

OutputFormat pick_output_format(OutputFormat a, OutputFormat b) {
  if (a && b) throw HttpError(400, "a request can constrain its output once: both " + a.what + " and " + b.what + " are set");
  return a ? a : b;
}

}  // namespace flatline::server
