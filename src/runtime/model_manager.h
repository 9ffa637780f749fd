// Which models are in memory, and who may use them when.
//
// Scheduling: every request that runs a model takes a turn from one FIFO
// queue; a turn gives exclusive use of the resident models (one forward pass
// at a time, which is also all a small CPU can do well). Requests that do
// not run a model (listings, /api/ps, GET /) never wait. When more than
// `max_queue` requests are already waiting, new ones are refused (503).
//
// Residency: at most `max_loaded` models (default 1) are loaded; loading
// another unloads the least recently used. After a request the model stays
// for its keep_alive (default 5 minutes; negative = forever; 0 = unload right
// away), as Ollama does.
//
// Memory: the budget (--max-memory, default from the machine) first sets
// aside the state cache's share; a model is loaded only if its weights,
// scratch buffers and one state of the requested context fit in the rest
// (MemoryBudgetError otherwise, before anything is allocated). When only a
// shorter transformer context fits, that context is used (and logged), is
// what the lease, the budget and /api/ps report, and what prompts must fit.
//
// Model files: each resident model remembers its file's identity (device,
// inode, size, mtime). A request for a model whose file changed since it was
// loaded (overwritten in place, or replaced) reloads it; the reaper unloads
// changed files; a request during which the file changed is told so
// (Lease::file_changed) because its reply may have read the new or vanished
// bytes (see util/mapped_file.h for why the process survives that).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "runtime/memory_budget.h"
#include "runtime/model_catalog.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace flatline {

// More requests are queued than the server accepts.
// More requests are queued than the server accepts, or one waited longer
// than the queue timeout. retry_after_seconds: when a retry may succeed (the
// HTTP Retry-After header).
class ServerBusyError : public Error {
 public:
  ServerBusyError(const std::string& message, int retry_after_seconds)
      : Error(message), retry_after_seconds_(retry_after_seconds) {}
  int retry_after_seconds() const { return retry_after_seconds_; }

 private:
  int retry_after_seconds_;
};

// How long a model stays loaded after a request, in nanoseconds.
struct KeepAlive {
  static constexpr int64_t kForever = INT64_MAX;
  int64_t ns = 5ll * 60 * 1000000000;
  bool forever() const { return ns == kForever; }
};

struct ModelManagerOptions {
  std::string models_dir;
  uint64_t max_memory = 0;      // 0: from the machine (MemoryBudget)
  uint64_t reserved_for_cache = 0;  // set aside from the budget for cached states
  int threads = 0;              // 0: physical cores
  int64_t batch = 256;
  int64_t default_ctx = 4096;   // num_ctx when a request gives none (transformers)
  DType kv_type = DType::F16;   // KV cache type (transformers)
  int max_loaded = 1;
  size_t max_queue = 32;
  // How long a request may wait for its turn before 503 (0: as long as it takes).
  int64_t queue_timeout_ms = 0;
  KeepAlive default_keep_alive;
};

struct ResidentModel {
  CatalogEntry entry;
  FileIdentity identity;          // of entry.path when it was loaded
  std::unique_ptr<LoadedModel> loaded;
  std::unique_ptr<Engine> engine;
  int64_t n_ctx = 0;              // context the memory reservation covers
  uint64_t reserved_bytes = 0;
  std::chrono::system_clock::time_point expires_at;
  KeepAlive keep_alive;
  std::chrono::steady_clock::time_point last_used;
};

// A snapshot of one resident model for /api/ps.
struct ResidentInfo {
  CatalogEntry entry;
  uint64_t size = 0;
  int64_t n_ctx = 0;
  std::chrono::system_clock::time_point expires_at;
  bool forever = false;
  // One conversation's state: a fixed part (recurrent layers, window KV)
  // and, for models with attention layers, KV per token of context.
  uint64_t state_fixed_bytes = 0;
  uint64_t state_kv_bytes_per_token = 0;
  uint64_t state_bytes = 0;  // at n_ctx, what the memory guard reserves per conversation
};

class ModelManager {
 public:
  // The right to run one model until it is destroyed (end of the request).
  class Lease {
   public:
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ResidentModel& model() { return *model_; }
    Engine& engine() { return *model_->engine; }
    LoadedModel& loaded() { return *model_->loaded; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t load_ns() const { return load_ns_; }  // waiting for the turn + loading
    bool was_loaded() const { return loaded_now_; }
    // The model's file changed on disk (or a mapped page vanished) since
    // this lease began: what the model computed may come from other bytes.
    // file_faulted() is the cheap part of the check (no system call), for
    // polling between tokens.
    bool file_changed() const;
    bool file_faulted() const { return MappedFile::fault_count(model_->identity) != faults_at_start_; }

   private:
    friend class ModelManager;
    Lease(ModelManager& manager, ResidentModel* model, int64_t n_ctx, KeepAlive keep_alive)
        : manager_(manager), model_(model), n_ctx_(n_ctx), keep_alive_(keep_alive),
          faults_at_start_(MappedFile::fault_count(model->identity)) {}
    ModelManager& manager_;
    ResidentModel* model_;
    int64_t n_ctx_;
    KeepAlive keep_alive_;
    int64_t load_ns_ = 0;
    bool loaded_now_ = false;
    uint64_t faults_at_start_;
  };

  explicit ModelManager(ModelManagerOptions options);
  ~ModelManager();

  ModelCatalog& catalog() { return catalog_; }
  const ModelManagerOptions& options() const { return options_; }

  // Waits for this request's turn (FIFO), then makes `entry` resident with
  // room for `num_ctx` tokens (0 = default). Throws ServerBusyError,
  // MemoryBudgetError or Error (unreadable model); the turn is given back
  // when it throws.
  std::unique_ptr<Lease> acquire(const CatalogEntry& entry, int64_t num_ctx, std::optional<KeepAlive> keep_alive);
  // Unloads the model if it is resident (waits for its turn).
  void unload(const CatalogEntry& entry);

  std::vector<ResidentInfo> resident() const;
  uint64_t budget_limit() const;
  uint64_t budget_reserved() const;
  const std::string& budget_source() const { return budget_.source(); }
  // Requests holding or waiting for the model turn.
  size_t queued() const;
  // The Retry-After a refused request is told: the requests ahead times the
  // mean time a turn has taken lately, at least 1 s, at most an hour.
  int retry_after_seconds() const;

 private:
  friend class Lease;
  void take_turn();
  bool try_take_turn();
  void end_turn();
  void release(Lease& lease);  // called by ~Lease with the turn held
  ResidentModel* find_resident(const std::string& path);
  ResidentModel* load(const CatalogEntry& entry, int64_t n_ctx);
  void grow_context(ResidentModel& m, int64_t n_ctx);
  bool file_changed(const ResidentModel& m) const;
  void unload_changed_files();  // caller holds the turn
  void unload_resident(ResidentModel* m);
  void unload_others(const ResidentModel* keep);
  int64_t effective_ctx(const CatalogEntry& entry, int64_t num_ctx) const;
  void reaper_loop();

  ModelManagerOptions options_;
  ModelCatalog catalog_;
  std::shared_ptr<ThreadPool> pool_;

  // FIFO turns.
  mutable std::mutex turn_mutex_;
  std::condition_variable turn_cv_;
  uint64_t next_ticket_ = 0;
  uint64_t now_serving_ = 0;
  // Tickets whose holders gave up waiting (queue timeout): skipped when
  // their number comes up, so the ones behind them are not stuck.
  std::set<uint64_t> abandoned_;
  std::chrono::steady_clock::time_point turn_began_;
  double mean_turn_seconds_ = 0;  // moving average over recent turns

  // Resident models and the budget: only touched with a turn held (reads
  // for /api/ps take state_mutex_ too).
  mutable std::mutex state_mutex_;
  MemoryBudget budget_;
  std::vector<std::unique_ptr<ResidentModel>> resident_;

  std::thread reaper_;
  std::mutex reaper_mutex_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;
};

}  // namespace flatline
