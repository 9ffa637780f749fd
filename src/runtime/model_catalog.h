// The models a server offers: every *.gguf file in one directory, named by
// its file stem, the aliases created with /api/create (one NAME.alias.json
// manifest each, runtime/model_alias.h), plus aliases from an optional
// models.json in that directory:
//
//   { "aliases": { "llama3.2": "Llama-3.2-1B-Instruct-Q4_K_M",
//                  "rwkv:1.5b": "rwkv7-g1a-1.5b-q8_0.gguf" } }
//
// An alias maps a name to a file stem or file name in the directory. Names
// follow Ollama's convention: "name" and "name:latest" are the same model.
// The directory is re-read on every listing/lookup (it is small), so files
// copied in while the server runs appear without a restart.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model_alias.h"

namespace flatline {

// What a GGUF header says about a model, for listings (no weights read).
struct ModelSummary {
  std::string architecture;       // general.architecture
  std::string quantization;       // "Q4_K_M", "F32", ... (general.file_type, else the dominant tensor type)
  std::string parameter_size;     // "834.0K", "1.5B"
  uint64_t n_params = 0;
  int64_t context_length = 0;     // <arch>.context_length; 0 = none (recurrent)
  int64_t embedding_length = 0;
  std::string digest;             // 64 hex digits identifying the exact file header + size (not a sha256)
};

struct CatalogEntry {
  std::string name;      // as clients use it, without ":latest"
  std::string path;      // the GGUF file
  bool alias = false;    // from models.json or a manifest
  std::string manifest_path;  // a created alias: its NAME.alias.json ("" otherwise)
  ModelDefaults defaults;     // a created alias's parameters, system, template, messages
  uint64_t size = 0;     // file bytes
  int64_t modified_unix_ns = 0;
  ModelSummary summary;
};

class ModelCatalog {
 public:
  // Throws Error if the directory does not exist or models.json is malformed.
  explicit ModelCatalog(std::string directory);

  const std::string& directory() const { return directory_; }
  // All models (files and aliases), sorted by name. Re-reads the directory.
  std::vector<CatalogEntry> list();
  // The model called `name` ("x", "x:latest"; exact match first, then
  // case-insensitive), or nullopt.
  std::optional<CatalogEntry> find(std::string_view name);

  // "x" -> "x:latest"; names with a tag are kept.
  static std::string display_name(const std::string& name);

  // Writes (or replaces) a created alias's manifest. Throws Error when the
  // name is a GGUF file's or a models.json alias's, or "from" is not a
  // model file of the directory.
  void save_alias(const AliasManifest& manifest);
  // Removes the created alias `name` (exact or case-insensitive match).
  // Throws Error for a name that is a file or a models.json alias; returns
  // false when there is no such model.
  bool remove_alias(std::string_view name);

 private:
  void refresh();  // caller holds mutex_
  std::map<std::string, std::string> read_aliases(bool strict) const;
  std::vector<CatalogEntry> created_aliases(const std::vector<CatalogEntry>& files);
  const CatalogEntry* find_locked(std::string_view name) const;
  ModelSummary summarize(const std::string& path, uint64_t size, int64_t mtime);

  std::string directory_;
  std::mutex mutex_;
  std::vector<CatalogEntry> entries_;
  std::map<std::string, std::string> last_good_aliases_;
  struct CachedSummary {
    uint64_t size;
    int64_t mtime;
    ModelSummary summary;
  };
  std::map<std::string, CachedSummary> summaries_;  // by path
};

// "834.0K", "1.2M", "7.6B" (Ollama's parameter_size style).
std::string human_parameter_count(uint64_t n);
// Name of a llama.cpp general.file_type value ("Q4_K_M"), or "" if unknown.
std::string file_type_name(int64_t file_type);

}  // namespace flatline
