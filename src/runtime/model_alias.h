// Named models created with /api/create, /api/copy or `flatline create`: one
// small manifest per name in the models directory, next to the GGUF file it
// names, e.g. "rwkv7:2.9b.alias.json":
//
//   { "flatline_alias": 1, "name": "rwkv7:2.9b", "from": "rwkv7-2.9B-world-Q8_0.gguf",
//     "parameters": {"temperature": 0.7, "stop": ["User:"]},
//     "system": "...", "template": "chatml", "messages": [{"role": "user", "content": "..."}],
//     "license": ["MIT"] }
//
// "from" is a file name in the same directory (never a path), so the
// directory can be moved. The defaults apply to every request that names
// the alias; a request's own options, system prompt or messages win.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/chat_template.h"

namespace flatline {

struct ModelDefaults {
  // Ollama option keys with typed values (checked when the alias is created).
  nlohmann::json parameters = nlohmann::json::object();
  std::optional<std::string> system;
  // A Jinja chat template or a format name (chatml, llama3, ...); see
  // runtime/alias_template.h.
  std::optional<std::string> template_text;
  std::vector<ChatMessage> messages;  // put before a chat's own messages
  std::vector<std::string> licenses;
  bool empty() const { return parameters.empty() && !system && !template_text && messages.empty() && licenses.empty(); }
};

struct AliasManifest {
  std::string name;  // as clients use it, without ":latest"
  std::string from;  // a file name in the models directory
  ModelDefaults defaults;
};

inline constexpr std::string_view kAliasManifestSuffix = ".alias.json";

// Ollama's model names: [namespace/]model[:tag], each part of letters,
// digits, '_', '-', '.', starting with a letter, digit or '_', at most 80
// bytes a part (so no "..", no absolute paths, no hidden files). Returns the
// name without ":latest"; throws Error saying what is wrong.
std::string checked_model_name(std::string_view name);
// The manifest's file name for a checked name ('/' written as "%2F").
std::string alias_manifest_file_name(const std::string& name);

nlohmann::json manifest_json(const AliasManifest& m);
// Throws Error (naming `source`) for JSON that is not a manifest.
AliasManifest manifest_from_json(const nlohmann::json& j, const std::string& source);
AliasManifest read_alias_manifest(const std::string& path);
// Written crash-safely (a reader sees the old or the new manifest).
void write_alias_manifest(const std::string& directory, const AliasManifest& m);

}  // namespace flatline
