#include "runtime/model_manager.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <system_error>

#include "util/log.h"

namespace flatline {

namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The compute pool; a refusal from the OS becomes a message instead of
// std::system_error.
std::shared_ptr<ThreadPool> make_pool(int threads) {
  try {
    return std::make_shared<ThreadPool>(threads);
  } catch (const std::system_error& e) {
    throw Error("cannot start " + std::to_string(threads) + " compute threads (" + e.what() + "); lower -t/--threads");
  }
}

}  // namespace

ModelManager::Lease::~Lease() { manager_.release(*this); }

bool ModelManager::Lease::file_changed() const { return file_faulted() || manager_.file_changed(*model_); }

bool ModelManager::file_changed(const ResidentModel& m) const { return FileIdentity::of(m.entry.path) != m.identity; }

ModelManager::ModelManager(ModelManagerOptions options)
    : options_(std::move(options)),
      catalog_(options_.models_dir),
      pool_(make_pool(options_.threads)),
      budget_(options_.max_memory) {
  if (options_.reserved_for_cache >= budget_.limit())
    throw MemoryBudgetError("the state cache share (" + format_bytes(options_.reserved_for_cache) +
                            ") leaves nothing of the " + format_bytes(budget_.limit()) +
                            " memory budget for models (lower --cache-memory or raise --max-memory)");
  budget_.reserve(options_.reserved_for_cache);
  if (options_.max_loaded < 1) options_.max_loaded = 1;
  reaper_ = std::thread([this] { reaper_loop(); });
}

ModelManager::~ModelManager() {
  {
    std::lock_guard<std::mutex> lock(reaper_mutex_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

uint64_t ModelManager::budget_limit() const { return budget_.limit(); }

uint64_t ModelManager::budget_reserved() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return budget_.reserved();
}

size_t ModelManager::queued() const {
  std::lock_guard<std::mutex> lock(turn_mutex_);
  return static_cast<size_t>(next_ticket_ - now_serving_ - abandoned_.size());
}

int ModelManager::retry_after_seconds() const {
  std::lock_guard<std::mutex> lock(turn_mutex_);
  const double ahead = static_cast<double>(next_ticket_ - now_serving_ - abandoned_.size());
  return static_cast<int>(std::clamp(std::ceil(ahead * mean_turn_seconds_), 1.0, 3600.0));
}

// ---------------------------------------------------------------------------
// FIFO turns: ticket numbers, served in order. A request that stops waiting
// leaves its ticket in abandoned_, and end_turn() skips it.

void ModelManager::take_turn() {
  std::unique_lock<std::mutex> lock(turn_mutex_);
  const uint64_t waiting = next_ticket_ - now_serving_ - abandoned_.size();  // includes the one being served
  if (waiting > options_.max_queue) {
    lock.unlock();
    throw ServerBusyError("server busy, please try again.  maximum pending requests exceeded", retry_after_seconds());
  }
  const uint64_t ticket = next_ticket_++;
  const auto my_turn = [&] { return now_serving_ == ticket; };
  if (options_.queue_timeout_ms <= 0) {
    turn_cv_.wait(lock, my_turn);
  } else if (!turn_cv_.wait_for(lock, std::chrono::milliseconds(options_.queue_timeout_ms), my_turn)) {
    abandoned_.insert(ticket);
    const uint64_t ahead = ticket - now_serving_;
    lock.unlock();
    char waited[32];
    std::snprintf(waited, sizeof waited, "%.1f", static_cast<double>(options_.queue_timeout_ms) / 1000.0);
    throw ServerBusyError(std::string("server busy, please try again.  waited ") + waited + " s for the model with " +
                              std::to_string(ahead) + " request(s) still ahead (--queue-timeout)",
                          retry_after_seconds());
  }
  turn_began_ = std::chrono::steady_clock::now();
}

bool ModelManager::try_take_turn() {
  std::lock_guard<std::mutex> lock(turn_mutex_);
  if (next_ticket_ != now_serving_) return false;
  ++next_ticket_;
  turn_began_ = std::chrono::steady_clock::now();
  return true;
}

void ModelManager::end_turn() {
  {
    std::lock_guard<std::mutex> lock(turn_mutex_);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - turn_began_).count();
    mean_turn_seconds_ = mean_turn_seconds_ == 0 ? took : 0.75 * mean_turn_seconds_ + 0.25 * took;
    ++now_serving_;
    while (abandoned_.erase(now_serving_) > 0) ++now_serving_;
  }
  turn_cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Residency

int64_t ModelManager::effective_ctx(const CatalogEntry& entry, int64_t num_ctx) const {
  int64_t n = num_ctx > 0 ? num_ctx : options_.default_ctx;
  const int64_t trained = entry.summary.context_length;
  if (trained > 0 && n > trained) {
    LOG_INFO(entry.name << ": num_ctx " << n << " is beyond the trained context of " << trained << "; using "
                        << trained);
    n = trained;
  }
  return n;
}

ResidentModel* ModelManager::find_resident(const std::string& path) {
  for (auto& m : resident_)
    if (m->entry.path == path) return m.get();
  return nullptr;
}

std::unique_ptr<ModelManager::Lease> ModelManager::acquire(const CatalogEntry& entry, int64_t num_ctx,
                                                           std::optional<KeepAlive> keep_alive) {
  const int64_t t0 = steady_ns();
  take_turn();
  try {
    const int64_t wanted = effective_ctx(entry, num_ctx);
    ResidentModel* m = find_resident(entry.path);
    if (m && file_changed(*m)) {
      LOG_WARN(entry.name << ": " << entry.path << " changed on disk since it was loaded (was "
                          << m->identity.describe() << ", now " << FileIdentity::of(entry.path).describe()
                          << "); reloading it");
      std::lock_guard<std::mutex> lock(state_mutex_);
      unload_resident(m);
      m = nullptr;
    }
    bool loaded_now = false;
    if (m) {
      if (m->loaded->traits().has_context_limit && wanted > m->n_ctx) grow_context(*m, wanted);
    } else {
      m = load(entry, wanted);
      loaded_now = true;
    }
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      m->last_used = std::chrono::steady_clock::now();
    }
    // A transformer's lease never exceeds what its reservation covers; a
    // recurrent model's n_ctx only caps one reply.
    const int64_t n_ctx = !m->loaded->traits().has_context_limit ? wanted : std::min(wanted, m->n_ctx);
    std::unique_ptr<Lease> lease(new Lease(*this, m, n_ctx, keep_alive.value_or(options_.default_keep_alive)));
    lease->load_ns_ = steady_ns() - t0;
    lease->loaded_now_ = loaded_now;
    return lease;
  } catch (...) {
    end_turn();
    throw;
  }
}

void ModelManager::release(Lease& lease) {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    ResidentModel* m = lease.model_;
    m->last_used = std::chrono::steady_clock::now();
    m->keep_alive = lease.keep_alive_;
    if (lease.file_changed()) {
      LOG_WARN(m->entry.name << ": " << m->entry.path << " changed on disk during a request; unloading it");
      unload_resident(m);
    } else if (lease.keep_alive_.ns <= 0) {
      unload_resident(m);
    } else {
      m->expires_at = lease.keep_alive_.forever()
                          ? std::chrono::system_clock::time_point::max()
                          : std::chrono::system_clock::now() + std::chrono::nanoseconds(lease.keep_alive_.ns);
    }
  }
  end_turn();
  reaper_cv_.notify_all();
}

ResidentModel* ModelManager::load(const CatalogEntry& entry, int64_t n_ctx) {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    while (static_cast<int>(resident_.size()) >= options_.max_loaded) {
      auto lru = std::min_element(resident_.begin(), resident_.end(),
                                  [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
      unload_resident(lru->get());
    }
  }
  LoadOptions opts;
  opts.pool = pool_;
  opts.max_batch = options_.batch;
  opts.kv_type = options_.kv_type;
  LOG_INFO("loading " << entry.name << " (" << entry.path << ", " << format_bytes(entry.size) << ")");
  const int64_t t0 = steady_ns();
  const FileIdentity identity = FileIdentity::of(entry.path);
  std::unique_ptr<LoadedModel> lm;
  try {
    lm = LoadedModel::load(entry.path, opts, &budget_, n_ctx);
  } catch (const MemoryBudgetError&) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (resident_.empty()) throw;
    LOG_INFO("unloading the other models to make room for " << entry.name);
    unload_others(nullptr);
  }
  if (!lm) lm = LoadedModel::load(entry.path, opts, &budget_, n_ctx);
  lm->prefault(entry.name);

  // The context the budget holds (load() may have found only a shorter one
  // fits); that is what is reserved, leased and reported.
  n_ctx = lm->usable_context(n_ctx);
  auto m = std::make_unique<ResidentModel>();
  m->entry = entry;
  m->identity = identity;
  m->n_ctx = lm->traits().has_context_limit ? n_ctx : 0;
  m->reserved_bytes = lm->resident_estimate(n_ctx);
  m->engine = std::make_unique<Engine>(*lm);
  m->loaded = std::move(lm);
  m->last_used = std::chrono::steady_clock::now();
  m->expires_at = std::chrono::system_clock::time_point::max();
  LOG_INFO("loaded " << entry.name << " in " << (steady_ns() - t0) / 1000000 << " ms: " << m->loaded->info().architecture
                     << ", " << format_bytes(m->reserved_bytes) << " reserved"
                     << (!m->loaded->traits().has_context_limit ? " (recurrent: constant state size)"
                                                     : " for a " + std::to_string(n_ctx) + "-token context")
                     << ", chat template " << m->loaded->chat_template().name());
  std::lock_guard<std::mutex> lock(state_mutex_);
  budget_.reserve(m->reserved_bytes);
  resident_.push_back(std::move(m));
  return resident_.back().get();
}

// A larger context for a resident transformer: all of it if the budget
// allows (after unloading the other models), else the largest that fits.
void ModelManager::grow_context(ResidentModel& m, int64_t n_ctx) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  auto extra_for = [&](int64_t n) {
    const uint64_t needed = m.loaded->resident_estimate(n);
    return needed > m.reserved_bytes ? needed - m.reserved_bytes : 0;
  };
  if (extra_for(n_ctx) > budget_.free()) unload_others(&m);
  int64_t target = n_ctx;
  if (extra_for(n_ctx) > budget_.free()) {
    int64_t lo = m.n_ctx, hi = n_ctx;  // lo fits (it is reserved), hi does not
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (extra_for(mid) <= budget_.free() ? lo : hi) = mid;
    }
    target = lo;
    LOG_WARN("model " << m.entry.name << " with a " << n_ctx << "-token context needs "
                      << format_bytes(m.loaded->resident_estimate(n_ctx)) << " but the memory budget has "
                      << format_bytes(budget_.free() + m.reserved_bytes) << " for it: the context is limited to "
                      << target << " tokens");
    if (target == m.n_ctx) return;
  }
  const uint64_t extra = extra_for(target);
  budget_.reserve(extra);
  m.reserved_bytes += extra;
  m.n_ctx = target;
}

void ModelManager::unload_resident(ResidentModel* m) {
  auto it = std::find_if(resident_.begin(), resident_.end(), [&](const auto& p) { return p.get() == m; });
  if (it == resident_.end()) return;
  LOG_INFO("unloading " << m->entry.name);
  budget_.release(m->reserved_bytes);
  resident_.erase(it);
}

void ModelManager::unload_others(const ResidentModel* keep) {
  std::vector<ResidentModel*> victims;
  for (auto& r : resident_)
    if (r.get() != keep) victims.push_back(r.get());
  for (ResidentModel* v : victims) unload_resident(v);
}

void ModelManager::unload(const CatalogEntry& entry) {
  take_turn();
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (ResidentModel* m = find_resident(entry.path)) unload_resident(m);
  }
  end_turn();
}

std::vector<ResidentInfo> ModelManager::resident() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  std::vector<ResidentInfo> out;
  for (const auto& m : resident_) {
    ResidentInfo info;
    info.entry = m->entry;
    info.size = m->reserved_bytes;
    info.n_ctx = m->loaded->traits().has_context_limit ? m->n_ctx : 0;
    info.expires_at = m->expires_at;
    info.forever = m->expires_at == std::chrono::system_clock::time_point::max();
    const ModelTraits& traits = m->loaded->traits();
    info.state_fixed_bytes = traits.state_fixed_bytes;
    info.state_kv_bytes_per_token = traits.state_bytes_per_token;
    info.state_bytes = m->loaded->model().state_bytes(m->n_ctx);
    out.push_back(std::move(info));
  }
  return out;
}

void ModelManager::unload_changed_files() {
  std::lock_guard<std::mutex> state(state_mutex_);
  std::vector<ResidentModel*> changed;
  for (auto& m : resident_)
    if (file_changed(*m)) changed.push_back(m.get());
  for (ResidentModel* m : changed) {
    LOG_WARN(m->entry.name << ": " << m->entry.path << " changed on disk since it was loaded; unloading it");
    unload_resident(m);
  }
}

void ModelManager::reaper_loop() {
  std::unique_lock<std::mutex> lock(reaper_mutex_);
  while (!stopping_) {
    reaper_cv_.wait_for(lock, std::chrono::milliseconds(500));
    if (stopping_) break;
    lock.unlock();
    if (try_take_turn()) {
      {
        std::lock_guard<std::mutex> state(state_mutex_);
        const auto now = std::chrono::system_clock::now();
        std::vector<ResidentModel*> expired;
        for (auto& m : resident_)
          if (m->expires_at <= now) expired.push_back(m.get());
        for (ResidentModel* m : expired) {
          LOG_INFO(m->entry.name << ": keep_alive expired");
          unload_resident(m);
        }
      }
      unload_changed_files();
      end_turn();
    }
    lock.lock();
  }
}

}  // namespace flatline
