#include "runtime/state_cache.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/content_hash.h"
#include "runtime/memory_budget.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"

namespace flatline {

namespace {

constexpr char kMagic[8] = {'F', 'L', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr const char* kExtension = ".flstate";
constexpr size_t kIndexChecksumOffset = 72;
constexpr size_t kMaxPendingWrites = 8;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// The n_ctx a snapshot for this request would carry: recurrent states have
// no capacity, so any request can use them.
int64_t context_key(const LoadedModel& model, int64_t n_ctx) { return model.traits().has_context_limit ? n_ctx : 0; }

// A snapshot can continue a conversation that asked for `wanted` tokens of
// context if it has at least that much room (a model may round the size up).
bool context_fits(int64_t snapshot_ctx, int64_t wanted) {
  return snapshot_ctx == wanted || (wanted > 0 && snapshot_ctx >= wanted);
}

struct FixedHeader {
  uint32_t version = kStateFileVersion;
  uint32_t header_bytes = kStateFileHeaderBytes;
  uint32_t fingerprint_len = 0;
  uint32_t pending_count = 0;
  uint64_t fed_text_len = 0;
  uint64_t token_count = 0;
  uint64_t pending_text_len = 0;
  uint64_t logit_count = 0;
  uint64_t state_len = 0;
  int64_t n_ctx = 0;
  uint64_t index_checksum = 0;

  uint64_t total_bytes() const {
    return kStateFileHeaderBytes + fingerprint_len + fed_text_len + 4 * token_count + 4ull * pending_count +
           pending_text_len + 4 * logit_count + state_len + 8;
  }
};

template <typename T>
void put(std::vector<uint8_t>& out, size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void write_fixed_header(std::vector<uint8_t>& out, const FixedHeader& h) {
  std::memcpy(out.data(), kMagic, 8);
  put(out, 8, h.version);
  put(out, 12, h.header_bytes);
  put(out, 16, h.fingerprint_len);
  put(out, 20, h.pending_count);
  put(out, 24, h.fed_text_len);
  put(out, 32, h.token_count);
  put(out, 40, h.pending_text_len);
  put(out, 48, h.logit_count);
  put(out, 56, h.state_len);
  put(out, 64, h.n_ctx);
  put(out, 72, h.index_checksum);
}

// Parses and checks the fixed header. `available` is the file size.
FixedHeader parse_fixed_header(const uint8_t* p, uint64_t available, const std::string& name) {
  if (available < kStateFileHeaderBytes)
    throw Error(name + ": truncated state file: " + std::to_string(available) + " bytes, the header alone needs " +
                std::to_string(kStateFileHeaderBytes));
  if (std::memcmp(p, kMagic, 8) != 0) throw Error(name + ": not a flatline state file (bad magic)");
  FixedHeader h;
  h.version = get<uint32_t>(p + 8);
  if (h.version != kStateFileVersion)
    throw Error(name + ": state file format version " + std::to_string(h.version) + ", expected " +
                std::to_string(kStateFileVersion));
  h.header_bytes = get<uint32_t>(p + 12);
  if (h.header_bytes != kStateFileHeaderBytes)
    throw Error(name + ": state file header size " + std::to_string(h.header_bytes) + ", expected " +
                std::to_string(kStateFileHeaderBytes));
  h.fingerprint_len = get<uint32_t>(p + 16);
  h.pending_count = get<uint32_t>(p + 20);
  h.fed_text_len = get<uint64_t>(p + 24);
  h.token_count = get<uint64_t>(p + 32);
  h.pending_text_len = get<uint64_t>(p + 40);
  h.logit_count = get<uint64_t>(p + 48);
  h.state_len = get<uint64_t>(p + 56);
  h.n_ctx = get<int64_t>(p + 64);
  h.index_checksum = get<uint64_t>(p + 72);
  // Every length is bounded by the file size, so the sum cannot overflow.
  for (uint64_t len : {uint64_t(h.fingerprint_len), h.fed_text_len, h.token_count, uint64_t(h.pending_count),
                       h.pending_text_len, h.logit_count, h.state_len}) {
    if (len > available) throw Error(name + ": truncated or corrupt state file: a length field exceeds the file size");
  }
  if (h.total_bytes() != available)
    throw Error(name + ": truncated or corrupt state file: the header describes " + std::to_string(h.total_bytes()) +
                " bytes, the file has " + std::to_string(available));
  if (h.n_ctx < 0) throw Error(name + ": corrupt state file: negative context size");
  return h;
}

uint64_t index_checksum(const uint8_t* header_start, std::string_view fingerprint, std::string_view fed_text) {
  ContentHash h;
  h.update(header_start, kIndexChecksumOffset);
  h.update(fingerprint);
  h.update(fed_text);
  return h.digest();
}

std::vector<uint8_t> read_prefix(const std::string& path, uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open state file " + path);
  std::vector<uint8_t> buf(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n));
  buf.resize(static_cast<size_t>(in.gcount()));
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// State files

std::vector<uint8_t> encode_state_file(const Conversation& conv, const std::string& fingerprint) {
  if (!conv.state) throw Error("internal error: saving a conversation without a state");
  std::vector<uint8_t> payload;
  conv.state->save(payload);
  FixedHeader h;
  h.fingerprint_len = static_cast<uint32_t>(fingerprint.size());
  h.pending_count = static_cast<uint32_t>(conv.pending_tokens.size());
  h.fed_text_len = conv.fed_text.size();
  h.token_count = conv.tokens.size();
  h.pending_text_len = conv.pending_text.size();
  h.logit_count = conv.last_logits.size();
  h.state_len = payload.size();
  h.n_ctx = conv.state->n_ctx();

  std::vector<uint8_t> out(static_cast<size_t>(h.total_bytes()));
  write_fixed_header(out, h);
  size_t at = kStateFileHeaderBytes;
  auto append = [&](const void* data, size_t n) {
    if (n) std::memcpy(out.data() + at, data, n);
    at += n;
  };
  append(fingerprint.data(), fingerprint.size());
  append(conv.fed_text.data(), conv.fed_text.size());
  append(conv.tokens.data(), conv.tokens.size() * 4);
  append(conv.pending_tokens.data(), conv.pending_tokens.size() * 4);
  append(conv.pending_text.data(), conv.pending_text.size());
  append(conv.last_logits.data(), conv.last_logits.size() * 4);
  append(payload.data(), payload.size());
  h.index_checksum = index_checksum(out.data(), fingerprint, conv.fed_text);
  put(out, kIndexChecksumOffset, h.index_checksum);
  put(out, at, ContentHash::of(out.data(), at));
  return out;
}

Conversation decode_state_file(std::span<const uint8_t> bytes, const LoadedModel& model, const std::string& name) {
  FixedHeader h = parse_fixed_header(bytes.data(), bytes.size(), name);
  const uint8_t* p = bytes.data() + kStateFileHeaderBytes;
  std::string_view fingerprint(reinterpret_cast<const char*>(p), h.fingerprint_len);
  std::string_view fed_text(reinterpret_cast<const char*>(p + h.fingerprint_len), h.fed_text_len);
  if (index_checksum(bytes.data(), fingerprint, fed_text) != h.index_checksum)
    throw Error(name + ": corrupt state file: header checksum mismatch");
  const uint64_t stored = get<uint64_t>(bytes.data() + bytes.size() - 8);
  if (ContentHash::of(bytes.data(), bytes.size() - 8) != stored)
    throw Error(name + ": corrupt state file: checksum mismatch");
  if (fingerprint != model.fingerprint())
    throw Error(name + ": state file belongs to another model (fingerprint " + std::string(fingerprint) +
                ", the loaded model " + model.info().name + " has " + model.fingerprint() + ")");
  const int64_t n_vocab = model.info().n_vocab;
  if (h.logit_count != 0 && h.logit_count != static_cast<uint64_t>(n_vocab))
    throw Error(name + ": state file has " + std::to_string(h.logit_count) + " logits, the model has " +
                std::to_string(n_vocab) + " tokens");

  Conversation conv;
  p += h.fingerprint_len;
  conv.fed_text.assign(reinterpret_cast<const char*>(p), h.fed_text_len);
  p += h.fed_text_len;
  auto read_ids = [&](std::vector<int32_t>& ids, uint64_t n) {
    ids.resize(static_cast<size_t>(n));
    if (n) std::memcpy(ids.data(), p, n * 4);
    p += n * 4;
    for (int32_t id : ids)
      if (id < 0 || id >= n_vocab)
        throw Error(name + ": state file holds token id " + std::to_string(id) + ", outside the model's vocabulary of " +
                    std::to_string(n_vocab));
  };
  read_ids(conv.tokens, h.token_count);
  read_ids(conv.pending_tokens, h.pending_count);
  conv.pending_text.assign(reinterpret_cast<const char*>(p), h.pending_text_len);
  p += h.pending_text_len;
  conv.last_logits.resize(static_cast<size_t>(h.logit_count));
  if (h.logit_count) std::memcpy(conv.last_logits.data(), p, h.logit_count * 4);
  p += h.logit_count * 4;
  conv.state = model.model().new_state(h.n_ctx);
  if (conv.state->n_ctx() != h.n_ctx)
    throw Error(name + ": state file was made for a " + std::to_string(h.n_ctx) + "-token context, this model gives " +
                std::to_string(conv.state->n_ctx()));
  conv.state->load(std::span<const uint8_t>(p, static_cast<size_t>(h.state_len)));
  if (conv.state->n_past() != static_cast<int64_t>(conv.tokens.size()))
    throw Error(name + ": state file is inconsistent: the state holds " + std::to_string(conv.state->n_past()) +
                " tokens, the token list " + std::to_string(conv.tokens.size()));
  if (conv.last_logits.empty() && !conv.tokens.empty())
    throw Error(name + ": state file has tokens but no logits");
  return conv;
}

void save_state_file(const std::string& path, const Conversation& conv, const std::string& fingerprint) {
  std::vector<uint8_t> bytes = encode_state_file(conv, fingerprint);
  AtomicFileWriter w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

Conversation load_state_file(const std::string& path, const LoadedModel& model) {
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read state file " + path + ": " + ec.message());
  std::vector<uint8_t> bytes = read_prefix(path, size);
  if (bytes.size() != size) throw Error(path + ": state file changed while it was read");
  return decode_state_file(bytes, model, path);
}

StateFileIndex read_state_file_index(const std::string& path) {
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read state file " + path + ": " + ec.message());
  std::vector<uint8_t> head = read_prefix(path, std::min<uint64_t>(size, kStateFileHeaderBytes));
  FixedHeader h = parse_fixed_header(head.data(), size, path);
  std::vector<uint8_t> index = read_prefix(path, kStateFileHeaderBytes + h.fingerprint_len + h.fed_text_len);
  std::string_view fingerprint(reinterpret_cast<const char*>(index.data() + kStateFileHeaderBytes), h.fingerprint_len);
  std::string_view fed_text(reinterpret_cast<const char*>(index.data() + kStateFileHeaderBytes + h.fingerprint_len),
                            h.fed_text_len);
  if (index_checksum(index.data(), fingerprint, fed_text) != h.index_checksum)
    throw Error(path + ": corrupt state file: header checksum mismatch");
  StateFileIndex out;
  out.path = path;
  out.fingerprint = fingerprint;
  out.fed_text = fed_text;
  out.n_ctx = h.n_ctx;
  out.n_tokens = h.token_count;
  out.file_bytes = size;
  return out;
}

// ---------------------------------------------------------------------------
// StateCache

StateCache::StateCache(StateCacheOptions options) : options_(std::move(options)) {
  if (!options_.directory.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.directory, ec);
    if (ec) throw Error("cannot create the state directory " + options_.directory + ": " + ec.message());
    scan_directory();
    writer_ = std::thread([this] { writer_loop(); });
  }
}

StateCache::~StateCache() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  writes_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void StateCache::scan_directory() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(options_.directory, ec)) {
    const std::string path = item.path().string();
    const std::string file = item.path().filename().string();
    if (file.find(std::string(kExtension) + ".tmp.") != std::string::npos) {
      // Left by a crash between write and rename: never a complete file.
      fs::remove(item.path(), ec);
      continue;
    }
    if (item.path().extension() != kExtension) continue;
    try {
      DiskEntry e{read_state_file_index(path), std::chrono::steady_clock::time_point{}};
      disk_bytes_ += e.index.file_bytes;
      disk_.push_back(std::move(e));
    } catch (const Error& err) {
      ++counters_.rejected_files;
      LOG_WARN("state cache: ignoring " << err.what());
    }
  }
  if (!disk_.empty())
    LOG_INFO("state cache: " << disk_.size() << " saved conversation states (" << format_bytes(disk_bytes_) << ") in "
                             << options_.directory);
}

std::string StateCache::file_name_for(const std::string& fingerprint, int64_t n_ctx,
                                      const std::string& fed_text) const {
  ContentHash h(static_cast<uint64_t>(n_ctx));
  h.update(fed_text);
  return (std::filesystem::path(options_.directory) /
          (hex64(ContentHash::of(fingerprint)) + "-" + hex64(h.digest()) + kExtension))
      .string();
}

std::optional<Conversation> StateCache::lookup(const LoadedModel& model, int64_t n_ctx, std::string_view prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string& fp = model.fingerprint();
  const int64_t key_ctx = context_key(model, n_ctx);

  auto best = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!context_fits(it->n_ctx, key_ctx) || it->fingerprint != fp || !starts_with(prompt, it->conv->fed_text))
      continue;
    if (best == entries_.end() || it->conv->fed_text.size() > best->conv->fed_text.size()) best = it;
  }
  const size_t memory_len = best == entries_.end() ? 0 : best->conv->fed_text.size();

  // A longer snapshot on disk (e.g. after a restart) beats a shorter one in memory.
  while (true) {
    DiskEntry* disk_best = nullptr;
    for (auto& d : disk_) {
      if (!context_fits(d.index.n_ctx, key_ctx) || d.index.fingerprint != fp || !starts_with(prompt, d.index.fed_text))
        continue;
      if (d.index.fed_text.size() <= memory_len && best != entries_.end()) continue;
      if (!disk_best || d.index.fed_text.size() > disk_best->index.fed_text.size()) disk_best = &d;
    }
    if (!disk_best) break;
    try {
      auto conv = std::make_shared<const Conversation>(load_state_file(disk_best->index.path, model));
      disk_best->last_used = std::chrono::steady_clock::now();
      ++counters_.hits;
      ++counters_.disk_hits;
      LOG_INFO("state cache: resumed a conversation of " << conv->tokens.size() << " tokens from "
                                                          << disk_best->index.path);
      insert_memory(fp, conv->state->n_ctx(), conv);
      return conv->clone();
    } catch (const Error& err) {
      ++counters_.rejected_files;
      LOG_WARN("state cache: rejected " << err.what());
      disk_bytes_ -= disk_best->index.file_bytes;
      disk_.erase(disk_.begin() + (disk_best - disk_.data()));
    }
  }
  if (best == entries_.end()) {
    ++counters_.misses;
    return std::nullopt;
  }
  ++counters_.hits;
  entries_.splice(entries_.begin(), entries_, best);  // most recently used
  return entries_.front().conv->clone();
}

void StateCache::store(const LoadedModel& model, Conversation snapshot, bool persist) {
  if (!snapshot.state) return;
  const int64_t key_ctx = snapshot.state->n_ctx();
  auto shared = std::make_shared<const Conversation>(std::move(snapshot));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    insert_memory(model.fingerprint(), key_ctx, shared);
    if (!persist || options_.directory.empty()) return;
    writes_.push_back(PendingWrite{model.fingerprint(), key_ctx, std::move(shared)});
    // A disk slower than the conversations: keep the newest snapshots, which
    // extend the older ones anyway.
    while (writes_.size() > kMaxPendingWrites) {
      LOG_DEBUG("state cache: the disk is behind; not saving an older snapshot");
      writes_.pop_front();
    }
  }
  writes_cv_.notify_all();
}

void StateCache::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  writes_cv_.wait(lock, [&] { return (writes_.empty() && !writing_) || !writer_.joinable(); });
}

void StateCache::writer_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    writes_cv_.wait(lock, [&] { return stopping_ || !writes_.empty(); });
    if (writes_.empty()) break;  // stopping, and everything is written
    PendingWrite item = std::move(writes_.front());
    writes_.pop_front();
    writing_ = true;
    lock.unlock();
    write_to_disk(item);
    lock.lock();
    writing_ = false;
    writes_cv_.notify_all();
  }
}

void StateCache::insert_memory(const std::string& fingerprint, int64_t n_ctx, Snapshot conv) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->n_ctx == n_ctx && it->fingerprint == fingerprint && it->conv->fed_text == conv->fed_text) {
      bytes_ -= it->bytes;
      entries_.erase(it);
      break;
    }
  }
  drop_superseded_in_memory(fingerprint, n_ctx, conv->fed_text);
  const uint64_t size = conv->memory_bytes();
  if (size > options_.memory_limit) {
    LOG_DEBUG("state cache: a " << format_bytes(size) << " snapshot does not fit the "
                                << format_bytes(options_.memory_limit) << " cache; not kept in memory");
    return;
  }
  evict_memory_to_fit(size);
  entries_.push_front(Entry{fingerprint, n_ctx, std::move(conv), size});
  bytes_ += size;
}

namespace {
bool is_strict_prefix(const std::string& prefix, const std::string& text) {
  return prefix.size() < text.size() && text.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace

// A conversation that moves on leaves a chain of snapshots, each a prefix of
// the next. Only the newest and the one just before it (its "anchor", e.g.
// the end of the last prompt, so "regenerate" is free) are worth keeping:
// older ancestors, and branches off the anchor that the conversation did not
// take (a reply the client changed, or a regenerated one), would otherwise
// make memory grow with every turn.
bool StateCache::is_superseded(const std::string& candidate, const std::string& anchor, bool has_anchor,
                               const std::string& text) {
  if (candidate == text || (has_anchor && candidate == anchor)) return false;
  if (is_strict_prefix(candidate, text)) return true;                            // older ancestor
  return has_anchor && is_strict_prefix(anchor, candidate) && !is_strict_prefix(candidate, text);  // abandoned branch
}

void StateCache::drop_superseded_in_memory(const std::string& fingerprint, int64_t n_ctx, const std::string& text) {
  const std::string* anchor = nullptr;
  for (const Entry& e : entries_)
    if (e.n_ctx == n_ctx && e.fingerprint == fingerprint && is_strict_prefix(e.conv->fed_text, text) &&
        (!anchor || e.conv->fed_text.size() > anchor->size()))
      anchor = &e.conv->fed_text;
  const std::string anchor_text = anchor ? *anchor : std::string();
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->n_ctx == n_ctx && it->fingerprint == fingerprint &&
        is_superseded(it->conv->fed_text, anchor_text, anchor != nullptr, text)) {
      bytes_ -= it->bytes;
      it = entries_.erase(it);
      ++counters_.superseded;
    } else {
      ++it;
    }
  }
}

// The same rule for state files, so a saved conversation stays two files.
void StateCache::drop_superseded_on_disk(const StateFileIndex& newest) {
  bool has_anchor = false;
  std::string anchor;
  for (const DiskEntry& d : disk_)
    if (d.index.fingerprint == newest.fingerprint && d.index.n_ctx == newest.n_ctx &&
        is_strict_prefix(d.index.fed_text, newest.fed_text) && (!has_anchor || d.index.fed_text.size() > anchor.size())) {
      anchor = d.index.fed_text;
      has_anchor = true;
    }
  for (auto it = disk_.begin(); it != disk_.end();) {
    if (it->index.fingerprint == newest.fingerprint && it->index.n_ctx == newest.n_ctx &&
        is_superseded(it->index.fed_text, anchor, has_anchor, newest.fed_text)) {
      std::error_code ec;
      std::filesystem::remove(it->index.path, ec);
      disk_bytes_ -= it->index.file_bytes;
      it = disk_.erase(it);
    } else {
      ++it;
    }
  }
}

void StateCache::evict_memory_to_fit(uint64_t incoming) {
  while (!entries_.empty() && bytes_ + incoming > options_.memory_limit) {
    bytes_ -= entries_.back().bytes;
    entries_.pop_back();
    ++counters_.evictions;
  }
}

void StateCache::write_to_disk(const PendingWrite& item) {
  const std::string path = file_name_for(item.fingerprint, item.n_ctx, item.conv->fed_text);
  StateFileIndex index;
  try {
    save_state_file(path, *item.conv, item.fingerprint);
    index = read_state_file_index(path);
  } catch (const Error& err) {
    LOG_WARN("state cache: could not save a conversation state: " << err.what());
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = disk_.begin(); it != disk_.end(); ++it) {
    if (it->index.path == path) {
      disk_bytes_ -= it->index.file_bytes;
      disk_.erase(it);
      break;
    }
  }
  drop_superseded_on_disk(index);
  disk_bytes_ += index.file_bytes;
  disk_.push_back(DiskEntry{std::move(index), std::chrono::steady_clock::now()});
  trim_disk();
}

// Deletes the least recently used state files beyond the disk limit (files
// found at start-up count as oldest).
void StateCache::trim_disk() {
  while (disk_bytes_ > options_.disk_limit && disk_.size() > 1) {
    auto oldest = std::min_element(disk_.begin(), disk_.end() - 1, [](const DiskEntry& a, const DiskEntry& b) {
      return a.last_used < b.last_used;
    });
    std::error_code ec;
    std::filesystem::remove(oldest->index.path, ec);
    disk_bytes_ -= oldest->index.file_bytes;
    disk_.erase(oldest);
  }
}

StateCacheStats StateCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  StateCacheStats s = counters_;
  s.entries = entries_.size();
  s.bytes = bytes_;
  s.disk_entries = disk_.size();
  s.disk_bytes = disk_bytes_;
  return s;
}

}  // namespace flatline
