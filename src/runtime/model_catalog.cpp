#include "runtime/model_catalog.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "gguf/gguf.h"
#include "runtime/content_hash.h"
#include "util/error.h"
#include "util/log.h"

namespace flatline {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAliasFile = "models.json";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string strip_latest(std::string_view name) {
  constexpr std::string_view tag = ":latest";
  if (name.size() > tag.size() && name.substr(name.size() - tag.size()) == tag) name.remove_suffix(tag.size());
  return std::string(name);
}

int64_t mtime_ns(const fs::path& p) {
  std::error_code ec;
  auto t = fs::last_write_time(p, ec);
  if (ec) return 0;
  // An exact conversion: deriving it from the two clocks' now() drifted by
  // a few nanoseconds per call, so the summary cache (keyed by mtime) never hit.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::file_clock::to_sys(t).time_since_epoch())
      .count();
}

std::string dominant_tensor_type(const gguf::File& f) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : f.tensors())
    if (t.dims.size() >= 2) bytes[std::string(dtype_name(t.type))] += t.n_bytes;
  std::string best;
  uint64_t most = 0;
  for (const auto& [name, n] : bytes)
    if (n > most) {
      most = n;
      best = name;
    }
  return best;
}

// A broken manifest or file is reported once, not on every listing.
void warn_once(const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(message).second) LOG_WARN(message);
}

bool is_manifest_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.size() > kAliasManifestSuffix.size() &&
         name.compare(name.size() - kAliasManifestSuffix.size(), kAliasManifestSuffix.size(), kAliasManifestSuffix) == 0;
}

}  // namespace

std::string human_parameter_count(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
  else if (n >= 1000000ull) std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  else if (n >= 1000ull) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

std::string file_type_name(int64_t ft) {
  switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 19: return "IQ2_XXS";
    case 20: return "IQ2_XS";
    case 21: return "Q2_K_S";
    case 22: return "IQ3_XS";
    case 23: return "IQ3_XXS";
    case 24: return "IQ1_S";
    case 25: return "IQ4_NL";
    case 26: return "IQ3_S";
    case 27: return "IQ3_M";
    case 28: return "IQ2_S";
    case 29: return "IQ2_M";
    case 30: return "IQ4_XS";
    case 31: return "IQ1_M";
    case 32: return "BF16";
    case 36: return "TQ1_0";
    case 37: return "TQ2_0";
    default: return "";
  }
}

ModelCatalog::ModelCatalog(std::string directory) : directory_(std::move(directory)) {
  std::error_code ec;
  if (!fs::is_directory(directory_, ec))
    throw Error("models directory " + directory_ + " does not exist (expected a directory of .gguf files)");
  last_good_aliases_ = read_aliases(/*strict=*/true);
  std::lock_guard<std::mutex> lock(mutex_);
  refresh();
}

std::string ModelCatalog::display_name(const std::string& name) {
  return name.find(':') == std::string::npos ? name + ":latest" : name;
}

std::map<std::string, std::string> ModelCatalog::read_aliases(bool strict) const {
  const fs::path file = fs::path(directory_) / kAliasFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  std::ifstream in(file);
  std::map<std::string, std::string> out;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object() || !j.contains("aliases") || !j["aliases"].is_object())
      throw Error(file.string() + ": expected {\"aliases\": {\"name\": \"file stem or file name\", ...}}");
    for (const auto& [name, target] : j["aliases"].items()) {
      if (!target.is_string())
        throw Error(file.string() + ": alias \"" + name + "\" must map to a string (a file stem or file name), found " +
                    target.type_name());
      out[strip_latest(name)] = target.get<std::string>();
    }
  } catch (const nlohmann::json::exception& e) {
    if (strict) throw Error(file.string() + ": invalid JSON: " + e.what());
    LOG_WARN(file.string() << ": invalid JSON, keeping the previous aliases: " << e.what());
    return last_good_aliases_;
  } catch (const Error& e) {
    if (strict) throw;
    LOG_WARN(e.what() << "; keeping the previous aliases");
    return last_good_aliases_;
  }
  return out;
}

ModelSummary ModelCatalog::summarize(const std::string& path, uint64_t size, int64_t mtime) {
  auto it = summaries_.find(path);
  if (it != summaries_.end() && it->second.size == size && it->second.mtime == mtime) return it->second.summary;
  gguf::File f = gguf::File::open(path);  // throws Error for a broken file
  ModelSummary s;
  // Descriptive keys of the wrong type do not stop a model from running
  // (the loader does not need them), so they do not hide it from the
  // listing either: the value is ignored with a warning.
  auto descriptive_int = [&](const std::string& key, int64_t fallback) {
    const gguf::Value* v = f.find(key);
    if (!v) return fallback;
    if (v->is_integer()) {
      try {
        return v->as_int();
      } catch (const Error&) {
      }
    }
    LOG_WARN("models: " << fs::path(path).filename().string() << ": metadata " << key << " is "
                        << (v->is_array() ? "an array" : std::string("a ") + gguf::value_type_name(v->type()))
                        << " " << v->to_string(4) << ", expected an integer; ignoring it");
    return fallback;
  };
  const gguf::Value* arch = f.find("general.architecture");
  s.architecture = arch && arch->type() == gguf::ValueType::String ? std::string(arch->as_string()) : "unknown";
  for (const auto& t : f.tensors()) s.n_params += static_cast<uint64_t>(t.n_elements());
  s.parameter_size = human_parameter_count(s.n_params);
  s.quantization = file_type_name(descriptive_int("general.file_type", -1));
  if (s.quantization.empty()) s.quantization = dominant_tensor_type(f);
  s.context_length = std::max<int64_t>(0, descriptive_int(s.architecture + ".context_length", 0));
  s.embedding_length = std::max<int64_t>(0, descriptive_int(s.architecture + ".embedding_length", 0));
  // Same inputs as LoadedModel's fingerprint (header bytes + size), widened
  // to the 64 hex digits clients expect in a digest.
  ContentHash h;
  auto bytes = f.bytes();
  h.update(bytes.data(), static_cast<size_t>(std::min<uint64_t>(f.data_offset(), bytes.size())));
  h.update(&size, sizeof size);
  const uint64_t base = h.digest();
  for (uint64_t i = 0; i < 4; ++i) s.digest += hex64(ContentHash::of(&base, sizeof base, i));
  summaries_[path] = CachedSummary{size, mtime, s};
  return s;
}

void ModelCatalog::refresh() {
  std::vector<CatalogEntry> files;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(directory_, ec)) {
    if (!item.is_regular_file(ec) || item.path().extension() != ".gguf") continue;
    CatalogEntry e;
    e.name = item.path().stem().string();
    e.path = item.path().string();
    e.size = item.file_size(ec);
    e.modified_unix_ns = mtime_ns(item.path());
    try {
      e.summary = summarize(e.path, e.size, e.modified_unix_ns);
    } catch (const Error& err) {
      warn_once("models: skipping " + e.path + " (" + std::to_string(e.modified_unix_ns) + "): " + err.what());
      continue;
    }
    files.push_back(std::move(e));
  }
  std::vector<CatalogEntry> all = files;
  auto taken = [&all](const std::string& name) {
    return std::any_of(all.begin(), all.end(), [&](const CatalogEntry& e) { return e.name == name; });
  };
  last_good_aliases_ = read_aliases(/*strict=*/false);
  for (const auto& alias_entry : last_good_aliases_) {
    // Plain references, not a structured binding: clang 14 cannot capture those in a lambda.
    const auto& alias = alias_entry.first;
    const auto& target = alias_entry.second;
    auto match = std::find_if(files.begin(), files.end(), [&](const CatalogEntry& f) {
      return f.name == target || fs::path(f.path).filename() == target;
    });
    if (match == files.end()) {
      LOG_DEBUG("models.json: alias " << alias << " points to " << target << ", which is not in " << directory_);
      continue;
    }
    if (taken(alias)) continue;
    CatalogEntry e = *match;
    e.name = alias;
    e.alias = true;
    all.push_back(std::move(e));
  }
  for (CatalogEntry& e : created_aliases(files)) {
    if (taken(e.name)) {
      warn_once("models: " + e.manifest_path + " is not used: \"" + e.name + "\" is already a model file's or a models.json alias's name");
      continue;
    }
    all.push_back(std::move(e));
  }
  std::sort(all.begin(), all.end(), [](const CatalogEntry& a, const CatalogEntry& b) { return a.name < b.name; });
  entries_ = std::move(all);
}

// The manifests of the directory whose "from" is one of `files`.
std::vector<CatalogEntry> ModelCatalog::created_aliases(const std::vector<CatalogEntry>& files) {
  std::vector<CatalogEntry> out;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(directory_, ec)) {
    if (!item.is_regular_file(ec) || !is_manifest_file(item.path())) continue;
    AliasManifest m;
    try {
      m = read_alias_manifest(item.path().string());
    } catch (const Error& err) {
      warn_once(std::string("models: skipping ") + err.what());
      continue;
    }
    auto target = std::find_if(files.begin(), files.end(),
                               [&](const CatalogEntry& f) { return fs::path(f.path).filename() == m.from; });
    if (target == files.end()) {
      LOG_DEBUG("models: " << item.path().string() << " names " << m.from << ", which is not in " << directory_);
      continue;
    }
    CatalogEntry e = *target;
    e.name = m.name;
    e.alias = true;
    e.manifest_path = item.path().string();
    e.defaults = std::move(m.defaults);
    e.modified_unix_ns = std::max(e.modified_unix_ns, mtime_ns(item.path()));
    out.push_back(std::move(e));
  }
  return out;
}

const CatalogEntry* ModelCatalog::find_locked(std::string_view name) const {
  const std::string wanted = strip_latest(name);
  for (const auto& e : entries_)
    if (e.name == wanted) return &e;
  const std::string wanted_lower = lower(wanted);
  for (const auto& e : entries_)
    if (lower(e.name) == wanted_lower) return &e;
  return nullptr;
}

// Why `existing` may not be replaced or removed as a created alias, or "".
static std::string not_a_created_alias(const CatalogEntry& existing) {
  if (!existing.alias)
    return "\"" + existing.name + "\" is the model file " + fs::path(existing.path).filename().string() +
           " in the models directory";
  if (existing.manifest_path.empty()) return "\"" + existing.name + "\" is an alias defined in models.json; edit that file";
  return "";
}

void ModelCatalog::save_alias(const AliasManifest& manifest) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh();
  const bool from_is_file = std::any_of(entries_.begin(), entries_.end(), [&](const CatalogEntry& e) {
    return !e.alias && fs::path(e.path).filename() == manifest.from;
  });
  if (!from_is_file) throw Error("\"" + manifest.from + "\" is not a model file in the models directory");
  std::string replaced;
  if (const CatalogEntry* existing = find_locked(manifest.name)) {
    if (std::string why = not_a_created_alias(*existing); !why.empty()) throw Error(why + "; choose another name");
    replaced = existing->manifest_path;
  }
  write_alias_manifest(directory_, manifest);
  const std::string written = (fs::path(directory_) / alias_manifest_file_name(manifest.name)).string();
  std::error_code ec;
  if (!replaced.empty() && replaced != written) fs::remove(replaced, ec);  // the same name in other letter case
  refresh();
}

bool ModelCatalog::remove_alias(std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh();
  const CatalogEntry* existing = find_locked(name);
  if (!existing) return false;
  if (std::string why = not_a_created_alias(*existing); !why.empty()) throw Error(why);
  std::error_code ec;
  if (!fs::remove(existing->manifest_path, ec) && ec)
    throw Error("cannot remove " + existing->manifest_path + ": " + ec.message());
  refresh();
  return true;
}

std::vector<CatalogEntry> ModelCatalog::list() {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh();
  return entries_;
}

std::optional<CatalogEntry> ModelCatalog::find(std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh();
  if (const CatalogEntry* e = find_locked(name)) return *e;
  return std::nullopt;
}

}  // namespace flatline
