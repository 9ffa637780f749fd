// The conversation-state cache: snapshots of what a model has consumed, so a
// client that resends the whole history (every Ollama/OpenAI client does)
// only pays for the text it added since the last reply.
//
// A snapshot is a Conversation (model state + the exact text and token ids in
// it + the pending end token). It is keyed by the model fingerprint, the
// state's context size and its fed_text. A prompt can start from a snapshot
// when the prompt begins with the snapshot's fed_text; the cache hands out a
// copy of the longest such snapshot. Snapshots are taken at the end of each
// processed prompt (so "regenerate" costs nothing) and at the end of each
// reply (so the next turn only evaluates the new user message). Of a chain of
// snapshots of one conversation only the newest two are kept, so memory stays
// flat however many turns it has.
//
// Memory is bounded (least recently used snapshots are dropped first). With a
// state directory, snapshots are also written to disk by a background thread
// (so a slow disk never delays a reply) and conversations survive a restart;
// see docs/SERVER.md "State files" for the format.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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
constexpr uint32_t kStateFileVersion = 2;  // 2: one versioned state payload for every architecture
constexpr size_t kStateFileHeaderBytes = 80;

// What the fixed header and the index part of a state file say.
struct StateFileIndex {
  std::string path;
  std::string fingerprint;
  std::string fed_text;
  int64_t n_ctx = 0;
  uint64_t n_tokens = 0;
  uint64_t file_bytes = 0;
};

std::vector<uint8_t> encode_state_file(const Conversation& conv, const std::string& fingerprint);
// Checks magic, version, lengths against the buffer, both checksums and the
// fingerprint, then rebuilds the conversation with a fresh state from
// `model`. Throws Error naming the problem.
Conversation decode_state_file(std::span<const uint8_t> bytes, const LoadedModel& model,
                               const std::string& display_name = "<memory>");

// Crash-safe write (temp file + fsync + rename).
void save_state_file(const std::string& path, const Conversation& conv, const std::string& fingerprint);
Conversation load_state_file(const std::string& path, const LoadedModel& model);
// Reads only the header and index part (what the cache keeps in its disk
// index); checks the index checksum and that the file is as long as the
// header says. Throws Error.
StateFileIndex read_state_file_index(const std::string& path);

// ---------------------------------------------------------------------------

struct StateCacheOptions {
  uint64_t memory_limit = 256ull << 20;  // bytes of snapshots kept in RAM; 0 = none
  std::string directory;                 // "" = no persistence
  uint64_t disk_limit = 4ull << 30;      // bytes of state files kept on disk
};

struct StateCacheStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t disk_entries = 0;
  uint64_t disk_bytes = 0;
  uint64_t hits = 0;        // lookups that found a snapshot (memory or disk)
  uint64_t disk_hits = 0;   // ... of which were read from disk
  uint64_t misses = 0;
  uint64_t evictions = 0;   // snapshots dropped from memory for space
  uint64_t superseded = 0;  // older snapshots of a conversation that moved on
  uint64_t rejected_files = 0;
};

class StateCache {
 public:
  explicit StateCache(StateCacheOptions options);
  ~StateCache();  // finishes pending disk writes
  StateCache(const StateCache&) = delete;
  StateCache& operator=(const StateCache&) = delete;

  // A copy of the longest snapshot of `model` with this context size whose
  // fed_text is a prefix of `prompt`, or nullopt. Looks on disk when no
  // snapshot in memory is as long as one there.
  std::optional<Conversation> lookup(const LoadedModel& model, int64_t n_ctx, std::string_view prompt);

  // Keeps `snapshot` (replacing one with the same text). With `persist` and
  // a state directory, also queues it for writing to disk.
  void store(const LoadedModel& model, Conversation snapshot, bool persist);
  // Waits until every queued snapshot is on disk.
  void flush();

  StateCacheStats stats() const;
  const StateCacheOptions& options() const { return options_; }

 private:
  // Snapshots are immutable once stored and shared with the disk writer,
  // which may still be saving one the memory cache has already dropped.
  using Snapshot = std::shared_ptr<const Conversation>;
  struct Entry {
    std::string fingerprint;
    int64_t n_ctx = 0;
    Snapshot conv;
    uint64_t bytes = 0;
  };
  struct PendingWrite {
    std::string fingerprint;
    int64_t n_ctx = 0;
    Snapshot conv;
  };
  struct DiskEntry {
    StateFileIndex index;
    std::chrono::steady_clock::time_point last_used;
  };

  void scan_directory();
  std::string file_name_for(const std::string& fingerprint, int64_t n_ctx, const std::string& fed_text) const;
  void evict_memory_to_fit(uint64_t incoming);
  void drop_superseded_in_memory(const std::string& fingerprint, int64_t n_ctx, const std::string& text);
  void drop_superseded_on_disk(const StateFileIndex& newest);
  static bool is_superseded(const std::string& candidate, const std::string& anchor, bool has_anchor,
                            const std::string& text);
  void trim_disk();
  void insert_memory(const std::string& fingerprint, int64_t n_ctx, Snapshot conv);
  void write_to_disk(const PendingWrite& item);  // called by the writer thread without mutex_
  void writer_loop();

  StateCacheOptions options_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  uint64_t bytes_ = 0;
  std::vector<DiskEntry> disk_;
  uint64_t disk_bytes_ = 0;
  StateCacheStats counters_;

  std::deque<PendingWrite> writes_;
  bool writing_ = false;
  bool stopping_ = false;
  std::condition_variable writes_cv_;  // new work, or the queue drained
  std::thread writer_;
};

}  // namespace flatline
