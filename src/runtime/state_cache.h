// The conversation-state cache: snapshots of what a model has consumed, so a
// client that resends the whole history (every Ollama/OpenAI client does)
// only pays for the text it added since the last reply.
//
// A snapshot is a Conversation (model state + the exact text and token ids in
// it + the pending end token). It is keyed by the model fingerprint, the
// state's context size and its fed_text. A prompt can start from a snapshot
// when the prompt begins with the snapshot's fed_text; the cache hands out a
// copy of the longest such snapshot. The chat service stores one at the end
// of each processed prompt (so "regenerate" costs nothing), one at the end of
// each reply (so the next turn only evaluates the new message) and, when a
// prompt is fed across several messages, at message boundaries (so an edited
// earlier message resumes from the boundary before it).
//
// Memory: snapshots of one conversation share KV pages (ModelState::clone),
// and the cache counts every page once, however many snapshots hold it. Of
// the snapshots of one conversation (those that are prefixes of its newest
// one) the cache keeps the newest, the one just before it and the prompt end
// a reply started from, plus older ones — recent ones densely, old ones one
// per doubling of distance — while they all cost at most
// `chain_budget` x the newest state (docs/SERVER.md "The state cache").
// Beyond that, least recently used snapshots are dropped first.
//
// With a state directory, snapshots at prompt and reply ends are also
// written to files named after their content, so several servers can share
// one directory (replicas behind a load balancer): each finds the longest
// stored prefix of a conversation by file name alone, the directory's real
// size is bounded across all of them, and no lock is held across a request.
// See docs/SERVER.md "State files" for the format and docs/DEPLOY.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/engine.h"

namespace flatline {

// ---------------------------------------------------------------------------
// State files (one snapshot each). All integers little-endian.
//
//   offset size  field
//   0      8     magic "FLSTATE\0"
//   8      4     format version (kStateFileVersion)
//   12     4     size of this fixed header (80)
//   16     4     F  fingerprint length
//   20     4     P  pending token count
//   24     8     T  fed text length
//   32     8     N  token count
//   40     8     Q  pending text length
//   48     8     L  logit count
//   56     8     S  state payload length (ModelState::save)
//   64     8     n_ctx of the state (0 = recurrent / unbounded)
//   72     8     index checksum: ContentHash of bytes [0,72) + fingerprint + fed text
//   80     F     model fingerprint (LoadedModel::fingerprint())
//          T     fed text
//          4N    token ids (int32)
//          4P    pending token ids (int32)
//          Q     pending text
//          4L    logits after the last fed token (f32)
//          S     state payload
//   end-8  8     checksum: ContentHash of every byte before it
//
// File name: <model>-<n_ctx>-<T>-<text>-<kind>.flstate, where <model> is the
// 16 hex digits of ContentHash(fingerprint), <n_ctx> and <T> are decimal,
// <text> the 16 hex digits of ContentHash(fed text) and <kind> is p (end of
// a prompt) or r (end of a reply). A server finds the files that may hold a
// prefix of a prompt from their names alone; a file is used only after its
// name, header and checksums agree with the loaded model and the prompt.
constexpr uint32_t kStateFileVersion = 2;  // 2: one versioned state payload for every architecture
constexpr size_t kStateFileHeaderBytes = 80;

// What a snapshot stands for: it decides which snapshots of a conversation
// are kept (see StateCache) and which are written to disk.
enum class SnapshotKind : uint8_t {
  Boundary = 1,   // the end of a message inside a prompt (memory only)
  PromptEnd = 2,  // the end of a processed prompt, where a reply starts
  ReplyEnd = 4,   // the end of a reply
};

// What the fixed header and the index part of a state file say.
struct StateFileIndex {
  std::string path;
  std::string fingerprint;
  std::string fed_text;
  int64_t n_ctx = 0;
  uint64_t n_tokens = 0;
  uint64_t file_bytes = 0;
};

// What a state file's name says (parse_state_file_name).
struct StateFileName {
  uint64_t model_hash = 0;
  int64_t n_ctx = 0;
  uint64_t text_bytes = 0;
  uint64_t text_hash = 0;
  SnapshotKind kind = SnapshotKind::ReplyEnd;
};

std::string state_file_name(const std::string& fingerprint, int64_t n_ctx, std::string_view fed_text,
                            SnapshotKind kind);
// nullopt when `name` is not a state file name (or names an empty text or a
// context beyond limits::kMaxContext).
std::optional<StateFileName> parse_state_file_name(std::string_view name);

std::vector<uint8_t> encode_state_file(const Conversation& conv, const std::string& fingerprint);
// Checks magic, version, lengths against the buffer, both checksums, the
// fingerprint, the context size against the model (and `expected_ctx` when
// >= 0), that the file holds a conversation (no empty text) and that its
// state is no larger than one state of its context, then rebuilds the
// conversation with a fresh state from `model`. Throws Error naming the
// problem.
// `fingerprint`: the one the file must carry (empty: the model's).
Conversation decode_state_file(std::span<const uint8_t> bytes, const LoadedModel& model,
                               const std::string& display_name = "<memory>", int64_t expected_ctx = -1,
                               const std::string& fingerprint = {});

// Crash-safe write (temp file + fsync + rename).
void save_state_file(const std::string& path, const Conversation& conv, const std::string& fingerprint);
Conversation load_state_file(const std::string& path, const LoadedModel& model, int64_t expected_ctx = -1);
// Reads only the header and index part; checks the index checksum and that
// the file is as long as the header says. Throws Error.
StateFileIndex read_state_file_index(const std::string& path);

// ---------------------------------------------------------------------------

struct StateCacheOptions {
  uint64_t memory_limit = 256ull << 20;  // bytes of snapshots kept in RAM; 0 = none
  std::string directory;                 // "" = no persistence
  // Bytes of state files in the directory, counted over every file in it
  // (other servers sharing it included); the oldest files go first.
  uint64_t disk_limit = 4ull << 30;
  // The snapshots of one conversation beyond the required ones (its newest,
  // the one before, the prompt end its reply started from) are kept only
  // while all of them together cost at most this times its newest state.
  double chain_budget = 1.5;
};

struct StateCacheStats {
  uint64_t entries = 0;
  uint64_t boundary_entries = 0;  // of which are message-boundary snapshots
  uint64_t bytes = 0;             // fixed_bytes + kv_bytes: what the snapshots really take
  uint64_t fixed_bytes = 0;       // everything but KV pages: recurrent parts, text, tokens, logits
  uint64_t kv_bytes = 0;          // KV pages, each counted once however many snapshots hold it
  uint64_t kv_shared_bytes = 0;   // of kv_bytes: pages held by more than one snapshot
  uint64_t kv_unshared_bytes_equivalent = 0;  // the snapshots' KV if each held its own copy
  uint64_t peak_bytes = 0;        // most `bytes` ever held
  uint64_t disk_entries = 0;
  uint64_t disk_bytes = 0;
  uint64_t hits = 0;            // lookups that found a snapshot (memory or disk)
  uint64_t disk_hits = 0;       // ... of which were read from disk
  uint64_t misses = 0;
  uint64_t evictions = 0;       // snapshots dropped from memory for space
  uint64_t superseded = 0;      // snapshots of a conversation dropped as it moved on
  uint64_t rejected_files = 0;  // state files refused (and moved into rejected/)
  uint64_t files_read = 0;      // state files loaded (disk hits)
  uint64_t files_written = 0;
  uint64_t files_deleted = 0;   // superseded or beyond the disk limit
};

class StateCache {
 public:
  explicit StateCache(StateCacheOptions options);
  ~StateCache();  // finishes pending disk syncs
  StateCache(const StateCache&) = delete;
  StateCache& operator=(const StateCache&) = delete;

  // A copy of the longest snapshot of `model` with this context size whose
  // fed_text is a prefix of `prompt`, or nullopt. With a state directory it
  // also looks there (files written by any server) for a longer one.
  // `variant` names how the states were computed when a request changes it
  // (a looped model's exit policy, Engine::cache_variant): snapshots of one
  // variant never serve another.
  std::optional<Conversation> lookup(const LoadedModel& model, int64_t n_ctx, std::string_view prompt,
                                     std::string_view variant = {});

  // Keeps `snapshot` (replacing one with the same text) and drops the
  // snapshots of its conversation it makes redundant. With `persist`, a
  // state directory and a prompt or reply end, it is also written to disk
  // before this returns (so the next turn can go to another server); the
  // fsync follows in the background.
  void store(const LoadedModel& model, Conversation snapshot, bool persist,
             SnapshotKind kind = SnapshotKind::ReplyEnd, std::string_view variant = {});
  // Waits until every written file is synced to disk.
  void flush();

  StateCacheStats stats() const;
  const StateCacheOptions& options() const { return options_; }

 private:
  // Snapshots are immutable once stored and shared with the request that
  // writes them to disk, which may still be saving one the memory cache
  // has already dropped.
  using Snapshot = std::shared_ptr<const Conversation>;
  struct Page {
    const void* id;
    uint64_t bytes;
  };
  struct Entry {
    std::string fingerprint;
    int64_t n_ctx = 0;
    Snapshot conv;
    uint8_t kinds = 0;         // SnapshotKind bits
    uint64_t own_bytes = 0;    // all but the KV pages
    uint64_t kv_bytes = 0;     // its KV pages, shared or not
    std::vector<Page> pages;
    bool is(SnapshotKind k) const { return kinds & static_cast<uint8_t>(k); }
    uint64_t total() const { return own_bytes + kv_bytes; }
  };
  using EntryIt = std::list<Entry>::iterator;
  struct PageUse {
    uint32_t refs = 0;
    uint64_t bytes = 0;
  };
  struct DiskEntry {
    StateFileName name;
    uint64_t file_bytes = 0;
  };

  // Memory.
  Entry make_entry(const std::string& fingerprint, int64_t n_ctx, Snapshot conv, uint8_t kinds) const;
  void insert_memory(Entry e);
  void erase_entry(EntryIt it);
  void drop_abandoned_replies(const Entry& x);
  void keep_chain_within_budget(const Entry& x);
  uint64_t marginal_bytes(const Entry& e) const;  // what adding e would cost
  uint64_t memory_bytes() const { return own_bytes_ + kv_bytes_; }

  // Disk. Functions named *_locked need mutex_; the others take it briefly
  // and do their file IO without it.
  std::string path_of(const std::string& name) const;
  void scan_directory();
  void refresh_disk_index();
  std::vector<std::string> disk_candidates(const std::string& fingerprint, int64_t n_ctx, std::string_view prompt,
                                           size_t longer_than) const;
  std::optional<Conversation> load_from_disk(const LoadedModel& model, const std::string& fingerprint, int64_t n_ctx,
                                             std::string_view prompt, size_t longer_than);
  void reject_file(const std::string& name, const std::string& why);
  void write_to_disk(const std::string& fingerprint, int64_t n_ctx, const Conversation& conv, SnapshotKind kind);
  void delete_superseded_files(const std::string& fingerprint, int64_t n_ctx, const std::string& text,
                               SnapshotKind kind, const std::string& keep);
  void trim_disk(const std::string& keep);
  void remove_file(const std::string& name);
  void sync_loop();

  StateCacheOptions options_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<const void*, PageUse> pages_;
  uint64_t own_bytes_ = 0;
  uint64_t kv_bytes_ = 0;
  uint64_t kv_shared_bytes_ = 0;
  uint64_t kv_logical_bytes_ = 0;
  StateCacheStats counters_;

  std::map<std::string, DiskEntry> disk_;  // file name -> what it says
  std::set<std::string> refused_names_;   // rejected files that could not be moved aside
  uint64_t disk_bytes_ = 0;
  std::string temp_tag_;  // ".tmp.<host>.<pid>." of this process

  std::deque<std::string> to_sync_;  // files renamed into place, not yet fsync'ed
  bool syncing_ = false;
  bool stopping_ = false;
  std::condition_variable sync_cv_;
  std::thread syncer_;
};

}  // namespace flatline
