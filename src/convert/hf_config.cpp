#include "convert/hf_config.h"

#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace flatline::convert {

using nlohmann::json;

HfConfig HfConfig::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(path + ": expected a JSON object, found " + j.type_name());
  return HfConfig(std::move(j), path);
}

HfConfig HfConfig::load_optional(const std::string& path) {
  if (!std::filesystem::exists(path)) return HfConfig(json::object(), path);
  return load(path);
}

void HfConfig::fail(const std::string& message) const { throw Error(path_ + ": " + message); }

bool HfConfig::has(const std::string& key) const { return json_.contains(key) && !json_[key].is_null(); }

std::optional<int64_t> HfConfig::find_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const json& v = json_[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  // 4096.0 is an integer written by a float-minded serializer.
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
  fail("'" + key + "' must be an integer, found " + v.dump());
}

std::optional<double> HfConfig::find_float(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const json& v = json_[key];
  if (!v.is_number()) fail("'" + key + "' must be a number, found " + v.dump());
  return v.get<double>();
}

std::optional<std::string> HfConfig::find_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const json& v = json_[key];
  if (!v.is_string()) fail("'" + key + "' must be a string, found " + v.dump());
  return v.get<std::string>();
}

std::optional<int64_t> HfConfig::find_first_int(const std::vector<std::string>& keys) const {
  for (const auto& k : keys) {
    if (auto v = find_int(k)) return v;
  }
  return std::nullopt;
}

std::optional<double> HfConfig::find_first_float(const std::vector<std::string>& keys) const {
  for (const auto& k : keys) {
    if (auto v = find_float(k)) return v;
  }
  return std::nullopt;
}

int64_t HfConfig::get_int(const std::string& key) const {
  auto v = find_int(key);
  if (!v) fail("missing integer '" + key + "'");
  return *v;
}

double HfConfig::get_float(const std::string& key) const {
  auto v = find_float(key);
  if (!v) fail("missing number '" + key + "'");
  return *v;
}

int64_t HfConfig::get_int(const std::string& key, int64_t fallback) const { return find_int(key).value_or(fallback); }

double HfConfig::get_float(const std::string& key, double fallback) const {
  return find_float(key).value_or(fallback);
}

bool HfConfig::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const json& v = json_[key];
  if (!v.is_boolean()) fail("'" + key + "' must be true or false, found " + v.dump());
  return v.get<bool>();
}

}  // namespace flatline::convert
