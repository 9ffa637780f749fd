// Stored OpenAI Responses (/v1/responses with "store": true), so a later
// request can continue one by `previous_response_id` and send only its new
// input. A stored response keeps the model it ran on, the conversation it
// ended with (input items and the reply, as chat messages, without the
// request's `instructions`, which OpenAI does not carry over) and the
// response object GET /v1/responses/{id} returns. Rendering that
// conversation again gives the text of the state cache's reply-end
// snapshot, so the follow-up resumes the cached model state.
//
// Without a directory the responses live in memory. With one (the
// server's --state-dir, subfolder responses/) each is a small JSON file
// named <id>.json, written crash-safe, and only an index is kept in
// memory; the files outlive a restart. At most `max_responses` are kept,
// the oldest (by creation, file modification time after a restart) go
// first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/chat_template.h"
#include "server/json_io.h"

namespace flatline::server {

struct StoredResponse {
  std::string id;
  std::string model;                      // as the client named it
  std::vector<ChatMessage> conversation;  // input items + the reply, instructions not included
  json object;                            // the response object (GET /v1/responses/{id})
};

struct ResponseStoreOptions {
  std::string directory;       // "" = memory only
  size_t max_responses = 1000;
};

class ResponseStore {
 public:
  // Creates the directory if needed and indexes the files in it (the
  // newest max_responses; older ones are deleted). Throws Error when the
  // directory cannot be created.
  explicit ResponseStore(ResponseStoreOptions options);

  // "resp_" + 32 lowercase hex digits from the system's random source.
  static std::string new_id(std::string_view prefix = "resp_");
  // Whether `id` has that form (anything else never names a file).
  static bool valid_id(std::string_view id);

  // Keeps `response` (replacing one with its id), evicting the oldest
  // beyond max_responses. Throws Error when the file cannot be written.
  void put(const StoredResponse& response);
  // nullopt when unknown (never stored, evicted or deleted). Throws Error
  // when its file exists but cannot be read or is malformed.
  std::optional<StoredResponse> get(const std::string& id);
  // false when unknown.
  bool remove(const std::string& id);
  size_t size() const;
  const ResponseStoreOptions& options() const { return options_; }

  // The file format (also used by the tests).
  static json to_file_json(const StoredResponse& response);
  static StoredResponse from_file_json(const json& file);  // throws Error naming the bad field

 private:
  std::string path_of(const std::string& id) const;
  void index_directory();
  void add_to_index_locked(const std::string& id);
  void evict_locked();
  void forget_locked(const std::string& id);

  ResponseStoreOptions options_;
  mutable std::mutex mutex_;
  uint64_t next_order_ = 0;
  std::map<uint64_t, std::string> by_age_;              // order -> id, oldest first
  std::unordered_map<std::string, uint64_t> order_of_;  // id -> order
  std::unordered_map<std::string, StoredResponse> in_memory_;  // without a directory
};

}  // namespace flatline::server
