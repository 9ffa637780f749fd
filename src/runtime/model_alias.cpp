#include "runtime/model_alias.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"

namespace flatline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxNamePart = 80;
constexpr size_t kMaxManifestBytes = 8u << 20;  // a template and a system prompt, with room

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

void check_name_part(std::string_view part, std::string_view what, std::string_view whole) {
  const std::string quoted = "\"" + std::string(whole) + "\"";
  if (part.empty()) throw Error("invalid model name " + quoted + ": empty " + std::string(what));
  if (part.size() > kMaxNamePart)
    throw Error("invalid model name " + quoted + ": the " + std::string(what) + " is longer than " +
                std::to_string(kMaxNamePart) + " characters");
  const char first = part[0];
  if (!std::isalnum(static_cast<unsigned char>(first)) && first != '_')
    throw Error("invalid model name " + quoted + ": the " + std::string(what) +
                " must start with a letter, a digit or '_'");
  for (char c : part)
    if (!name_char(c))
      throw Error("invalid model name " + quoted + ": '" + std::string(1, c) +
                  "' is not allowed (letters, digits, '_', '-', '.', one ':' before the tag, '/' between parts)");
}

std::vector<ChatMessage> messages_from_json(const json& arr, const std::string& source) {
  std::vector<ChatMessage> out;
  if (!arr.is_array()) throw Error(source + ": \"messages\" must be an array");
  for (const auto& m : arr) {
    if (!m.is_object() || !m.value("role", json()).is_string() || !m.value("content", json()).is_string())
      throw Error(source + ": each message needs a string \"role\" and \"content\"");
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

std::optional<std::string> optional_string(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_string()) throw Error(source + ": \"" + key + "\" must be a string");
  return j[key].get<std::string>();
}

}  // namespace

std::string checked_model_name(std::string_view name) {
  std::string_view rest = name;
  const size_t slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  std::string_view tag;
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    check_name_part(tag, "tag", name);
  }
  int parts = 0;
  for (size_t start = 0;; ++parts) {
    const size_t end = rest.find('/', start);
    check_name_part(rest.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start), "name",
                    name);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (parts > 2) throw Error("invalid model name \"" + std::string(name) + "\": at most three '/'-separated parts");
  if (tag == "latest") return std::string(rest);
  return std::string(name);
}

std::string alias_manifest_file_name(const std::string& name) {
  std::string out;
  for (char c : name) out += c == '/' ? std::string("%2F") : std::string(1, c);
  return out + std::string(kAliasManifestSuffix);
}

json manifest_json(const AliasManifest& m) {
  json j{{"flatline_alias", 1}, {"name", m.name}, {"from", m.from}};
  const ModelDefaults& d = m.defaults;
  if (!d.parameters.empty()) j["parameters"] = d.parameters;
  if (d.system) j["system"] = *d.system;
  if (d.template_text) j["template"] = *d.template_text;
  if (!d.messages.empty()) {
    json msgs = json::array();
    for (const ChatMessage& msg : d.messages) msgs.push_back(json{{"role", msg.role}, {"content", msg.content}});
    j["messages"] = std::move(msgs);
  }
  if (!d.licenses.empty()) j["license"] = d.licenses;
  return j;
}

AliasManifest manifest_from_json(const json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("flatline_alias") || j["flatline_alias"] != 1)
    throw Error(source + ": not a flatline alias manifest (expected {\"flatline_alias\": 1, ...})");
  AliasManifest m;
  auto name = optional_string(j, "name", source);
  auto from = optional_string(j, "from", source);
  if (!name || !from) throw Error(source + ": a manifest needs \"name\" and \"from\"");
  m.name = checked_model_name(*name);
  if (from->empty() || from->find('/') != std::string::npos || *from == "." || *from == "..")
    throw Error(source + ": \"from\" must be a file name in the models directory, found \"" + *from + "\"");
  m.from = *from;
  ModelDefaults& d = m.defaults;
  if (j.contains("parameters")) {
    if (!j["parameters"].is_object()) throw Error(source + ": \"parameters\" must be an object");
    d.parameters = j["parameters"];
  }
  d.system = optional_string(j, "system", source);
  d.template_text = optional_string(j, "template", source);
  if (j.contains("messages")) d.messages = messages_from_json(j["messages"], source);
  if (j.contains("license")) {
    for (const auto& l : j["license"]) {
      if (!l.is_string()) throw Error(source + ": \"license\" must be an array of strings");
      d.licenses.push_back(l.get<std::string>());
    }
  }
  return m;
}

AliasManifest read_alias_manifest(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read: " + ec.message());
  if (size > kMaxManifestBytes) throw Error(path + ": " + std::to_string(size) + " bytes is too large for a manifest");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  AliasManifest m = manifest_from_json(j, path);
  if (alias_manifest_file_name(m.name) != fs::path(path).filename().string())
    throw Error(path + ": the file name does not match the name it holds (\"" + m.name + "\" belongs in " +
                alias_manifest_file_name(m.name) + ")");
  return m;
}

void write_alias_manifest(const std::string& directory, const AliasManifest& m) {
  const std::string text = manifest_json(m).dump(2) + "\n";
  AtomicFileWriter out((fs::path(directory) / alias_manifest_file_name(m.name)).string());
  out.write(text.data(), text.size());
  out.commit();
}

}  // namespace flatline
