// A Hugging Face JSON config (config.json, generation_config.json) with
// typed reads whose errors name the file and the key.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace flatline::convert {

class HfConfig {
 public:
  HfConfig() = default;
  HfConfig(nlohmann::json json, std::string path) : json_(std::move(json)), path_(std::move(path)) {}
  // Reads and parses `path`; throws Error when unreadable or not a JSON object.
  static HfConfig load(const std::string& path);
  // An empty config when the file does not exist.
  static HfConfig load_optional(const std::string& path);

  const std::string& path() const { return path_; }
  const nlohmann::json& raw() const { return json_; }
  bool empty() const { return json_.empty(); }
  // True when the key exists and is not null.
  bool has(const std::string& key) const;

  // Required values: throw Error("config.json: missing integer 'hidden_size'").
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  // Optional values: the fallback when absent or null; a wrong type throws.
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::optional<int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::optional<std::string> find_string(const std::string& key) const;
  // The first of `keys` present (llama.cpp's find_hparam), or nullopt.
  std::optional<int64_t> find_first_int(const std::vector<std::string>& keys) const;
  std::optional<double> find_first_float(const std::vector<std::string>& keys) const;

  [[noreturn]] void fail(const std::string& message) const;

 private:
  nlohmann::json json_ = nlohmann::json::object();
  std::string path_;
};

}  // namespace flatline::convert
