#include "server/response_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "util/atomic_file.h"
#include "util/log.h"

namespace flatline::server {

namespace fs = std::filesystem;

namespace {

constexpr int kFileVersion = 1;
constexpr std::string_view kIdPrefix = "resp_";
constexpr size_t kIdHexDigits = 32;

json message_json(const ChatMessage& m) { return json{{"role", m.role}, {"content", m.content}}; }

ChatMessage message_from_json(const json& m) {
  if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
      !m["content"].is_string())
    throw Error("a conversation message is not {\"role\": string, \"content\": string}");
  return ChatMessage{m["role"].get<std::string>(), m["content"].get<std::string>()};
}

}  // namespace

ResponseStore::ResponseStore(ResponseStoreOptions options) : options_(std::move(options)) {
  if (options_.max_responses == 0) throw Error("--max-responses must be at least 1");
  if (options_.directory.empty()) return;
  std::error_code ec;
  fs::create_directories(options_.directory, ec);
  if (ec) throw Error("cannot create the responses directory " + options_.directory + ": " + ec.message());
  index_directory();
}

std::string ResponseStore::new_id(std::string_view prefix) {
  static std::mutex mutex;
  static std::random_device device;
  std::lock_guard<std::mutex> lock(mutex);
  static const char* hex = "0123456789abcdef";
  std::string id(prefix);
  for (size_t i = 0; i < kIdHexDigits / 8; ++i) {
    uint32_t word = device();
    for (int d = 0; d < 8; ++d, word >>= 4) id += hex[word & 15];
  }
  return id;
}

bool ResponseStore::valid_id(std::string_view id) {
  if (id.size() != kIdPrefix.size() + kIdHexDigits || id.substr(0, kIdPrefix.size()) != kIdPrefix) return false;
  return std::all_of(id.begin() + kIdPrefix.size(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string ResponseStore::path_of(const std::string& id) const {
  return (fs::path(options_.directory) / (id + ".json")).string();
}

json ResponseStore::to_file_json(const StoredResponse& r) {
  json conversation = json::array();
  for (const ChatMessage& m : r.conversation) conversation.push_back(message_json(m));
  return json{{"flatline_response", kFileVersion},
              {"id", r.id},
              {"model", r.model},
              {"conversation", conversation},
              {"response", r.object}};
}

StoredResponse ResponseStore::from_file_json(const json& file) {
  if (!file.is_object() || file.value("flatline_response", 0) != kFileVersion)
    throw Error("not a stored response of version " + std::to_string(kFileVersion));
  auto text = [&](const char* key) {
    if (!file.contains(key) || !file[key].is_string()) throw Error(std::string("field ") + key + " is not a string");
    return file[key].get<std::string>();
  };
  StoredResponse r;
  r.id = text("id");
  if (!valid_id(r.id)) throw Error("field id is not a response id");
  r.model = text("model");
  if (!file.contains("conversation") || !file["conversation"].is_array())
    throw Error("field conversation is not an array");
  for (const json& m : file["conversation"]) r.conversation.push_back(message_from_json(m));
  if (!file.contains("response") || !file["response"].is_object()) throw Error("field response is not an object");
  r.object = file["response"];
  return r;
}

// The newest max_responses files, oldest first by modification time (then
// name); the rest are deleted.
void ResponseStore::index_directory() {
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(options_.directory, ec)) {
    const fs::path& p = item.path();
    if (p.extension() != ".json" || !valid_id(p.stem().string())) continue;
    std::error_code e;
    const auto mtime = item.last_write_time(e);
    if (!e) found.push_back({mtime, p.stem().string()});
  }
  std::sort(found.begin(), found.end());
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [mtime, id] : found) add_to_index_locked(id);
  evict_locked();
  if (!found.empty())
    LOG_INFO("responses: " << order_of_.size() << " stored responses in " << options_.directory);
}

void ResponseStore::add_to_index_locked(const std::string& id) {
  if (auto it = order_of_.find(id); it != order_of_.end()) by_age_.erase(it->second);
  const uint64_t order = next_order_++;
  order_of_[id] = order;
  by_age_[order] = id;
}

void ResponseStore::forget_locked(const std::string& id) {
  auto it = order_of_.find(id);
  if (it == order_of_.end()) return;
  by_age_.erase(it->second);
  order_of_.erase(it);
  in_memory_.erase(id);
  if (!options_.directory.empty()) {
    std::error_code ec;
    fs::remove(path_of(id), ec);
  }
}

void ResponseStore::evict_locked() {
  while (order_of_.size() > options_.max_responses) {
    const std::string oldest = by_age_.begin()->second;  // a copy: forgetting it erases the map's own
    forget_locked(oldest);
  }
}

void ResponseStore::put(const StoredResponse& response) {
  if (!valid_id(response.id)) throw Error("not a response id: " + response.id);
  if (!options_.directory.empty()) {
    const std::string bytes = dump(to_file_json(response));
    AtomicFileWriter writer(path_of(response.id));
    writer.write(bytes.data(), bytes.size());
    writer.commit();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  add_to_index_locked(response.id);
  if (options_.directory.empty()) in_memory_[response.id] = response;
  evict_locked();
}

std::optional<StoredResponse> ResponseStore::get(const std::string& id) {
  if (!valid_id(id)) return std::nullopt;
  if (options_.directory.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = in_memory_.find(id);
    if (it == in_memory_.end()) return std::nullopt;
    return it->second;
  }
  // Another server sharing the directory may have written it since this
  // one indexed the directory: the file decides.
  std::ifstream in(path_of(id), std::ios::binary);
  if (!in) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = order_of_.find(id); it != order_of_.end()) {
      by_age_.erase(it->second);
      order_of_.erase(it);
    }
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  StoredResponse r;
  try {
    r = from_file_json(json::parse(text.str()));
  } catch (const std::exception& e) {
    throw Error("the stored response " + id + " is unreadable (" + e.what() + ")");
  }
  if (r.id != id) throw Error("the stored response file " + id + ".json holds response " + r.id);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!order_of_.count(id)) {
    add_to_index_locked(id);
    evict_locked();
  }
  return r;
}

bool ResponseStore::remove(const std::string& id) {
  if (!valid_id(id)) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  bool known = order_of_.count(id) > 0;
  if (!known && !options_.directory.empty()) {
    std::error_code ec;
    known = fs::exists(path_of(id), ec);
    if (known) add_to_index_locked(id);
  }
  if (known) forget_locked(id);
  return known;
}

size_t ResponseStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return order_of_.size();
}

}  // namespace flatline::server
